"""The whole DenSNet pipeline on ethanol, through the `densnet` command line.

    python examples/ethanol/pipeline.py OUT_DIR [--frames 0:24] [--md-steps 4000] ...
    python examples/ethanol/pipeline.py OUT_DIR --model examples/ethanol/model/ethanol_100.pt

1. `densnet fit-density`: PBE/def2-SVP labels and fitted densities for rMD17 frames
   (compared with the published rMD17 energies and forces by summarize.py);
2. `densnet train`: a small density + energy model on them;
3. i-PI NVE molecular dynamics (0.5 fs, 300 K start) with `densnet serve` as its driver,
   streaming the predicted dipole at every step;
4. `densnet spectrum`: the IR spectrum from the dipole stream (PNG, CSV, peak table).

With --model, steps 1-2 are skipped and that model drives the MD.  Prints a summary (time per
stage, energy conservation of the MD, spectrum peaks) and writes it to OUT_DIR/summary.txt.
"""

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ase.io
import numpy as np

from drivers.ipi_input import ipi_input, run_ipi_with_serve, socket_forcefield, write_ipi_xyz

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GEOMETRIES = HERE / "ethanol_rmd17_100.xyz"

OUTPUTS = """<properties filename='out' stride='10'> [ step, time{picosecond},
      conserved{electronvolt}, temperature{kelvin}, potential{electronvolt} ] </properties>
    <trajectory filename='dipole' stride='1' extra_type='dipole'> extras </trajectory>"""


def densnet(*args, threads: int | None = None) -> float:
    """Run one `densnet` command; returns its wall time (s); stops the pipeline if it fails.

    ``threads`` caps the CPU threads (OMP_NUM_THREADS): a small molecule's network evaluation
    is many tiny kernels, which extra threads slow down rather than speed up.
    """
    start = time.perf_counter()
    print("$ densnet " + " ".join(map(str, args)), flush=True)
    env = dict(os.environ) if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run([str(BIN / "densnet"), *map(str, args)], env=env)
    if result.returncode != 0:
        raise SystemExit(f"densnet {args[0]} failed with exit code {result.returncode}")
    return time.perf_counter() - start


def run_md(out: Path, model: Path, steps: int, timeout: float) -> float:
    """i-PI NVE with `densnet serve` as the driver; returns the wall time (s)."""
    socket = f"densnet-demo-{uuid.uuid4().hex[:8]}"
    write_ipi_xyz(ase.io.read(GEOMETRIES, index=0), out / "init.xyz")
    xml = ipi_input(steps=steps, forcefield=socket_forcefield(socket), outputs=OUTPUTS,
                    prefix="md", seed=2026)
    serve = [str(model.resolve()), "--template", "init.xyz", "--unix", socket, "--dipoles",
             "dipoles.txt", "--timestep", "0.5", "--device", "cpu"]
    print(f"$ i-pi input.xml & densnet serve {' '.join(serve)}", flush=True)
    try:
        return run_ipi_with_serve(out, xml, serve, timeout_s=timeout)
    except RuntimeError as exc:
        raise SystemExit(f"MD failed: {exc}") from None


def energy_drift(out: Path) -> tuple[float, float]:
    """(drift of the conserved energy in meV/ps by a linear fit, mean temperature in K)."""
    data = np.loadtxt(out / "md.out")
    slope = np.polyfit(data[:, 1], data[:, 2], 1)[0]
    return 1e3 * slope, float(data[:, 3].mean())


def conserved_energy_jump(out: Path, limit_ev: float = 0.1) -> str:
    """'' if NVE conserved its energy to ``limit_ev``, else what went wrong (for 9 atoms at
    300 K the conserved energy fluctuates by a few meV; a model "hole" shows as a jump of eV)."""
    data = np.loadtxt(out / "md.out")
    excursion = float(np.ptp(data[:, 2]))
    if excursion > limit_ev or not np.isfinite(data[:, 2]).all():
        return (f"conserved energy varied by {excursion:.2f} eV, highest temperature "
                f"{data[:, 3].max():.0f} K")
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", default="0:24", help="rMD17 frames to label (--index)")
    parser.add_argument("--model", type=Path, help="use this model; skip labelling/training")
    parser.add_argument("--epochs-density", type=int, default=150)
    parser.add_argument("--epochs-energy", type=int, default=200)
    parser.add_argument("--md-steps", type=int, default=4000, help="0.5 fs steps")
    parser.add_argument("--max-lag", type=float, default=500.0, help="fs, spectrum resolution")
    parser.add_argument("--md-timeout", type=float, default=1800.0, help="s")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    model = args.model
    if model is None:
        times["fit-density"] = densnet("fit-density", GEOMETRIES, "--index", args.frames,
                                       "-o", out / "ethanol.h5")
        # How the labels compare with the published rMD17 ones (same level of theory).
        subprocess.run([sys.executable, str(HERE / "summarize.py"), str(out / "ethanol.h5"),
                        str(GEOMETRIES), "--plot", str(out / "fit_density_summary.png")],
                       check=True)
        model = out / "ethanol.pt"
        (out / "ethanol.pt.ckpt").unlink(missing_ok=True)
        times["train"] = densnet(
            "train", out / "ethanol.h5", "-o", model, "--epochs-density", args.epochs_density,
            "--epochs-energy", args.epochs_energy, "--density-features", 16,
            "--density-layers", 2, "--energy-features", 16, "--energy-layers", 2,
            "--radial-hidden", 16, "--val-fraction", 0.15, "--no-progress", threads=1)
    times["md"] = run_md(out, model, args.md_steps, args.md_timeout)
    times["spectrum"] = densnet(
        "spectrum", out / "dipoles.txt", "-o", out / "spectrum.csv", "--plot",
        out / "spectrum.png", "--max-lag", args.max_lag, "--temperature", 300,
        "--min-wavenumber", 400, "--max-wavenumber", 4000, threads=1)
    drift, temperature = energy_drift(out)
    peaks = np.atleast_2d(np.loadtxt(out / "spectrum.peaks.csv", delimiter=",", skiprows=1))
    lines = ["DenSNet ethanol pipeline",
             *(f"  {stage:12s} {seconds:8.1f} s" for stage, seconds in times.items()),
             f"  MD: {args.md_steps} steps of 0.5 fs, mean T {temperature:.0f} K, "
             f"conserved-energy drift {drift:+.2f} meV/ps",
             f"  {sum(times.values()) / 60:.1f} min in all; spectrum: {out / 'spectrum.png'}",
             "  strongest IR peaks (cm^-1): " + ", ".join(
                 f"{p[0]:.0f}" for p in sorted(peaks, key=lambda r: -r[1])[:6])]
    unstable = conserved_energy_jump(out)
    if unstable:
        lines.append(f"  UNSTABLE MD: {unstable}; the spectrum above is not meaningful")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if unstable:
        raise SystemExit(f"Error: the demo MD was unstable ({unstable}); see {out / 'md.out'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
