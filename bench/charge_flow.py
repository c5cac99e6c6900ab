r"""Ablation: the local charge-flow electron count vs the fragment-wide projection.

Two density networks, identical but for ``--charge-flow`` / ``--no-charge-flow``, trained on the
same frames with the same seed and schedule (density stage only: the constraint acts on the
density), then evaluated by ``densnet evaluate`` on held-out frames of the chain length trained on
and of longer chains (size transfer, where locality should matter)::

    python bench/charge_flow.py [--train-rings 1] [--test-rings 1 2] [--epochs 150] [--seeds 0 1]

→ bench/results/charge_flow_ablation.{md,json}; models and evaluate reports in
bench/out/charge_flow/ (resumable: finished models and reports are reused).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from command import command_line, relative, write_report
from polythiophene import BIN, RESULTS, ROOT, chunks, held_out, run
from validate_molecule import ARCH

WORK = ROOT / "bench/out/charge_flow"
VARIANTS = {"charge flow (local)": "--charge-flow",
            "fragment projection": "--no-charge-flow"}
COLUMNS = {"density_l1_percent": "density L1 % (fit)",
           "density_l1_vs_dft_percent": "density L1 % (DFT)",
           "dipole_mae_D": "μ MAE D", "coulomb_error_mHa": "Coulomb error mHa"}


def train(flag: str, files: list[Path], epochs: int, seed: int, threads: int) -> Path:
    model = WORK / f"{flag.removeprefix('--')}_{epochs}_s{seed}.pt"
    if not model.exists():
        resume = ["--resume"] if model.with_name(model.name + ".ckpt").exists() else []
        run(BIN / "densnet", "train", *files, "-o", model, *ARCH, flag, "--lr", "5e-3",
            "--early-stopping", "30", "--epochs-density", epochs, "--epochs-energy", 0,
            "--cutoff", 4.0, "--val-fraction", "0.1", "--seed", seed, "--no-progress", *resume,
            threads=threads)
    return model


def evaluate(model: Path, test: Path) -> dict:
    from densnet_cli.data.hdf5 import DensityDataset

    report = WORK / f"{model.stem}_{test.stem}.json"
    if not report.exists():
        n = len(DensityDataset(test))
        run(BIN / "densnet", "evaluate", model, test, "--report", report, "--density-frames", n,
            "--dft-frames", n, "--no-progress")
    return json.loads(report.read_text())


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rings", nargs="+", type=int, default=[1])
    parser.add_argument("--test-rings", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=150, help="density-stage epochs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1],
                        help="training seeds (split and initial weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "charge_flow_ablation")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    tests = {n: held_out(n) for n in args.test_rings}
    missing = [n for n, t in tests.items() if t is None]
    if missing:
        raise SystemExit(f"no held-out chunk for {missing} rings: label them first")
    files = [c for n in args.train_rings for c in chunks(n) if c not in tests.values()]
    rows = []
    for seed in args.seeds:
        for name, flag in VARIANTS.items():
            model = train(flag, files, args.epochs, seed, args.threads)
            for rings, test in tests.items():
                r = evaluate(model, test)  # type: ignore[arg-type]
                rows.append({"variant": name, "seed": seed, "rings": rings,
                             "trained_on": rings in args.train_rings,
                             "test": relative(test),  # type: ignore[arg-type]
                             "frames": r["n_frames"], **{k: r.get(k) for k in COLUMNS}})
    rows.sort(key=lambda r: (r["rings"], r["variant"], r["seed"]))
    command = command_line()
    lines = ["# Charge flow vs fragment projection: the density network's held-out errors", "",
             f"Command: `{command}`", "",
             f"Both density networks trained on the same {len(files)} chunks "
             f"({', '.join(map(str, args.train_rings))}-ring thiophene chains, PBE/def2-SVP), "
             f"seeds {', '.join(map(str, args.seeds))} (a seed gives both the same validation "
             f"split), {args.epochs} density epochs at most (early stopping 30), the "
             "architecture of the validations; only the electron-count constraint differs. "
             "Held-out: the last 300 K chunk of each length (never trained on).", "",
             "| rings | trained on this length | constraint | seed | frames | "
             + " | ".join(COLUMNS.values()) + " |",
             "|---|---|---|---|---|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = " | ".join("–" if r[k] is None else f"{r[k]:.4g}" for k in COLUMNS)
        lines.append(f"| {r['rings']} | {'yes' if r['trained_on'] else 'no'} | {r['variant']} | "
                     f"{r['seed']} | {r['frames']} | {cells} |")
    lines.append("")
    write_report(args.out, command, rows, lines)


if __name__ == "__main__":
    main()
