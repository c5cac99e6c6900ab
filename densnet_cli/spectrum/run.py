"""``densnet spectrum``: read dipoles → line shape → intensities → peaks → files.

Nothing is written until everything has been computed; each file is then written to a temporary
name and renamed, so an error never leaves a partial output behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from densnet_cli.data.atomic import write_text
from densnet_cli.errors import InputError
from densnet_cli.spectrum.averaging import AveragedLineShape, LineShapeSettings, average_lineshape
from densnet_cli.spectrum.corrections import (
    DEFAULT_CORRECTION,
    absolute_absorption,
    absorption_factor,
)
from densnet_cli.spectrum.peaks import DEFAULT_THRESHOLD, Peak, find_peaks
from densnet_cli.spectrum.plotting import plot_spectrum
from densnet_cli.spectrum.readers import read_inputs
from densnet_cli.spectrum.reference import Similarity, compare, read_reference

INTENSITY_KINDS = ("relative", "absolute")
UNITS = {"relative": "relative (maximum = 1)", "absolute": "km mol⁻¹ (cm⁻¹)⁻¹"}


@dataclass(frozen=True)
class SpectrumConfig:
    """All options of ``densnet spectrum`` (the CLI maps its flags 1:1 onto these fields)."""

    inputs: tuple[Path, ...]
    output: Path
    plot: Path | None = None
    peaks: Path | None = None
    dt: float | None = None
    format: str = "auto"
    dipole_unit: str = "e*angstrom"
    max_lag: float | None = None
    window: str = "hann"
    zero_pad: int = 4
    blocks: int = 1
    beads: str = "mean"
    correction: str = DEFAULT_CORRECTION
    temperature: float | None = None
    intensity: str = "relative"
    min_wavenumber: float = 0.0
    max_wavenumber: float = 4500.0
    peak_threshold: float = DEFAULT_THRESHOLD
    reference: Path | None = None

    def lineshape_settings(self) -> LineShapeSettings:
        """The numeric estimation options."""
        return LineShapeSettings(max_lag_fs=self.max_lag, window=self.window,
                                 zero_pad=self.zero_pad, blocks=self.blocks, beads=self.beads)

    @property
    def peaks_path(self) -> Path:
        """Where the peak table goes (``--peaks``, or SPECTRUM.peaks.csv)."""
        return self.peaks or self.output.with_name(self.output.stem + ".peaks.csv")


@dataclass
class SpectrumResult:
    """What a run computed (printed by the CLI)."""

    wavenumber_cm1: np.ndarray
    intensity: np.ndarray
    stderr: np.ndarray
    unit: str
    lineshape: AveragedLineShape
    n_trajectories: int
    peaks: list[Peak]
    similarity: Similarity | None = None
    warnings: list[str] = field(default_factory=list)


def check_config(cfg: SpectrumConfig) -> None:
    """Reject option combinations that cannot work, before reading any data.

    Raises:
        InputError: naming the offending option.
    """
    if cfg.temperature is not None and not cfg.temperature > 0:
        raise InputError(f"--temperature must be positive (K), got {cfg.temperature}")
    if cfg.temperature is None and (cfg.intensity == "absolute" or cfg.correction != "harmonic"):
        why = ("--intensity absolute" if cfg.intensity == "absolute"
               else f"--correction {cfg.correction}")
        raise InputError(f"{why} needs --temperature (the MD temperature in K)")
    if not 0 <= cfg.min_wavenumber < cfg.max_wavenumber:
        raise InputError(f"need 0 ≤ --min-wavenumber < --max-wavenumber, got "
                         f"{cfg.min_wavenumber:g} and {cfg.max_wavenumber:g}")
    if cfg.zero_pad < 1:
        raise InputError(f"--zero-pad must be ≥ 1, got {cfg.zero_pad}")
    if not 0 < cfg.peak_threshold < 1:
        raise InputError(f"--peak-threshold must be in (0, 1), got {cfg.peak_threshold}")
    outputs = [cfg.output, cfg.peaks_path] + ([cfg.plot] if cfg.plot else [])
    for path in outputs:
        if path.resolve() in {Path(p).resolve() for p in cfg.inputs}:
            raise InputError(f"output {path} would overwrite an input")
        if not path.parent.is_dir():
            raise InputError(f"cannot write {path}: directory {path.parent} does not exist")


def compute_spectrum(cfg: SpectrumConfig) -> SpectrumResult:
    """Everything but writing files."""
    check_config(cfg)
    series = read_inputs(cfg.inputs, dt_fs=cfg.dt, fmt=cfg.format, dipole_unit=cfg.dipole_unit)
    warnings = [w for s in series for w in s.warnings]
    lineshape = average_lineshape(series, cfg.lineshape_settings())
    grid = lineshape.grid
    upper = min(cfg.max_wavenumber, 0.5 * grid.nyquist_cm1)
    if upper < cfg.max_wavenumber:
        warnings.append(f"spectrum cut at {upper:.0f} cm⁻¹, half the Nyquist frequency of the "
                        f"{grid.dt_fs:g} fs sampling (use a smaller time step or stride)")
    if not upper > cfg.min_wavenumber:
        raise InputError(f"--min-wavenumber {cfg.min_wavenumber:g} is above the highest usable "
                         f"frequency {upper:.0f} cm⁻¹ of the {grid.dt_fs:g} fs sampling")
    nu_all = grid.wavenumber_cm1
    keep = (nu_all >= cfg.min_wavenumber) & (nu_all <= upper)
    nu = nu_all[keep]
    if cfg.temperature is None:  # harmonic correction, relative units: F = β is a constant
        factor = np.ones_like(nu)
    else:
        factor = absorption_factor(cfg.correction, nu, cfg.temperature)
    if cfg.intensity == "absolute":
        intensity = absolute_absorption(lineshape.mean[keep], factor)
        stderr = absolute_absorption(lineshape.stderr[keep], factor)
    else:
        intensity, stderr = lineshape.mean[keep] * factor, lineshape.stderr[keep] * factor
        top = float(np.max(intensity))
        if not top > 0:
            raise InputError("the spectrum is zero in the requested range: is the dipole "
                             "constant?")
        intensity, stderr = intensity / top, stderr / top
    peaks = find_peaks(nu, intensity, cfg.peak_threshold)
    similarity = None
    if cfg.reference is not None:
        ref_nu, ref_y = read_reference(cfg.reference)
        ref_peaks = find_peaks(ref_nu, ref_y, cfg.peak_threshold)
        similarity = compare(nu, intensity, ref_nu, ref_y, peaks, ref_peaks)
    return SpectrumResult(wavenumber_cm1=nu, intensity=intensity, stderr=stderr,
                          unit=UNITS[cfg.intensity], lineshape=lineshape,
                          n_trajectories=len(series), peaks=peaks, similarity=similarity,
                          warnings=warnings)


def spectrum_csv(result: SpectrumResult) -> str:
    """SPECTRUM.csv: one header line, then wavenumber_cm1, intensity, intensity_stderr."""
    rows = np.column_stack([result.wavenumber_cm1, result.intensity, result.stderr])
    lines = ["wavenumber_cm1,intensity,intensity_stderr"]
    lines += [f"{x:.4f},{y:.8e},{e:.8e}" for x, y, e in rows]
    return "\n".join(lines) + "\n"


def peaks_csv(peaks: list[Peak]) -> str:
    """The peak table: position, height, integrated intensity and integration bounds."""
    lines = ["position_cm1,height,integrated,lower_cm1,upper_cm1"]
    lines += [f"{p.position_cm1:.2f},{p.height:.6e},{p.integrated:.6e},{p.lower_cm1:.2f},"
              f"{p.upper_cm1:.2f}" for p in peaks]
    return "\n".join(lines) + "\n"


def run_spectrum(cfg: SpectrumConfig) -> SpectrumResult:
    """Compute the spectrum and write the CSV, the peak table and (optionally) the plot."""
    result = compute_spectrum(cfg)
    if cfg.plot is not None:
        reference = None
        if cfg.reference is not None:
            ref_nu, ref_y = read_reference(cfg.reference)
            reference = (ref_nu, ref_y, cfg.reference.name)
        ylabel = ("absorption (km mol$^{-1}$ / cm$^{-1}$)" if cfg.intensity == "absolute"
                  else "intensity (relative)")
        title = (f"IR from dipole autocorrelation: {result.n_trajectories} trajectories, "
                 f"{result.lineshape.n_samples} blocks, {cfg.correction} correction")
        plot_spectrum(cfg.plot, result.wavenumber_cm1, result.intensity, result.stderr,
                      result.peaks, ylabel, title, reference)
    write_text(cfg.peaks_path, peaks_csv(result.peaks))
    write_text(cfg.output, spectrum_csv(result))
    return result
