"""Per-step cost of `densnet serve` under a real i-PI vs the same model in-process (ASE).

    python bench/serve_bench.py [--steps 20] [--out bench/results]

For two untrained models of the committed dataset's basis ("small": the tests' config,
"default": ModelConfig()), on ethanol:
  * i-PI NVE, 1 bead, unix socket, through `densnet serve --stats`: wall time per request,
    split into model time (measured inside the driver) and protocol + i-PI overhead, with and
    without --tag-beads;
  * DenSNetCalculator in-process: time per energy+forces call;
  * model time vs atoms: n ethanol molecules 12 Å apart evaluated as one system (9 to 504 atoms).
Writes serve.json and serve.md.  Timings are medians on whatever else the machine is doing;
every route uses one torch thread (the driver runs with OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from densnet_cli.calculator import DenSNetCalculator, ModelEvaluator  # noqa: E402
from densnet_cli.data.hdf5 import DensityDataset  # noqa: E402
from densnet_cli.model.densnet import DenSNet, ModelConfig  # noqa: E402
from densnet_cli.model.io import save_model  # noqa: E402
from drivers.ipi_input import socket_forcefield  # noqa: E402
from tests.serve_data.harness import (  # noqa: E402
    SMALL,
    ethanol_atoms,
    run_ipi,
    socket_name,
)

CONFIGS = {"small": SMALL, "default": ModelConfig()}
N_MOLECULES = [1, 4, 16, 56]


def build_model(ethanol, config: ModelConfig, path: Path) -> Path:
    torch.manual_seed(1)
    model = DenSNet(ethanol.basis, ethanol.sad, config).double().eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    save_model(model, path)
    return path


def ipi_per_step(ethanol, model: Path, work: Path, steps: int, tag_beads: bool) -> dict:
    name = socket_name()
    work.mkdir(parents=True, exist_ok=True)
    args = [str(model), "--template", "init.xyz", "--unix", name, "--device", "cpu",
            "--stats", "stats.json", "--require-exit", "--connect-timeout", "60",
            "--tag-beads" if tag_beads else "--no-tag-beads"]
    start = time.perf_counter()
    result = run_ipi(work, ethanol_atoms(ethanol), steps, 1, socket_forcefield(name), args,
                     unix_name=name, timeout=600)
    total = time.perf_counter() - start
    if result["serve_rc"] != 0 or result["ipi_rc"] != 0:
        raise RuntimeError(result["serve_log"] + result["ipi_log"])
    stats = json.loads((work / "stats.json").read_text())
    return {"requests": stats["requests"], "wall_ms": stats["wall_ms_per_request"],
            "model_ms": stats["model_ms_per_request"],
            "overhead_ms": stats["overhead_ms_per_request"],
            "process_wall_s": total}


def ase_per_call(ethanol, model: Path, calls: int) -> float:
    atoms = ethanol_atoms(ethanol)
    atoms.calc = DenSNetCalculator(model, device="cpu")
    atoms.get_forces()  # warm-up
    rng = np.random.default_rng(0)
    times = []
    for _ in range(calls):
        atoms.positions += rng.normal(0, 0.002, atoms.positions.shape)
        t = time.perf_counter()
        atoms.get_forces()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def scaling(ethanol, model: Path, budget_s: float) -> list[dict]:
    evaluator = ModelEvaluator(model, device="cpu")
    base = ethanol_atoms(ethanol)
    rows = []
    for n_mol in N_MOLECULES:
        side = int(np.ceil(n_mol ** (1 / 3)))
        offsets = np.array([(i, j, k) for i in range(side) for j in range(side)
                            for k in range(side)][:n_mol], dtype=float) * 12.0
        positions = np.concatenate([base.positions + o for o in offsets])[None]
        numbers = np.tile(base.numbers, n_mol)
        evaluator(numbers, positions)  # warm-up (builds the batch)
        times = []
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 20):
            t = time.perf_counter()
            evaluator(numbers, positions)
            times.append(time.perf_counter() - t)
        rows.append({"atoms": len(numbers), "model_ms": 1e3 * statistics.median(times),
                     "calls": len(times)})
    return rows


def markdown(results: dict) -> str:
    lines = ["# `densnet serve` per-step cost (CPU)", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}  ",
             f"Torch threads: {results['torch_threads']}; {results['note']}", "",
             "## Ethanol (9 atoms), per MD step", "",
             "| model | route | wall ms/step | model ms | protocol + i-PI ms |",
             "|---|---|---|---|---|"]
    for name, r in results["models"].items():
        for key, label in (("ipi_tagged", "i-PI + serve (--tag-beads)"),
                           ("ipi_untagged", "i-PI + serve (--no-tag-beads)")):
            x = r[key]
            lines.append(f"| {name} | {label} | {x['wall_ms']:.2f} | {x['model_ms']:.2f} | "
                         f"{x['overhead_ms']:.2f} |")
        lines.append(f"| {name} | ASE in-process (DenSNetCalculator) | "
                     f"{r['ase_ms']:.2f} | {r['ase_ms']:.2f} | 0 |")
    lines += ["", "## Model time vs atoms (ethanol molecules 12 Å apart, one system)", "",
              "| atoms | " + " | ".join(f"{n} ms" for n in results["models"]) + " |",
              "|---|" + "---|" * len(results["models"])]
    for i, n_mol in enumerate(N_MOLECULES):
        cells = [f"{r['scaling'][i]['model_ms']:.1f}" for r in results["models"].values()]
        lines.append(f"| {9 * n_mol} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the driver runs (OMP_NUM_THREADS=1): like for like
    ethanol = DensityDataset(ROOT / "examples" / "ethanol" / "ethanol_100.h5")
    load = os.getloadavg()
    results: dict = {
        "command": "python bench/serve_bench.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"torch {torch.__version__}",
        "torch_threads": torch.get_num_threads(),
        "note": f"load average at start {load[0]:.2f} (other jobs were running)",
        "steps": args.steps, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in CONFIGS.items():
            model = build_model(ethanol, config, Path(tmp) / f"{name}.pt")
            results["models"][name] = {
                "ipi_tagged": ipi_per_step(ethanol, model, Path(tmp) / f"{name}-t", args.steps,
                                           True),
                "ipi_untagged": ipi_per_step(ethanol, model, Path(tmp) / f"{name}-u",
                                             args.steps, False),
                "ase_ms": ase_per_call(ethanol, model, args.steps),
                "scaling": scaling(ethanol, model, budget_s=10.0),
            }
            print(name, json.dumps(results["models"][name]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "serve.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
