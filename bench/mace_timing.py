"""MACE energy+forces speed on given structures, for timing DenSNet and MACE side by side.

    .venv-mace/bin/python bench/mace_timing.py --structures FILE.xyz [--repeats 10] [--warmup 3]
        [--dtype float64|float32] [--models small,medium,rmd17] [--budget 60]
        [--max-memory-gb GB] [--out FILE.json]
    .venv-mace/bin/python bench/mace_timing.py --write-ethanol-clusters FILE.xyz   # test input

Runs in its own environment (`make bench-mace-venv`: mace-torch pins e3nn 0.4.4, DenSNet needs
0.6).  No network and no downloaded weights: each model is a ScaleShiftMACE built here with
random weights for elements H, C, O, S and r_max = 5 Å (timing does not depend on the values).

Model sizes (all: RealAgnosticResidualInteractionBlock, 2 interactions, correlation 3,
spherical harmonics up to l = 3, 8 Bessel functions, polynomial envelope p = 5, readout MLP 16x0e):
  small   16x0e+16x1o, radial MLP [32, 32]           24,544 parameters (a ~24k DenSNet's size)
  medium  128x0e+128x1o, radial MLP [64, 64, 64]      651,920 (MACE README / MACE-OFF23 medium)
  rmd17   256x0e+256x1o+256x2e, radial MLP [64, 64, 64]   2,983,184 (MACE paper, NeurIPS 2022,
          App. A.5.1, rMD17 / 3BPA: two layers, 256 channels, l_max 3, L = 2 messages)

For every structure of --structures (an ASE-readable file; molecules in vacuum, no PBC) and every
model, after --warmup calls, the median over --repeats calls of:
  calculator_s  MACECalculator.calculate(atoms) -- what a MACE user's ASE call costs: neighbour
                list + AtomicData + batching, the model, forces (and, as MACE's calculator always
                does, the virial/stress) by autograd;
  model_s       model(batch, compute_force=True) on a prebuilt batch: energy + forces (autograd,
                -dE/dr) only;
  graph_s       building that batch alone (config_from_atoms, AtomicData.from_config, Batch).
A series is shortened to about --budget seconds (at least one timed call after one warm-up, the
JSON says how many were timed), and the process's memory is capped (--max-memory-gb): a frame
that needs more is recorded as out of memory and the model skips larger frames -- the rmd17 model
on ~1000 condensed atoms needs more than 20 GB in float64.
One torch thread unless --threads.  JSON on stdout, or in --out; progress on stderr.
"""

from __future__ import annotations

import os

# MACE and e3nn 0.4.4 load their own pickled constants; torch >= 2.6 refuses that by default.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import contextlib
import gc
import json
import logging
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

ELEMENTS = (1, 6, 8, 16)  # H, C, O, S
R_MAX = 5.0

COMMON = {
    "r_max": R_MAX,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "max_ell": 3,
    "num_interactions": 2,
    "correlation": 3,
    "MLP_irreps": "16x0e",
    "interaction": "RealAgnosticResidualInteractionBlock",
}
MODELS = {
    "small": {**COMMON, "hidden_irreps": "16x0e+16x1o", "radial_MLP": [32, 32]},
    "medium": {**COMMON, "hidden_irreps": "128x0e+128x1o", "radial_MLP": [64, 64, 64]},
    "rmd17": {**COMMON, "hidden_irreps": "256x0e+256x1o+256x2e", "radial_MLP": [64, 64, 64]},
}
MODEL_NOTES = {
    "small": "about the parameter count of a small DenSNet (~24k)",
    "medium": "128x0e+128x1o, max_L 1 (MACE README example / MACE-OFF23 medium size)",
    "rmd17": "MACE paper (Batatia et al., NeurIPS 2022) App. A.5.1 rMD17 setup, L=2 messages",
}


