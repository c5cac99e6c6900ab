r"""The benchmark report: DenSNet vs PySCF vs MACE speed, cost vs size, accuracy, MD summaries.

    python bench/benchmark.py [--model bench/results/models/delta_800.pt] [--quick]

Measured side by side in this one run, on this machine, one CPU thread each:

1. seconds per energy + forces evaluation of ethanol: PySCF PBE/def2-SVP (density-fitted, the
   training data's level; a fresh SCF per call, as in MD) vs the DenSNet model (energy, forces
   and dipole) vs MACE with random weights at two sizes (``bench/mace_timing.py`` in the
   separate venv ``.venv-mace``, built by ``make bench-mace-venv``; skipped with a note if
   missing), and their ratios;
2. milliseconds per MD step under i-PI (``densnet serve`` over a unix socket, 1 bead) and per
   8-bead path-integral step (all beads in one request);
3. cost vs system size: clusters of 1 to 111 ethanol molecules (9 to 999 atoms, liquid-like
   spacing so every atom has condensed-phase neighbours), DenSNet and MACE, with a linear fit;
4. accuracy on the rMD17 ethanol test frames (``bench/results/rmd17.json``) next to the
   published MACE rMD17 figures; and the MD validation summaries if their reports exist
   (``bench/results/md_ethanol.json``, ``pimd_ethanol.json``, ``harmonic_ethanol.json``).

Writes bench/results/benchmark.{md,json,png}.  ``--quick`` (CI-sized): fewer repeats, sizes up
to 144 atoms, no PySCF and no i-PI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.command import command_line, relative  # noqa: E402
from densnet_cli.calculator import ModelEvaluator  # noqa: E402
from densnet_cli.data.atomic import save_figure, write_text  # noqa: E402
from densnet_cli.reference.dft import LevelOfTheory  # noqa: E402
from drivers.ipi_input import (  # noqa: E402
    ipi_input,
    run_ipi_with_serve,
    socket_forcefield,
    write_ipi_xyz,
)

OUT = ROOT / "bench/out/benchmark"
RESULTS = ROOT / "bench/results/benchmark"
ETHANOL = ROOT / "examples/ethanol/ethanol_rmd17_100.xyz"
MACE_PYTHON = ROOT / ".venv-mace/bin/python"
SPACING = 5.0  # Å between molecule centres in the clusters (~0.6 g/cm³)
CLUSTER_MOLECULES = [1, 4, 16, 32, 64, 111]
# Batatia et al., "MACE: Higher Order Equivariant Message Passing Neural Networks for Fast and
# Accurate Force Fields", NeurIPS 2022, Table 1 (rMD17 ethanol, 950 training configurations):
# energy MAE 0.4 meV, force MAE 2.1 meV/Å.
MACE_PUBLISHED = {"energy_mae_meV": 0.4, "force_mae_meV_per_A": 2.1,
                  "source": "Batatia et al., NeurIPS 2022, Table 1 (rMD17 ethanol)"}


def ethanol_cluster(n_molecules: int, seed: int = 0) -> Atoms:
    """n ethanol molecules (rMD17 frames) on a cubic lattice, randomly oriented, no clashes."""
    frames = ase.io.read(ETHANOL, index=":")
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    sites = np.array([(i, j, k) for i in range(side) for j in range(side)
                      for k in range(side)][:n_molecules], dtype=float) * SPACING
    cluster = Atoms()
    for m, site in enumerate(sites):
        molecule = frames[m % len(frames)].copy()
        molecule.positions -= molecule.get_center_of_mass()
        for _ in range(100):
            trial = molecule.copy()
            trial.positions = Rotation.random(random_state=rng.integers(2**31)).apply(
                molecule.positions) + site
            if len(cluster) == 0 or np.min(np.linalg.norm(
                    cluster.positions[:, None] - trial.positions[None], axis=-1)) > 1.8:
                break
        else:
            raise RuntimeError(f"could not place molecule {m} without a clash")
        cluster += trial
    return cluster


def median_seconds(call, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def densnet_seconds(evaluator: ModelEvaluator, atoms: Atoms, repeats: int) -> float:
    """Median seconds of one energy + forces + dipole call (the MD hot path)."""
    positions = atoms.positions[None]
    return median_seconds(lambda: evaluator(atoms.numbers, positions), repeats)


def pyscf_seconds(atoms: Atoms, repeats: int) -> float:
    from pyscf import lib

    from densnet_cli.analysis.harmonic import PySCFCalculator

    calc = PySCFCalculator(LevelOfTheory(), threads=1)

    def call() -> None:
        calc.reset()
        calc.get_forces(atoms.copy())

    with lib.with_omp_threads(1):
        return median_seconds(call, repeats, warmup=0)


def mace_timings(structures: Path, repeats: int, models: str, name: str) -> dict:
    """bench/mace_timing.py's JSON (MACE models ``models``), or {'skipped': why}."""
    if not MACE_PYTHON.exists():
        return {"skipped": f"{MACE_PYTHON.relative_to(ROOT)} missing: run "
                           "`make bench-mace-venv`"}
    out = OUT / f"mace_{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    result = subprocess.run([str(MACE_PYTHON), str(ROOT / "bench/mace_timing.py"),
                             "--structures", str(structures), "--repeats", str(repeats),
                             "--dtype", "float64", "--models", models, "--budget", "30",
                             "--out", str(out)],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        return {"skipped": "bench/mace_timing.py failed: "
                + (result.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.read_text())


def ipi_ms_per_step(model: Path, atoms: Atoms, beads: int, steps: int) -> dict:
    """Wall ms per MD step under i-PI with densnet serve (unix socket, beads batched)."""
    work = OUT / f"ipi_{beads}bead"
    work.mkdir(parents=True, exist_ok=True)
    write_ipi_xyz(atoms, work / "init.xyz")
    socket = f"densnet-bench-{uuid.uuid4().hex[:8]}"
    xml = ipi_input(steps=steps, beads=beads, thermostat="trpmd" if beads > 1 else None,
                    forcefield=socket_forcefield(socket, batch_size=beads, latency_s=1e-4),
                    outputs="<properties filename='out' stride='10'> [ step ] </properties>")
    run_ipi_with_serve(work, xml, [str(model.resolve()), "--template", "init.xyz", "--unix",
                                   socket, "--device", "cpu", "--no-tag-beads",
                                   "--require-exit", "--stats", "stats.json"], timeout_s=1800)
    stats = json.loads((work / "stats.json").read_text())
    return {"beads": beads, "steps": steps, "requests": stats["requests"],
            "wall_ms_per_step": stats["wall_ms_per_request"],
            "model_ms_per_step": stats["model_ms_per_request"],
            "overhead_ms_per_step": stats["overhead_ms_per_request"]}


def linear_fit(atoms: list[int], seconds: list[float], edges: list[int] | None = None
               ) -> dict:
    """t = a + b·n over the sizes ≥ 100 atoms, and log-log slopes there vs atoms and edges."""
    n, t = np.array(atoms, float), np.array(seconds)
    big = n >= 100
    b, a = np.polyfit(n[big], t[big], 1)

    def slope(x: np.ndarray) -> float:
        return float(np.polyfit(np.log(x[big]), np.log(t[big]), 1)[0]) if big.sum() >= 2 \
            else float("nan")

    fit = {"intercept_ms": 1e3 * a, "ms_per_atom": 1e3 * b, "loglog_slope": slope(n)}
    if edges is not None:
        fit["loglog_slope_vs_edges"] = slope(np.array(edges, float))
    return fit


def graph_seconds(atoms: Atoms, evaluator: ModelEvaluator) -> float:
    """Median seconds to build DenSNet's radius graph of ``atoms`` (one molecule)."""
    from densnet_cli.model.batch import radius_graph

    positions = torch.as_tensor(atoms.positions)
    molecule = torch.zeros(len(atoms), dtype=torch.long)
    cutoff = float(evaluator.metadata["config"]["cutoff"])
    return median_seconds(lambda: radius_graph(positions, molecule, cutoff), 20)


def count_edges(atoms: Atoms, cutoff: float) -> int:
    """Ordered pairs of distinct atoms closer than ``cutoff`` (the model's graph)."""
    from scipy.spatial import cKDTree

    return 2 * len(cKDTree(atoms.positions).query_pairs(cutoff))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "bench/results/models/delta_800.pt")
    parser.add_argument("--quick", action="store_true", help="CI-sized run (see above)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output prefix")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite OUT.md/.png from OUT.json (e.g. after a format change)")
    args = parser.parse_args()
    if args.render:
        report = json.loads(args.out.with_suffix(".json").read_text())
        write_text(args.out.with_suffix(".md"), markdown(report))
        plot(args.out.with_suffix(".png"), report)
        return
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    repeats = 5 if args.quick else 20
    sizes = [m for m in CLUSTER_MOLECULES if not args.quick or m <= 16]
    ethanol = ase.io.read(ETHANOL, index=0)
    clusters = [ethanol_cluster(m) for m in sizes]
    ase.io.write(OUT / "structures.xyz", clusters)
    load = os.getloadavg()[0]
    report: dict = {
        "command": command_line(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                   f"{torch.__version__}, one thread per engine; load average at start "
                   f"{load:.2f}",
        "model": relative(args.model),
    }
    evaluator = ModelEvaluator(args.model, device="cpu")
    report["model_parameters"] = sum(p.numel() for p in evaluator.model.parameters())
    print("timing DenSNet", file=sys.stderr)
    densnet_size = [densnet_seconds(evaluator, c, max(3, repeats // (1 + len(c) // 100)))
                    for c in clusters]
    report["ethanol"] = {"densnet_s": densnet_size[0]}
    report["densnet_graph_ms_largest"] = 1e3 * graph_seconds(clusters[-1], evaluator)
    print("timing MACE", file=sys.stderr)
    ase.io.write(OUT / "ethanol.xyz", ethanol)
    mace = mace_timings(OUT / "structures.xyz", max(3, repeats // 4), "small,medium", "sizes")
    if not args.quick and "models" in mace:  # the rMD17-size model: ethanol only (memory)
        big = mace_timings(OUT / "ethanol.xyz", max(3, repeats // 4), "rmd17", "rmd17")
        mace["models"].update(big.get("models", {}))
    report["mace"] = mace
    if not args.quick:
        print("timing PySCF (a few minutes)", file=sys.stderr)
        report["ethanol"]["pyscf_s"] = pyscf_seconds(ethanol, 2)
        report["ethanol"]["pyscf_over_densnet"] = (report["ethanol"]["pyscf_s"]
                                                   / densnet_size[0])
        print("timing i-PI + densnet serve", file=sys.stderr)
        report["ipi"] = [ipi_ms_per_step(args.model, ethanol, 1, 400),
                         ipi_ms_per_step(args.model, ethanol, 8, 200)]
    cutoff = float(evaluator.metadata["config"]["cutoff"])
    edges = [count_edges(c, cutoff) for c in clusters]
    report["size"] = {"atoms": [len(c) for c in clusters], "densnet_edges": edges,
                      "densnet_cutoff": cutoff, "densnet_s": densnet_size,
                      "densnet_fit": linear_fit([len(c) for c in clusters], densnet_size,
                                                edges)}
    if "models" in mace:
        for name, entry in mace["models"].items():
            seconds = [row.get("calculator_s") for row in entry["structures"]]
            report["ethanol"][f"mace_{name}_s"] = seconds[0]
            report["ethanol"][f"mace_{name}_over_densnet"] = seconds[0] / densnet_size[0]
            if len(seconds) == len(clusters) and None not in seconds:
                report["size"][f"mace_{name}_s"] = seconds
                report["size"][f"mace_{name}_fit"] = linear_fit(
                    [len(c) for c in clusters], seconds,
                    [row["n_edges"] for row in entry["structures"]])
    report["accuracy"] = accuracy()
    report["validation"] = validation()
    write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1))
    write_text(args.out.with_suffix(".md"), markdown(report))
    plot(args.out.with_suffix(".png"), report)
    print(markdown(report))


def accuracy() -> dict | None:
    path = ROOT / "bench/results/rmd17.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())
    return {"source": str(path.relative_to(ROOT)), "densnet": rows, "mace": MACE_PUBLISHED}


def validation() -> dict:
    found = {}
    for name in ("harmonic_ethanol", "md_ethanol", "pimd_ethanol"):
        path = ROOT / f"bench/results/{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def markdown(r: dict) -> str:
    e = r["ethanol"]
    lines = ["# DenSNet benchmark report", "", f"Command: `{r['command']}`  ",
             f"Machine: {r['machine']}  ",
             f"Model: `{r['model']}` ({r['model_parameters']} parameters)", "",
             "## Energy + forces of one ethanol molecule (9 atoms)", "",
             "| engine | s per call | relative to DenSNet |", "|---|---|---|",
             f"| DenSNet (energy, forces, dipole) | {e['densnet_s']:.4f} | 1 |"]
    if "pyscf_s" in e:
        lines.append(f"| PySCF PBE/def2-SVP (fresh SCF + gradient) | {e['pyscf_s']:.2f} | "
                     f"{e['pyscf_over_densnet']:.0f} |")
    mace = r["mace"]
    if "models" in mace:
        for name, entry in mace["models"].items():
            lines.append(f"| MACE {name} ({entry['parameters']} parameters, random weights) | "
                         f"{e[f'mace_{name}_s']:.4f} | {e[f'mace_{name}_over_densnet']:.2f} |")
        lines += ["", f"MACE (`bench/mace_timing.py`, {mace['dtype']}): {mace['timing']}; "
                  f"versions {mace['versions']}.  Its r_max is 5 Å, DenSNet's cutoff 4 Å."]
    else:
        lines += ["", f"MACE not timed: {mace['skipped']}."]
    if "ipi" in r:
        lines += ["", "## MD step under i-PI (`densnet serve`, unix socket, ethanol)", "",
                  "| beads | steps | wall ms/step | model ms | protocol + i-PI ms |",
                  "|---|---|---|---|---|",
                  *(f"| {x['beads']} | {x['steps']} | {x['wall_ms_per_step']:.1f} | "
                    f"{x['model_ms_per_step']:.1f} | {x['overhead_ms_per_step']:.1f} |"
                    for x in r["ipi"])]
    s = r["size"]
    engines = ["densnet"] + [k[:-2] for k in s if k.startswith("mace_") and k.endswith("_s")]
    lines += ["", "## Cost vs size (ethanol clusters, one thread)", "",
              f"Clusters of randomly oriented ethanol molecules {SPACING:g} Å apart; DenSNet's "
              f"graph holds the ordered atom pairs within {s['densnet_cutoff']:g} Å (edges).", "",
              "| atoms | DenSNet edges | " + " | ".join(f"{k} ms" for k in engines) +
              " | DenSNet ms/atom |", "|---|---|" + "---|" * len(engines) + "---|"]
    for i, n in enumerate(s["atoms"]):
        lines.append(f"| {n} | {s['densnet_edges'][i]} | "
                     + " | ".join(f"{1e3 * s[f'{k}_s'][i]:.1f}" for k in engines)
                     + f" | {1e3 * s['densnet_s'][i] / n:.2f} |")
    lines.append("")
    for k in engines:
        fit = s[f"{k}_fit"]
        lines.append(f"- {k}: t ≈ {fit['intercept_ms']:.1f} ms + {fit['ms_per_atom']:.3f} "
                     f"ms/atom over ≥ 100 atoms; log-log slope vs atoms "
                     f"{fit['loglog_slope']:.2f}, vs edges "
                     f"{fit.get('loglog_slope_vs_edges', float('nan')):.2f} (1 = linear)")
    per_edge = [1e3 * t / e for t, e in zip(s["densnet_s"], s["densnet_edges"], strict=True)]
    lines += ["", "Edges per atom grow with cluster size until the clusters are bulk-like "
              "(surface molecules have fewer neighbours), so time per atom rises with them; "
              f"DenSNet's time per edge goes {per_edge[2]:.3f} → {per_edge[-1]:.3f} ms from "
              f"{s['densnet_edges'][2]} to {s['densnet_edges'][-1]} edges (larger tensors, "
              "less cache).  The graph itself is built from all atom pairs per molecule "
              f"(O(n²), {r['densnet_graph_ms_largest']:.1f} ms at {s['atoms'][-1]} atoms), not the "
              "cost that matters here."]
    acc = r["accuracy"]
    if acc:
        lines += ["", "## Accuracy on rMD17 ethanol test frames 800–999", "",
                  f"From `{acc['source']}` (`python bench/rmd17.py report`); MACE: "
                  f"{acc['mace']['source']}.", "",
                  "| model | train frames | E MAE meV | F MAE meV/Å | μ MAE D |",
                  "|---|---|---|---|---|"]
        for row in _accuracy_rows(acc["densnet"]):
            lines.append(row)
        lines.append(f"| MACE (published) | 950 | {acc['mace']['energy_mae_meV']} | "
                     f"{acc['mace']['force_mae_meV_per_A']} | – |")
    v = r["validation"]
    if v:
        lines += ["", "## MD validation (from their own reports)", ""]
        if "harmonic_ethanol" in v:
            h = v["harmonic_ethanol"]["summary"]
            lines.append(f"- Harmonic (bench/results/harmonic_ethanol.md): mean |Δν| "
                         f"{h['mean_absolute_difference_cm1']:.1f} cm⁻¹ vs PySCF, largest "
                         f"{h['max_absolute_difference_cm1']:.1f}, median intensity ratio "
                         f"{h['median_intensity_ratio']:.2f}.")
        if "md_ethanol" in v:
            m = v["md_ethanol"]
            lines.append(f"- NVE (bench/results/md_ethanol.md): {m['nve_ps_total']:g} ps, "
                         f"mean |drift| {m['energy']['mean_abs_meV_per_ps']:.3f} meV/ps, "
                         f"{m['stability']['frames_with_changed_connectivity']} frames with a "
                         "changed bond graph.")
        if "pimd_ethanol" in v:
            p = v["pimd_ethanol"]
            shifts = ", ".join(f"{k} {b['shift_maximum_cm1']:+.0f}"
                               for k, b in p["bands"].items())
            lines.append(f"- TRPMD {p['run']['beads']} beads (bench/results/pimd_ethanol.md): "
                         f"quantum shift of band maxima vs classical (cm⁻¹): {shifts}.")
    return "\n".join(lines) + "\n"


def _accuracy_rows(variants: dict) -> list[str]:
    """Table rows of the rMD17 variants that predict energies (bench/rmd17.py's JSON)."""
    return [f"| DenSNet {name} ({row['what']}) | {row['n_train']} | "
            f"{row['energy_mae_meV']:.1f} | {row['force_mae_meV_per_A']:.1f} | "
            f"{row['dipole_mae_D']:.4f} |"
            for name, row in variants.items() if "density only" not in row["what"]]


def plot(path: Path, r: dict) -> None:
    import matplotlib.pyplot as plt

    s = r["size"]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key in [k for k in s if k.endswith("_s")]:
        ax.plot(s["atoms"], 1e3 * np.array(s[key]), "o-", label=key[:-2])
    ax.set(xscale="log", yscale="log", xlabel="atoms", ylabel="ms per energy+forces call",
           title="Cost vs size, ethanol clusters (1 CPU thread)")
    n = np.array(s["atoms"], float)
    ax.plot(n, 1e3 * s["densnet_s"][-1] * n / n[-1], "k:", lw=0.8, label="linear")
    ax.legend()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
