"""Density basis vs size vs fit error for ethanol, measured with `densnet fit-density`.

    python bench/density_basis.py [--frames 0:3] [--bases a,b,...]

For each density basis, with and without the dipole constraint, labels the same rMD17 ethanol
frames (PBE/def2-SVP, the shipped example geometries) and reports: functions per molecule,
real-space L1 error of the fitted density vs the DFT density on the DFT grid, relative Coulomb
error, dipole error of the fitted density, and seconds per frame (DFT + fit).  Writes
bench/results/density_basis.json and .md.
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from densnet_cli import keys, units
from densnet_cli.data.hdf5 import DensityDataset

ROOT = Path(__file__).resolve().parents[1]
GEOMETRIES = ROOT / "examples/ethanol/ethanol_rmd17_100.xyz"
BASES = ["def2-universal-jkfit", "cc-pvqz-jkfit", "aug-cc-pvqz-jkfit", "etb"]


def measure(basis: str, constrain: bool, frames: str, out_dir: Path) -> dict:
    out = out_dir / f"{basis}-{'dip' if constrain else 'plain'}.h5"
    cmd = [str(Path(sys.executable).with_name("densnet")), "fit-density", str(GEOMETRIES),
           "--index", frames, "-o", str(out), "--density-basis", basis, "--no-progress",
           "--constrain-dipole" if constrain else "--no-constrain-dipole"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    ds = DensityDataset(out)
    dip = np.linalg.norm(ds.per_frame(keys.FIT_DIPOLE) - ds.per_frame(keys.DIPOLE), axis=1)
    return {
        "density_basis": basis,
        "dipole_constrained": constrain,
        "functions": int(ds.basis.atom_offsets(ds[0].numbers)[-1]),
        "l1_percent_mean": float(ds.per_frame(keys.FIT_L1_PERCENT).mean()),
        "sad_l1_percent_mean": float(ds.per_frame(keys.SAD_L1_PERCENT).mean()),
        "relative_coulomb_error_mean": float(ds.per_frame(keys.FIT_RELATIVE_ERROR).mean()),
        "dipole_error_D_mean": float(dip.mean() * units.E_ANGSTROM_TO_DEBYE),
        "seconds_per_frame": float(ds.per_frame(keys.WALL_TIME).mean()),
        "n_frames": len(ds),
        "command": " ".join(["densnet", *cmd[1:]]).replace(str(ROOT) + "/", ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="0:3")
    parser.add_argument("--bases", default=",".join(BASES))
    args = parser.parse_args()
    out_dir = ROOT / "bench/out"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for basis in args.bases.split(","):
        for constrain in (False, True):
            t = time.perf_counter()
            rows.append(measure(basis, constrain, args.frames, out_dir))
            print(f"{basis:24s} dipole-constrained={constrain!s:5s} "
                  f"L1={rows[-1]['l1_percent_mean']:.3f}%  ({time.perf_counter() - t:.0f} s)",
                  flush=True)
    report = {"benchmark": "density basis vs fit error (ethanol, PBE/def2-SVP)",
              "frames": args.frames, "machine": platform.node(),
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    results = ROOT / "bench/results"
    results.mkdir(exist_ok=True)
    (results / "density_basis.json").write_text(json.dumps(report, indent=1))
    lines = [f"# Density basis vs fit error — ethanol, PBE/def2-SVP, rMD17 frames {args.frames}",
             "", "Produced by `make bench` (`python bench/density_basis.py --frames "
             f"{args.frames}`) on {report['date']}.  L1 = ∫|ρ_fit − ρ_DFT| / N on the DFT grid "
             "(level 4); Coulomb = sqrt((δρ|δρ)/(ρ|ρ)); dipole error = |μ_fit − μ_DFT|.", "",
             "| density basis | functions | dipole constrained | L1 (%) | Coulomb rel. error "
             "| dipole error (D) | s/frame |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['density_basis']} | {r['functions']} | "
                     f"{'yes' if r['dipole_constrained'] else 'no'} | "
                     f"{r['l1_percent_mean']:.3f} | {r['relative_coulomb_error_mean']:.2e} | "
                     f"{r['dipole_error_D_mean']:.1e} | {r['seconds_per_frame']:.1f} |")
    lines += ["", f"SAD prior alone: L1 = {rows[0]['sad_l1_percent_mean']:.2f} % "
              f"({rows[0]['density_basis']})."]
    (results / "density_basis.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