def import_mace():
    """The MACE stack, or exit with one line saying how to get it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import ase
            import ase.io
            import e3nn
            import mace
            import numpy as np
            import torch
            from e3nn import o3
            from mace import data, modules
            from mace.calculators import MACECalculator
            from mace.tools import torch_geometric
    except Exception as exc:  # ImportError, or a broken install
        sys.exit(f"mace_timing.py: cannot import MACE ({type(exc).__name__}: {exc}); "
                 f"run `make bench-mace-venv` and use .venv-mace/bin/python")
    return dict(ase=ase, e3nn=e3nn, mace=mace, np=np, torch=torch, o3=o3, data=data,
                modules=modules, MACECalculator=MACECalculator, torch_geometric=torch_geometric)


def build_model(m, spec: dict, dtype, seed: int = 0):
    torch, o3, modules, np = m["torch"], m["o3"], m["modules"], m["np"]
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn constants in full precision, then cast
    try:
        block = modules.interaction_classes[spec["interaction"]]
        model = modules.ScaleShiftMACE(
            r_max=spec["r_max"], num_bessel=spec["num_bessel"],
            num_polynomial_cutoff=spec["num_polynomial_cutoff"], max_ell=spec["max_ell"],
            interaction_cls=block, interaction_cls_first=block,
            num_interactions=spec["num_interactions"], num_elements=len(ELEMENTS),
            hidden_irreps=o3.Irreps(spec["hidden_irreps"]),
            MLP_irreps=o3.Irreps(spec["MLP_irreps"]),
            atomic_energies=np.zeros(len(ELEMENTS)), avg_num_neighbors=10.0,
            atomic_numbers=list(ELEMENTS), correlation=spec["correlation"],
            gate=torch.nn.functional.silu, radial_MLP=list(spec["radial_MLP"]),
            atomic_inter_scale=1.0, atomic_inter_shift=0.0,
        )
    finally:
        torch.set_default_dtype(previous)
    return model.to(dtype).eval()


def atoms_to_batch(m, atoms, z_table, dtype):
    """The MACE data pipeline, as MACECalculator runs it: Configuration -> AtomicData -> Batch."""
    torch, data = m["torch"], m["data"]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        config = data.config_from_atoms(atoms)
        graph = data.AtomicData.from_config(config, z_table=z_table, cutoff=R_MAX)
    finally:
        torch.set_default_dtype(previous)
    return m["torch_geometric"].Batch.from_data_list([graph])


def median_time(fn, repeats: int, warmup: int, budget: float) -> tuple[float, int]:
    """Median seconds per call of fn after warmup calls, and how many calls were timed.

    The first warm-up call sets the pace: a series is cut so that warm-up plus timing take about
    `budget` seconds, with at least one timed call (so a 1000-atom run of a big model stays
    bounded)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    if first * (warmup + repeats) > budget:
        warmup = min(warmup, 1 + int(0.2 * budget / max(first, 1e-9)))
        repeats = max(1, min(repeats, int(budget / max(first, 1e-9)) - warmup))
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), repeats


def check_structures(frames) -> None:
    allowed = set(ELEMENTS)
    for i, atoms in enumerate(frames):
        bad = sorted(set(int(z) for z in atoms.numbers) - allowed)
        if bad:
            sys.exit(f"mace_timing.py: frame {i} has elements {bad}; "
                     "the models know only H, C, O, S")
        if any(atoms.pbc):
            sys.exit(f"mace_timing.py: frame {i} is periodic; give molecules in vacuum (pbc=False)")


def is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or any(
        phrase in text for phrase in ("can't allocate memory", "out of memory", "bad_alloc"))


