"""The rMD17 ethanol benchmark of issue #3: train DenSNet variants, test on frames 800-999.

    python bench/rmd17.py train delta_800      # one variant (resumable: rerun to continue)
    python bench/rmd17.py report               # evaluate every trained variant, write the report

Test frames 800-819 are labelled a second time with their DFT density matrices for the error
against the true DFT density (``densnet fit-density ../shared/data/rmd17_ethanol_1000.xyz
--index 800:820 -o bench/data/rmd17_ethanol_800-819_dm.h5``).

Data: rMD17 ethanol labelled at PBE/def2-SVP by ``densnet fit-density`` (``bench/label_rmd17.sh``):
frames 0-99 in ``examples/ethanol/ethanol_100.h5``, the rest in chunks of 100 under
``bench/data/``.  Frames 0-799 train (10 % of them validate), 800-999 test.  Chunks from 400 on
also store the DFT density matrix, which the real-space refine stage trains against.

Variants (``RECIPES``): the learning curve of the Δ model in the number of frames (100-800), the
no-Δ ablation, and the fixed vs flexible basis comparison (density only, frames 400-599, whose
DFT density matrices are stored: the same density training, then nothing, or the real-space
refine stage with the fixed or the flexible basis).
Models, logs and evaluation reports go to ``bench/out/rmd17/``; the summary to
``bench/results/rmd17.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench/out/rmd17"
RESULTS = ROOT / "bench/results"
DENSNET = str(Path(sys.executable).with_name("densnet"))


def chunk(start: int) -> Path:
    """The dataset holding rMD17 frames start … start+99."""
    if start == 0:
        return ROOT / "examples/ethanol/ethanol_100.h5"
    return ROOT / f"bench/data/rmd17_ethanol_{start}-{start + 99}.h5"


TEST = [chunk(800), chunk(900)]
# Frames 800-819 labelled again with their DFT density matrices (the chunks above predate
# them): the real-space error against the true DFT density is measured on these.
DFT_TEST = ROOT / "bench/data/rmd17_ethanol_800-819_dm.h5"
DENSITY_FRAMES = 50  # test frames per chunk whose L1 against the fitted density is integrated
# The small architecture of examples/ethanol/model (24k parameters): what 2 CPU cores can train
# in a session.
ARCH = ["--density-features", "16", "--density-layers", "2", "--energy-features", "16",
        "--energy-layers", "2", "--radial-hidden", "16"]
SCHEDULE = ["--lr", "5e-3", "--early-stopping", "30", "--epochs-density", "300",
            "--epochs-energy", "80"]
DENSITY_ONLY = ["--lr", "5e-3", "--early-stopping", "30", "--epochs-density", "300",
                "--epochs-energy", "0"]
REFINE = ["--epochs-refine", "40", "--grid-level", "0"]

RECIPES: dict[str, dict] = {
    **{f"delta_{n}": {"data": [chunk(s) for s in range(0, n, 100)], "args": SCHEDULE,
                      "what": f"Δ on SAD, fixed basis, frames 0-{n - 1}"}
       for n in (100, 200, 400, 800)},
    **{f"nodelta_{n}": {"data": [chunk(s) for s in range(0, n, 100)],
                        "args": [*SCHEDULE, "--no-delta"],
                        "what": f"no Δ (full density), fixed basis, frames 0-{n - 1}"}
       for n in (400, 800)},
    "coulomb_400-599": {"data": [chunk(s) for s in range(400, 600, 100)], "args": DENSITY_ONLY,
                        "what": "density only, fixed basis, Coulomb loss vs the fit"},
    "refine_fixed_400-599": {"data": [chunk(s) for s in range(400, 600, 100)],
                             "args": [*DENSITY_ONLY, *REFINE],
                             "what": "density only, fixed basis, + real-space refine vs DFT"},
    "refine_flexible_400-599": {"data": [chunk(s) for s in range(400, 600, 100)],
                                "args": [*DENSITY_ONLY, *REFINE, "--max-exponent-factor", "1.5"],
                                "what": "density only, flexible basis (×[1/1.5, 1.5]), refine"},
}


def train(name: str) -> None:
    """Train one variant (continuing its checkpoint if there is one)."""
    recipe = RECIPES[name]
    missing = [str(p) for p in recipe["data"] if not p.exists()]
    if missing:
        sys.exit(f"Error: {name} needs {', '.join(missing)}: run bench/label_rmd17.sh first")
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / f"{name}.pt"
    if model.exists():
        print(f"{model} exists; delete it to retrain")
        return
    resume = ["--resume"] if model.with_name(model.name + ".ckpt").exists() else []
    cmd = [DENSNET, "train", *map(str, recipe["data"]), "-o", str(model), *ARCH,
           *recipe["args"], "--no-progress", *resume]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _evaluated(model: Path, test: Path, *options: str) -> dict:
    """``densnet evaluate`` of ``model`` on ``test`` (cached next to the model)."""
    report = OUT / f"{model.stem}.{test.stem}.json"
    if not report.exists() or report.stat().st_mtime < model.stat().st_mtime:
        subprocess.run([DENSNET, "evaluate", str(model), str(test), "--report", str(report),
                        *options, "--no-progress"], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(report.read_text())


def evaluate(name: str) -> dict:
    """Test errors of one variant: frames 800-999, and the DFT-density subset."""
    model = OUT / f"{name}.pt"
    chunks = [_evaluated(model, test, "--density-frames", str(DENSITY_FRAMES))
              for test in TEST]
    out: dict = {"n_frames": sum(r["n_frames"] for r in chunks)}
    for key in ("energy_mae_meV", "energy_mae_meV_per_atom", "force_mae_meV_per_A",
                "force_rmse_meV_per_A", "dipole_mae_D", "density_l1_percent"):
        values = [r[key] for r in chunks]  # None: a density-only model has no energies
        out[key] = (None if None in values
                    else sum(values) / len(chunks))  # equal chunks (and frames)
    dft = _evaluated(model, DFT_TEST, "--dft-frames", "1000", "--density-frames", "0")
    out["density_l1_vs_dft_percent"] = dft["density_l1_vs_dft_percent"]
    out["fit_l1_vs_dft_percent_same_frames"] = dft["fit_l1_vs_dft_percent_same_frames"]
    out["density_l1_vs_dft_frames"] = dft["density_l1_vs_dft_frames"]
    return out


def training_record(name: str) -> dict:
    """Frames, wall time and final validation from the model file's metadata."""
    from densnet_cli.model.io import read_model_file

    metadata = read_model_file(OUT / f"{name}.pt")[0]["training"]
    return {"n_train": metadata["split"]["n_train"], "n_val": metadata["split"]["n_val"],
            "wall_time_min": metadata["wall_time_s"] / 60}


