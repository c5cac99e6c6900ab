"""``densnet spectrum``: the command-line face of :mod:`densnet_cli.spectrum.run`."""

from __future__ import annotations

from pathlib import Path

import click

from densnet_cli.spectrum.averaging import BEAD_MODES
from densnet_cli.spectrum.corrections import CORRECTIONS
from densnet_cli.spectrum.lineshape import WINDOWS
from densnet_cli.spectrum.readers import DIPOLE_UNITS, FORMATS
from densnet_cli.spectrum.run import INTENSITY_KINDS, SpectrumConfig, SpectrumResult, run_spectrum

_PATH = click.Path(path_type=Path)


@click.command("spectrum")
@click.argument("inputs", nargs=-1, required=True, type=_PATH)
@click.option("-o", "--output", type=_PATH, required=True,
              help="Spectrum CSV: wavenumber_cm1, intensity, intensity_stderr.")
@click.option("--plot", type=_PATH, default=None, help="PNG plot of the spectrum.")
@click.option("--peaks", type=_PATH, default=None,
              help="Peak table CSV [default: OUTPUT with .peaks.csv].")
@click.option("--dt", type=float, default=None, metavar="FS",
              help="Time step in fs: the MD time step for files with step numbers (i-PI extras, "
                   "dipole stream without times), the time between frames otherwise.")
@click.option("--format", "format", type=click.Choice(FORMATS), default="auto",
              show_default=True, help="Input format (auto: from content and file name).")
@click.option("--dipole-unit", type=click.Choice(list(DIPOLE_UNITS)), default="e*angstrom",
              show_default=True, help="Dipole unit of text/.npy inputs (other formats carry "
                                      "their own: e·Å for stream and ASE, e·Bohr for i-PI).")
@click.option("--max-lag", type=float, default=None, metavar="FS",
              help="Correlation length in fs; sets the resolution, about 1/(2 c max_lag) "
                   "[default: half a block, at most 2000 fs].")
@click.option("--window", type=click.Choice(WINDOWS), default="hann", show_default=True,
              help="Lag window applied to the correlation function.")
@click.option("--zero-pad", type=int, default=4, show_default=True,
              help="Zero-padding factor of the FFT (a finer grid, not a finer resolution).")
@click.option("--blocks", type=int, default=1, show_default=True,
              help="Time blocks per trajectory; the spread over all blocks gives the error.")
@click.option("--beads", type=click.Choice(BEAD_MODES), default="mean", show_default=True,
              help="Path integrals: spectrum of the bead-averaged dipole (centroid-like) or "
                   "the average of single-bead spectra.")
@click.option("--correction", type=click.Choice(CORRECTIONS), default="harmonic",
              show_default=True,
              help="Quantum correction factor (harmonic: exact for harmonic modes with linear "
                   "dipoles; the classical line shape).")
@click.option("--temperature", type=float, default=None, metavar="K",
              help="MD temperature in K (needed for --intensity absolute and corrections "
                   "other than harmonic).")
@click.option("--intensity", type=click.Choice(INTENSITY_KINDS), default="relative",
              show_default=True,
              help="relative: maximum 1; absolute: gas-phase N_A σ in km mol⁻¹ (cm⁻¹)⁻¹, whose "
                   "band integrals are km/mol.")
@click.option("--min-wavenumber", type=float, default=0.0, show_default=True,
              help="Lower end of the output range (cm⁻¹).")
@click.option("--max-wavenumber", type=float, default=4500.0, show_default=True,
              help="Upper end of the output range (cm⁻¹; at most half the Nyquist frequency).")
@click.option("--peak-threshold", type=float, default=0.05, show_default=True,
              help="Peaks lower or less prominent than this fraction of the maximum are "
                   "not listed.")
@click.option("--reference", type=_PATH, default=None,
              help="Reference spectrum (CSV wavenumber,intensity or JCAMP-DX, e.g. from NIST) "
                   "to overlay and compare.")
def spectrum(**options) -> None:
    """IR spectrum from the dipole time series in INPUTS.

    Each input is one trajectory; i-PI bead files PREFIX.dipole_0, PREFIX.dipole_1, ...
    together form one.  Inputs: DenSNet dipole streams (densnet serve --dipoles), i-PI extras files
    (extra_type='dipole', e·Bohr), ASE trajectories / extended XYZ with a dipole per frame
    (e·Å), text columns 'mu_x mu_y mu_z' or 'time_fs mu_x mu_y mu_z', or .npy arrays.
    The line shape is the Fourier transform of the autocorrelation of the dipole's time
    derivative; wavenumbers in cm⁻¹.  See docs/spectrum.md for the formulas.
    """
    options["inputs"] = tuple(options["inputs"])
    cfg = SpectrumConfig(**options)
    result = run_spectrum(cfg)
    _report(cfg, result)


def _report(cfg: SpectrumConfig, result: SpectrumResult) -> None:
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    grid = result.lineshape.grid
    click.echo(f"wrote {cfg.output} ({len(result.wavenumber_cm1)} points, "
               f"{result.wavenumber_cm1[0]:.0f}–{result.wavenumber_cm1[-1]:.0f} cm⁻¹), "
               f"peaks to {cfg.peaks_path}" + (f", plot to {cfg.plot}" if cfg.plot else ""))
    click.echo(f"  {result.n_trajectories} trajectories, {result.lineshape.n_samples} blocks; "
               f"dt {grid.dt_fs:g} fs, max lag {grid.n_lag * grid.dt_fs:g} fs, "
               f"resolution ~{grid.resolution_cm1:.1f} cm⁻¹; intensity: {result.unit}")
    integral = "integrated (km/mol)" if cfg.intensity == "absolute" else "integrated"
    click.echo(f"  {'position (cm⁻¹)':>16} {'height':>12} {integral:>20}")
    for p in result.peaks:
        click.echo(f"  {p.position_cm1:16.1f} {p.height:12.4g} {p.integrated:20.4g}")
    s = result.similarity
    if s is not None:
        click.echo(f"  reference {cfg.reference} on {s.lower_cm1:.0f}–{s.upper_cm1:.0f} cm⁻¹: "
                   f"Pearson {s.pearson:.3f}, cosine {s.cosine:.3f}")
        for mine, ref, diff in s.peak_shifts:
            click.echo(f"    peak {mine:.1f} vs reference {ref:.1f}: {diff:+.1f} cm⁻¹")