def limit_memory(gigabytes: float) -> None:
    """Cap this process's address space at its present size plus `gigabytes`, so that a model
    too big for the machine fails with an allocation error (recorded, and that model is skipped on
    larger frames) instead of bringing the kernel's OOM killer onto this or another process."""
    import resource

    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = int(vm_kb * 1024 + gigabytes * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def available_gb() -> float:
    try:
        with open("/proc/meminfo") as meminfo:
            kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
        return kb / 2**20
    except (OSError, StopIteration):
        return 8.0


def time_model(m, name: str, spec: dict, frames, args, dtype) -> dict:
    from mace.tools import utils as mace_utils

    model = build_model(m, spec, dtype)
    n_params = sum(p.numel() for p in model.parameters())
    z_table = mace_utils.AtomicNumberTable(list(ELEMENTS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = m["MACECalculator"](models=model, device="cpu", default_dtype=args.dtype)
    rows = []
    too_big = None  # edges of the smallest frame that ran out of memory
    for i, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = None
        batch = atoms_to_batch(m, atoms, z_table, dtype)
        batch_dict = batch.to_dict()

        last: dict = {}

        def model_call(batch_dict=batch_dict, last=last):
            out = model(batch_dict, training=False, compute_force=True)
            last["energy"] = float(out["energy"].detach())
            return out["energy"], out["forces"]

        def calc_call(atoms=atoms):
            calc.calculate(atoms, ["energy", "forces"])
            return calc.results["energy"], calc.results["forces"]

        def graph_call(atoms=atoms):
            return atoms_to_batch(m, atoms, z_table, dtype)

        row = {"frame": i, "n_atoms": len(atoms), "n_edges": int(batch["edge_index"].shape[1])}
        if too_big is not None and row["n_edges"] >= too_big:
            row["error"] = (f"skipped: a frame with {too_big} edges already ran out of memory "
                            f"(--max-memory-gb {args.max_memory_gb:.1f})")
            rows.append(row)
            print(f"mace_timing: {name:6s} frame {i:3d} {len(atoms):6d} atoms skipped (memory)",
                  file=sys.stderr, flush=True)
            continue
        budget, warmup = args.budget, max(args.warmup, 1)
        try:
            t_graph, n_graph = median_time(graph_call, args.repeats, warmup, budget)
            t_calc, n_calc = median_time(calc_call, args.repeats, warmup, budget)
            t_model, n_model = median_time(model_call, args.repeats, warmup, budget)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            too_big = row["n_edges"]
            row["error"] = f"out of memory (--max-memory-gb {args.max_memory_gb:.1f})"
            rows.append(row)
            last.clear()
            gc.collect()
            print(f"mace_timing: {name:6s} frame {i:3d} {len(atoms):6d} atoms "
                  f"{row['n_edges']:7d} edges  out of memory", file=sys.stderr, flush=True)
            continue
        # the two routes must agree, or the timings are not of the same thing
        energy, e_calc = last["energy"], calc.results["energy"]
        if abs(energy - e_calc) > 1e-6 * max(1.0, abs(e_calc)):
            raise RuntimeError(f"{name} frame {i}: model ({energy}) and calculator ({e_calc}) "
                               "energies differ")
        row.update({"calculator_s": t_calc, "model_s": t_model, "graph_s": t_graph,
                    "timed_calls": {"calculator": n_calc, "model": n_model, "graph": n_graph}})
        rows.append(row)
        print(f"mace_timing: {name:6s} frame {i:3d} {len(atoms):6d} atoms "
              f"{row['n_edges']:7d} edges  "
              f"calculator {1e3 * t_calc:9.2f} ms  model {1e3 * t_model:9.2f} ms  "
              f"graph {1e3 * t_graph:8.2f} ms", file=sys.stderr, flush=True)
    return {"hyperparameters": spec, "note": MODEL_NOTES[name], "parameters": n_params,
            "structures": rows}


def write_ethanol_clusters(path: Path, sizes=(1, 11, 111), seed: int = 0) -> None:
    """Test input: rMD17 ethanol frame 0, then clusters of randomly rotated copies on a cubic grid
    (4.6 Å spacing, about liquid ethanol's density), so about 100 and 1000 atoms."""
    import ase.io
    import numpy as np
    from scipy.spatial.transform import Rotation

    root = Path(__file__).resolve().parents[1]
    ethanol = ase.io.read(root / "examples/ethanol/ethanol_rmd17_100.xyz", index=0)
    ethanol.calc = None
    ethanol.info = {}
    ethanol.positions -= ethanol.positions.mean(axis=0)
    rng = np.random.default_rng(seed)
    frames = []
    for n in sizes:
        side = int(np.ceil(n ** (1 / 3)))
        grid = np.array(list(np.ndindex(side, side, side)))[:n]
        cluster = None
        for cell_index in grid:
            mol = ethanol.copy()
            if n > 1:
                mol.positions = mol.positions @ Rotation.random(random_state=rng).as_matrix().T
            mol.positions += 4.6 * cell_index
            cluster = mol if cluster is None else cluster + mol
        cluster.pbc = False
        frames.append(cluster)
    ase.io.write(path, frames, format="extxyz")
    print(f"wrote {path}: " + ", ".join(f"{len(f)} atoms" for f in frames), file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--structures", type=Path, help="ASE-readable file, every frame is timed")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per frame (median)")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed calls before (default 3, at least 1 is made)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--models", default="small,medium,rmd17",
                   help=f"comma-separated, of {', '.join(MODELS)} (default: all)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds per model, frame and route, warm-up included, beyond which "
                        "fewer calls are timed (at least one; default 60)")
    p.add_argument("--max-memory-gb", type=float, default=None,
                   help="memory the timings may take beyond the loaded libraries, in GiB; a frame "
                        "that needs more is recorded as out of memory (default: 60%% of the "
                        "memory available at start)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    p.add_argument("--write-ethanol-clusters", type=Path, metavar="FILE",
                   help="write test structures (9, 99, 999 atoms of ethanol) to FILE and exit")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    # MACE prints notices to stdout (e.g. about cuequivariance): keep stdout for the JSON alone.
    real_stdout = sys.stdout
    warnings.filterwarnings("ignore")  # TorchScript / e3nn deprecation notices while building
    with contextlib.redirect_stdout(sys.stderr):
        result, out = run(p, args)
    text = json.dumps(result, indent=2)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    elif result:
        print(text, file=real_stdout)
    return 0


def run(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[dict, Path | None]:
    m = import_mace()
    if args.write_ethanol_clusters:
        write_ethanol_clusters(args.write_ethanol_clusters)
        return {}, None
    if args.structures is None:
        p.error("--structures is required")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        p.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")

    torch = m["torch"]
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    logging.disable(logging.WARNING)  # MACECalculator's dtype and head notices
    dtype = getattr(torch, args.dtype)

    frames = m["ase"].io.read(args.structures, index=":")
    check_structures(frames)
    if args.max_memory_gb is None:
        args.max_memory_gb = 0.6 * available_gb()
    if sys.platform.startswith("linux"):
        limit_memory(args.max_memory_gb)

    result = {
        "benchmark": "mace_timing",
        "structures_file": str(args.structures),
        "dtype": args.dtype,
        "forces": "autograd, -dE/dr (MACE's own compute_force)",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "budget_s": args.budget,
        "max_memory_gb": round(args.max_memory_gb, 2),
        "timing": "median seconds per call; calculator_s = MACECalculator.calculate (graph + "
                  "model + forces + stress), model_s = model on a prebuilt batch (energy + "
                  "forces), graph_s = the batch alone",
        "elements": ["H", "C", "O", "S"],
        "versions": {
            "mace": getattr(m["mace"], "__version__", "unknown"),
            "torch": torch.__version__,
            "e3nn": m["e3nn"].__version__,
            "ase": m["ase"].__version__,
            "numpy": m["np"].__version__,
            "python": platform.python_version(),
        },
        "machine": platform.processor() or platform.machine(),
        "models": {},
    }
    for name in names:
        result["models"][name] = time_model(m, name, MODELS[name], frames, args, dtype)

    return result, args.out


if __name__ == "__main__":
    sys.exit(main())