def report() -> None:
    """Evaluate every trained variant; write bench/results/rmd17.{json,md,png}."""
    rows = {}
    for name in RECIPES:
        if (OUT / f"{name}.pt").exists():
            print(f"evaluating {name}", flush=True)
            rows[name] = {"what": RECIPES[name]["what"], **training_record(name),
                          **evaluate(name)}
    if not rows:
        sys.exit("Error: no trained variant under bench/out/rmd17; run `train` first")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rmd17.json").write_text(json.dumps(rows, indent=1))
    (RESULTS / "rmd17.md").write_text(markdown(rows))
    plot(rows)
    print(f"wrote {RESULTS / 'rmd17.md'}")


def _fmt(row: dict, key: str, digits: int) -> str:
    value = row.get(key)
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(rows: dict) -> str:
    """The report table."""
    lines = [
        "# rMD17 ethanol (PBE/def2-SVP): DenSNet on the test frames 800-999",
        "",
        "Produced by `python bench/rmd17.py train NAME` for each variant, then "
        "`python bench/rmd17.py report` (2 CPU cores, shared with DFT labelling while "
        "training). Energy, force and dipole errors: all 200 test frames; L1 vs fit: "
        f"{2 * DENSITY_FRAMES} of them; L1 vs DFT: frames 800-819 (stored DFT density "
        "matrices). Energy and force errors of density-only variants are not shown (their "
        "energy network is untrained).",
        "",
        "| variant | what | train frames | train time (min) | energy MAE (meV) | "
        "force MAE (meV/Å) | dipole MAE (D) | L1 vs fit (%) | L1 vs DFT (%) | fit L1 vs DFT, "
        "same frames (%) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        density_only = "density only" in r["what"]
        lines.append(
            f"| {name} | {r['what']} | {r['n_train']} | {r['wall_time_min']:.0f} | "
            f"{'–' if density_only else _fmt(r, 'energy_mae_meV', 1)} | "
            f"{'–' if density_only else _fmt(r, 'force_mae_meV_per_A', 1)} | "
            f"{_fmt(r, 'dipole_mae_D', 4)} | {_fmt(r, 'density_l1_percent', 2)} | "
            f"{_fmt(r, 'density_l1_vs_dft_percent', 2)} | "
            f"{_fmt(r, 'fit_l1_vs_dft_percent_same_frames', 2)} |")
    lines += [
        "",
        "Reference points: MACE on rMD17 ethanol with 1000 training frames (published): energy "
        "MAE 0.4 meV, force MAE 2.1 meV/Å. The fixed-basis fitting floor (def2-universal-jkfit, "
        "Coulomb fit with N and dipole constrained) is the last column. Dipole MAE is per "
        "Cartesian component. L1 = ∫|ρ_pred − ρ_ref| d³r / N on a PySCF grid.",
        "",
        "![learning curve](rmd17.png)",
        "",
    ]
    return "\n".join(lines)


def plot(rows: dict) -> None:
    """Test errors vs training frames (Δ variants) and validation force loss vs time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = sorted((r["n_train"], name) for name, r in rows.items() if name.startswith("delta_"))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), dpi=110)
    if curve:
        n = [c[0] for c in curve]
        for ax, key, label in ((axes[0], "force_mae_meV_per_A", "force MAE (meV/Å)"),
                               (axes[1], "energy_mae_meV", "energy MAE (meV)")):
            ax.loglog(n, [rows[c[1]][key] for c in curve], "o-", label="DenSNet (this machine)")
            ax.axhline(2.1 if key.startswith("force") else 0.4, color="k", ls="--",
                       label="MACE, 1000 frames (published)")
            ax.set(xlabel="training frames", ylabel=label)
            ax.legend(fontsize=8)
    for name in rows:
        log = OUT / f"{name}.pt.log.jsonl"
        if not name.startswith("delta_") or not log.exists():
            continue
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        t, f = 0.0, []
        for e in entries:
            t += e["time_s"]
            if e["stage"] == "energy":
                f.append((t / 60, 1e3 * e["val"]["forces"] ** 0.5))
        if f:
            axes[2].semilogy(*zip(*f, strict=True), label=name)
    axes[2].set(xlabel="training wall time (min)", ylabel="validation force RMSE (meV/Å)")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "rmd17.png")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one variant")
    t.add_argument("name", choices=sorted(RECIPES))
    sub.add_parser("report", help="evaluate all trained variants and write the report")
    args = parser.parse_args()
    if args.command == "train":
        train(args.name)
    else:
        report()


if __name__ == "__main__":
    main()
