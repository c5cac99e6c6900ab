r"""Polythiophene scaling study (issue #8), stage by stage, resumably.

    python bench/polythiophene.py cost [--levels NAME ...] [--max-rings N] [--budget-s S]
    python bench/polythiophene.py cost-report

``cost``: the cost of one fit-density frame (DFT energy + forces + dipole, density fit and its
diagnostics: exactly what ``densnet fit-density`` spends per frame) of the all-anti chain of
1, 2, ... rings at each candidate level of theory, in this process with ``--threads`` PySCF
threads.  A level stops growing the chain once a frame took longer than ``--budget-s``.  Each
measurement is appended to bench/out/polythiophene/cost.jsonl as soon as it is made, and a
rerun skips what the file already holds, so the stage can be interrupted and resumed.

``cost-report``: bench/results/polythiophene_cost.{md,json,png}: seconds per frame vs rings for
every level, the power law fitted to the longest chains, and its extrapolation to 6 and 12 rings.

The data set (level of theory: :data:`LEVEL`, chosen from that report — PBE/def2-SVP, the
ethanol level, on DFT grid level 2, whose forces differ from grid level 4 by 0.5 meV/Å RMS):

    python bench/polythiophene.py sample [--rings 1 2 3] [--workers 2]
    python bench/polythiophene.py label [--rings 1 2 3] [--chunk 10] [--worker K/N]

DenSNet's side of the cost comparison:

    python bench/polythiophene.py model-cost [--model M] [--rings 1 2 3 ...]

``model-cost``: median seconds of one DenSNet energy + forces + dipole call (the MD hot path,
one thread) on the all-anti chain of 1 to 100 rings, written with the DFT seconds per frame
measured by ``cost`` (and its power law beyond) to bench/results/polythiophene_scaling.
{md,json,png}.  The model is a trained H/C/S model of the architecture used for the chains (the
ethanethiol one by default); the time of a call does not depend on the weights.

``sample``: ``densnet sample`` of the n-ring chains: thiophene from the literature ring, longer
chains built (``build_chain``) from the ring of the DFT-optimised thiophene, each with its
anti-gauche (S–C–C–S 150°) and syn-gauche (30°) inter-ring conformers, normal-mode sampled
at 300 K and 600 K; optimised geometries and DFT Hessians are cached in
bench/data/polythiophene/dft_cache (committed: each costs up to an hour, and a rerun in a later
session skips the DFT).
``label``: ``densnet fit-density`` of the samples in chunks of ``--chunk`` frames, one HDF5 file
per chunk in bench/data/polythiophene/, so that every finished chunk can be committed while a
label run spans several working sessions (a killed chunk resumes from its part store).
``--worker K/N`` splits the chunks between N processes run side by side (one per core).

Training and held-out accuracy per chain length:

    python bench/polythiophene.py train [--rings 1 2 3]
    python bench/polythiophene.py accuracy [--rings 1 2 3]

``train``: ``densnet train`` (the validations' architecture and schedule, cutoff 4 Å: a local
model) on every labelled chunk of the given chain lengths except the held-out one (the last
300 K chunk of each length) → bench/results/models/polythiophene_{RINGS}T.pt (resumable).
``accuracy``: ``densnet evaluate`` of that model on each held-out chunk (energy per atom,
forces, dipole, density L1 against the fit and the stored DFT density) →
bench/results/polythiophene_accuracy_{RINGS}T.{md,json}.

MD of a chain longer than any trained on:

    python bench/polythiophene.py md [--rings 12] [--trained-on 1 2] [--replicas 4] [--nve-ps 5]

``md``: the all-anti chain built from the DFT-optimised ring, Langevin-thermalised at 300 K,
then NVE at 0.5 fs, all replicas batched (bench/md_nve.py ``run``, resumable) in
bench/out/polythiophene/md_{N}T_{MODEL}/; ``bench/md_nve.py report --out`` that directory
gives the drift, bond-graph and bond-length statistics and the IR spectrum.

The model's IR intensities vs chain length (harmonic, all-anti chains optimised with it):

    python bench/polythiophene.py model-ir [--rings 1 2 4 8 12]

→ bench/results/polythiophene_model_ir_vs_length.{md,json}.

What the chain MD visited, back to DFT:

    python bench/polythiophene.py fragments --md bench/out/polythiophene/md_12T_1-2T [--length 3]
    python bench/polythiophene.py label --rings 1 2 3 --fragments-of 12

``fragments``: short chains (rings k … k + length − 1, capped with H where the chain went on)
cut from the MD frames, in a seeded random order → bench/data/polythiophene/{L}T_md{N}T.xyz;
``label --fragments-of N`` labels those of the ``--rings`` lengths in chunks like the samples,
and ``train`` takes those chunks with the samples of the same length: what the long-chain MD
visits, at the DFT cost of a few rings.  A length with fragments but no samples holds out its
first fragment chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from command import command_line, write_report  # noqa: E402

from densnet_cli.basis.layout import BasisSet  # noqa: E402
from densnet_cli.reference.dft import LevelOfTheory  # noqa: E402
from densnet_cli.reference.labelling import FrameTask, LabelSettings, label_frame  # noqa: E402
from densnet_cli.reference.sad import sad_prior  # noqa: E402
from densnet_cli.systems.oligothiophene import (  # noqa: E402
    build_chain,
    chain_dihedrals,
    chain_sites,
    inter_ring_dihedral_indices,
    inter_ring_dihedrals,
)

WORK = ROOT / "bench/out/polythiophene"
DATA = ROOT / "bench/data/polythiophene"
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench/results"
DENSITY_BASIS = "def2-universal-jkfit"
REFERENCE = "PBE/def2-SVP g4"


@dataclass(frozen=True)
class Candidate:
    name: str
    level: LevelOfTheory
    note: str


CANDIDATES = {c.name: c for c in [
    Candidate("PBE/def2-SVP g4", LevelOfTheory(basis="def2-SVP", grid_level=4),
              "the ethanol level (rMD17 reproduction)"),
    Candidate("PBE/def2-SVP g3", LevelOfTheory(basis="def2-SVP", grid_level=3),
              "same basis, coarser XC grid"),
    Candidate("PBE/def2-SVP g2", LevelOfTheory(basis="def2-SVP", grid_level=2),
              "same basis, coarse XC grid"),
    Candidate("PBE/6-31G g3", LevelOfTheory(basis="6-31G", grid_level=3),
              "split valence without polarisation"),
    Candidate("PBE/STO-3G g3", LevelOfTheory(basis="STO-3G", grid_level=3),
              "minimal basis"),
]}


def measure(candidate: Candidate, rings: int, threads: int) -> dict:
    """Label the all-anti chain of ``rings`` rings once; its cost and diagnostics."""
    atoms = build_chain(rings, chain_dihedrals(rings, "anti"))
    symbols = sorted(set(atoms.get_chemical_symbols()))
    settings = LabelSettings(level=candidate.level, density_basis=DENSITY_BASIS)
    basis = BasisSet.from_pyscf(DENSITY_BASIS, symbols, candidate.level.basis)
    start = time.perf_counter()
    sad = sad_prior(basis, candidate.level)
    prior_s = time.perf_counter() - start
    record = label_frame(FrameTask(0, atoms.numbers.copy(), atoms.get_positions(), settings,
                                   basis, sad, threads=threads))
    if "error" in record:
        raise SystemExit(f"{candidate.name}, {rings} rings: {record['error']}")
    return {"level": candidate.name, "rings": rings, "atoms": len(atoms), "threads": threads,
            "seconds": record["wall_time"], "sad_prior_s": prior_s,
            "scf_cycles": int(record["scf_cycles"]), "scf_strategy": record["scf_strategy"],
            "energy_eV": float(record["energy"]), "fit_l1_percent": record["fit_l1_percent"],
            "max_force_eV_per_A": float(np.abs(record["forces"]).max()),
            "forces_eV_per_A": np.round(record["forces"], 6).tolist()}


def stage_cost(args: argparse.Namespace) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "cost.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    for name in args.levels:
        mine = {r["rings"]: r for r in done if r["level"] == name and r["threads"] == args.threads}
        for rings in range(1, args.max_rings + 1):
            if rings in mine:
                if mine[rings]["seconds"] > args.budget_s:
                    break
                continue
            print(f"{name}: {rings} ring(s) ...", flush=True)
            result = measure(CANDIDATES[name], rings, args.threads)
            with open(log, "a") as f:
                f.write(json.dumps(result) + "\n")
            print(f"  {result['atoms']} atoms: {result['seconds']:.1f} s, "
                  f"{result['scf_cycles']} SCF cycles, fit L1 {result['fit_l1_percent']:.2f} %",
                  flush=True)
            if result["seconds"] > args.budget_s:
                break


def power_law(rings: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """Exponent and prefactor of seconds ≈ a · rings^p from the (up to) three longest chains."""
    x, y = np.log(rings[-3:]), np.log(seconds[-3:])
    p, log_a = np.polyfit(x, y, 1)
    return float(p), float(np.exp(log_a))


def stage_cost_report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (WORK / "cost.jsonl").read_text().splitlines()]
    levels = [name for name in CANDIDATES if any(r["level"] == name for r in records)]
    summary = {}
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name in levels:
        rows = sorted((r for r in records if r["level"] == name), key=lambda r: r["rings"])
        rings = np.array([r["rings"] for r in rows], dtype=float)
        seconds = np.array([r["seconds"] for r in rows])
        entry = {"rows": rows, "note": CANDIDATES[name].note}
        if len(rows) >= 3:
            p, a = power_law(rings, seconds)
            entry.update(exponent=p, extrapolated_s={n: a * n ** p for n in (6, 8, 12)})
        summary[name] = entry
        ax.loglog(rings, seconds, "o-", label=name)
    ax.set_xlabel("rings (all-anti chain)")
    ax.set_ylabel("seconds per fit-density frame")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "polythiophene_cost.png", dpi=120)

    threads = sorted({r["threads"] for r in records})
    lines = ["# Polythiophene: DFT labelling cost per frame vs chain length", "",
             "Command: `python bench/polythiophene.py cost` then `python bench/polythiophene.py "
             "cost-report`.", "",
             f"One fit-density frame (SCF + forces + dipole + density fit onto {DENSITY_BASIS} "
             f"+ its real-space diagnostics) of the all-anti chain, PySCF threads: "
             f"{', '.join(map(str, threads))}; measured on the development machine (2 cores) "
             "with other work running, so single numbers carry ~±20 %.", "",
             "| level | rings | atoms | s/frame | SCF cycles | fit L1 % |",
             "|---|---|---|---|---|---|"]
    for name in levels:
        for r in summary[name]["rows"]:
            lines.append(f"| {name} | {r['rings']} | {r['atoms']} | {r['seconds']:.1f} | "
                         f"{r['scf_cycles']} | {r['fit_l1_percent']:.2f} |")
    lines += ["", "| level | exponent (longest 3) | est. 6 rings | est. 8 | est. 12 | note |",
              "|---|---|---|---|---|---|"]
    for name in levels:
        e = summary[name]
        if "exponent" in e:
            x = e["extrapolated_s"]
            lines.append(f"| {name} | {e['exponent']:.2f} | {x[6] / 60:.1f} min | "
                         f"{x[8] / 60:.1f} min | {x[12] / 60:.1f} min | {e['note']} |")
    reference = {r["rings"]: np.array(r["forces_eV_per_A"]) for r in records
                 if r["level"] == REFERENCE and "forces_eV_per_A" in r}
    lines += ["", f"Forces of the same geometry against {REFERENCE} (the ethanol level): the "
              "grid rows are numerical error, the basis rows a different potential energy "
              "surface.", "", "| level | rings | RMS ΔF meV/Å | max ΔF meV/Å |",
              "|---|---|---|---|"]
    for name in levels:
        for r in summary[name]["rows"]:
            if name == REFERENCE or r["rings"] not in reference or "forces_eV_per_A" not in r:
                continue
            diff = 1000 * (np.array(r["forces_eV_per_A"]) - reference[r["rings"]])
            r["force_rms_vs_reference_meV_per_A"] = float(np.sqrt((diff ** 2).mean()))
            r["force_max_vs_reference_meV_per_A"] = float(np.abs(diff).max())
            lines.append(f"| {name} | {r['rings']} | {r['force_rms_vs_reference_meV_per_A']:.1f}"
                         f" | {r['force_max_vs_reference_meV_per_A']:.1f} |")
    for entry in summary.values():
        for r in entry["rows"]:
            r.pop("forces_eV_per_A", None)
    lines += ["", "![cost](polythiophene_cost.png)", ""]
    (RESULTS / "polythiophene_cost.md").write_text("\n".join(lines))
    (RESULTS / "polythiophene_cost.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(lines))


def stage_model_cost(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from benchmark import count_edges, densnet_seconds, linear_fit

    from densnet_cli.calculator import ModelEvaluator
    from densnet_cli.data.atomic import save_figure, write_text

    torch.set_num_threads(1)
    evaluator = ModelEvaluator(args.model, device="cpu")
    cutoff = float(evaluator.metadata["config"]["cutoff"])
    rows = []
    for rings in args.rings:
        chain = build_chain(rings, chain_dihedrals(rings, "anti"))
        seconds = densnet_seconds(evaluator, chain, repeats=max(3, 20 // rings))
        rows.append({"rings": rings, "atoms": len(chain), "edges": count_edges(chain, cutoff),
                     "densnet_ms": 1e3 * seconds})
        print(f"{rings:4d} rings, {len(chain):4d} atoms: {1e3 * seconds:8.1f} ms", flush=True)
    dft = [json.loads(line) for line in (WORK / "cost.jsonl").read_text().splitlines()]
    dft = sorted((r for r in dft if r["level"] == LEVEL_NAME and r["threads"] == 1),
                 key=lambda r: r["rings"])
    measured = {r["rings"]: r["seconds"] for r in dft}
    p, a = power_law(np.array(list(measured), float), np.array(list(measured.values())))
    for row in rows:  # the power law is trusted to 3× the longest measured chain, no further
        if row["rings"] in measured or row["rings"] <= 3 * max(measured):
            row["dft_s"] = measured.get(row["rings"], a * row["rings"] ** p)
            row["dft_measured"] = row["rings"] in measured
            row["dft_over_densnet"] = 1e3 * row["dft_s"] / row["densnet_ms"]
    fit = linear_fit([r["atoms"] for r in rows], [r["densnet_ms"] / 1e3 for r in rows],
                     [r["edges"] for r in rows])
    report = {"command": " ".join(["python bench/polythiophene.py model-cost", *sys.argv[2:]]),
              "model": str(Path(args.model).resolve().relative_to(ROOT)),
              "model_parameters": sum(p.numel() for p in evaluator.model.parameters()),
              "cutoff_A": cutoff, "dft_level": LEVEL_NAME, "dft_exponent": p,
              "load_average": os.getloadavg()[0], "densnet_fit": fit, "rows": rows}
    lines = ["# Polythiophene: DenSNet step vs DFT frame, cost vs chain length", "",
             f"Command: `{report['command']}` (after `cost`).", "",
             f"DenSNet: median wall time of one energy + forces + dipole call on the all-anti "
             f"chain, one CPU thread, model `{report['model']}` "
             f"({report['model_parameters']} parameters, cutoff {cutoff:g} Å). DFT: one "
             f"fit-density frame at {LEVEL_NAME}, one thread, measured by `cost` up to "
             f"{max(measured)} rings and extrapolated with its power law (rings^{p:.2f}, marked *) "
             f"to {3 * max(measured)} rings, no further. Load average at start "
             f"{report['load_average']:.2f}.",
             "", "| rings | atoms | graph edges | DenSNet ms | DFT s | DFT / DenSNet |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        star = "" if r.get("dft_measured", True) else "*"
        dft = (f"{r['dft_s']:.0f}{star} | {r['dft_over_densnet']:.0f}{star}" if "dft_s" in r
               else "– | –")
        lines.append(f"| {r['rings']} | {r['atoms']} | {r['edges']} | {r['densnet_ms']:.1f} | "
                     f"{dft} |")
    lines += ["", f"DenSNet over the chains of ≥ 100 atoms: {fit['ms_per_atom']:.2f} ms per "
              f"atom, log-log slope {fit['loglog_slope']:.2f} vs atoms and "
              f"{fit['loglog_slope_vs_edges']:.2f} vs graph edges (1 = linear).", "",
              "![scaling](polythiophene_scaling.png)", ""]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    rings = np.array([r["rings"] for r in rows], float)
    ax.loglog(rings, [r["densnet_ms"] / 1e3 for r in rows], "o-", label="DenSNet step")
    ax.loglog(list(measured), list(measured.values()), "s-", label=f"DFT frame ({LEVEL_NAME})")
    trusted = rings[rings <= 3 * max(measured)]
    ax.loglog(trusted, a * trusted ** p, ":", color="C1", label=f"DFT power law (n^{p:.2f})")
    ax.set_xlabel("rings (all-anti chain)")
    ax.set_ylabel("seconds, one CPU thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, RESULTS / "polythiophene_scaling.png")
    write_text(RESULTS / "polythiophene_scaling.json", json.dumps(report, indent=1))
    write_text(RESULTS / "polythiophene_scaling.md", "\n".join(lines))
    print("\n".join(lines))


LEVEL_NAME = "PBE/def2-SVP g2"
LEVEL = CANDIDATES[LEVEL_NAME].level
LEVEL_OPTIONS = ["--xc", LEVEL.xc, "--basis", LEVEL.basis, "--grid-level", LEVEL.grid_level]
SAMPLES = {1: ((300.0, 80), (600.0, 40)), 2: ((300.0, 60), (600.0, 30)),
           3: ((300.0, 40), (600.0, 20))}  # rings: ((K, frames), ...)
# Chain lengths the stages take: those with normal-mode samples, and up to 6 rings (issue #8's
# training range) labelled from fragments of a long-chain MD only (`fragments --length`).
LENGTHS = list(range(1, 7))
# Longer chains, never trained on: a few DFT frames of each (whole chains or windows cut from
# the 12-ring MD, `fragments --length`) check the size extrapolation (`accuracy --extra-rings`).
CHECK_LENGTHS = [*LENGTHS, 8, 10, 12]
CONFORMERS = {"anti-gauche": 150.0, "syn-gauche": 30.0}  # S–C–C–S of every inter-ring bond
# Optimisation threshold of the chains (thiophene was sampled at densnet sample's 1e-3 eV/Å).
# BFGS crawls along the soft inter-ring torsion (bithiophene sat near 0.015 eV/Å for tens of
# gradients); a residual 5 meV/Å on a mode of ~0.1 eV/Å² shifts its centre by ~0.05 Å, a
# tenth of its 300 K thermal amplitude (~0.5 Å): immaterial for normal-mode sampling.
CHAIN_FMAX = 5e-3


def run(*command: object, threads: int = 1) -> None:
    """Run a command (printed first) on ``threads`` threads; stop if it fails."""
    args = [str(c) for c in command]
    print("$ " + " ".join(args), flush=True)
    code = subprocess.run(args, env={**os.environ, "OMP_NUM_THREADS": str(threads)}).returncode
    if code != 0:
        raise SystemExit(f"failed with exit code {code}")


def samples_file(rings: int, kelvin: float) -> Path:
    return DATA / f"{rings}T_{kelvin:.0f}K.xyz"


def optimised_ring() -> Atoms:
    """Thiophene as optimised at :data:`LEVEL` by the 1-ring ``sample`` run."""
    summary = json.loads(samples_file(1, SAMPLES[1][0][0]).with_suffix(".modes.json")
                         .read_text())
    return Atoms(numbers=summary["numbers"], positions=summary["conformers"][0]["positions"])


def stage_sample(args: argparse.Namespace) -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    for rings in sorted(args.rings):
        if rings == 1:
            start, dihedrals = build_chain(1), []
        else:
            angles = list(CONFORMERS.values())
            start = build_chain(rings, [angles[0]] * (rings - 1), monomer=optimised_ring())
            dihedrals = ["--dihedral", ";".join(f"{','.join(map(str, q))}={angles[1]:g}"
                                                for q in inter_ring_dihedral_indices(rings))]
        start_file = DATA / f"{rings}T_start.xyz"
        if not start_file.exists():
            ase.io.write(start_file, start)
        for seed, (kelvin, n) in enumerate(SAMPLES[rings], start=1):
            if not samples_file(rings, kelvin).exists():
                run(BIN / "densnet", "sample", start_file, "-o", samples_file(rings, kelvin),
                    "--n-samples", n, "--temperature", kelvin, *dihedrals, "--seed", seed,
                    *LEVEL_OPTIONS, *(["--fmax", CHAIN_FMAX] if rings > 1 else []),
                    "--threads", 1, "--workers", args.workers,
                    "--cache-dir", DATA / "dft_cache")


def worker_slot(text: str) -> tuple[int, int]:
    """``K/N`` → (K, N): this process labels the chunks whose running number is K mod N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--worker {text!r}: expected K/N, e.g. 0/2") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--worker {text!r}: need 0 <= K < N")
    return k, n


def stage_label(args: argparse.Namespace) -> None:
    k, n_workers = args.worker
    number = 0  # running chunk number over all lengths and temperatures
    sources = [(samples_file(rings, kelvin), n) for rings in sorted(args.rings)
               for kelvin, n in SAMPLES.get(rings, ())]
    missing = [path for path, _ in sources if not path.exists()]
    for path in missing:
        print(f"{path.relative_to(ROOT)}: no samples (`sample --rings` makes them); skipped")
    sources = [source for source in sources if source[0] not in missing]
    if 2 in args.rings and torsion_file().exists():
        sources.append((torsion_file(), len(ase.io.read(torsion_file(), index=":"))))
    if args.fragments_of:
        paths = [fragments_file(args.fragments_of, n) for n in sorted(args.rings)]
        if not any(path.exists() for path in paths):
            raise SystemExit(f"no {' or '.join(p.name for p in paths)} in "
                             f"{DATA.relative_to(ROOT)}: run `fragments` first")
        sources += [(path, args.max_fragments or len(ase.io.read(path, index=":")))
                    for path in paths if path.exists()]
    for source, n in sources:
        for first in range(0, n, args.chunk):
            last = min(first + args.chunk, n)
            out = source.with_name(f"{source.stem}_{first:03d}-{last - 1:03d}.h5")
            mine = number % n_workers == k
            number += 1
            if mine and not out.exists():
                run(BIN / "densnet", "fit-density", source, "-o", out, "--index",
                    f"{first}:{last}", *LEVEL_OPTIONS, "--threads", 1, "--no-progress")


def chunks(rings: int) -> list[Path]:
    """The labelled chunks of the n-ring chains (all temperatures, MD fragments, torsions)."""
    return (sorted(DATA.glob(f"{rings}T_*K_*.h5")) + sorted(DATA.glob(f"{rings}T_md*_*.h5"))
            + sorted(DATA.glob(f"{rings}T_torsion_*.h5")))


def torsion_file() -> Path:
    return DATA / "2T_torsion.xyz"


def fragments_file(md_rings: int, length: int = 2) -> Path:
    """The ``length``-ring fragments cut from the ``md_rings``-ring MD (``fragments``)."""
    return DATA / f"{length}T_md{md_rings}T.xyz"


def load_chain_md(md: Path) -> tuple[dict, int, list[dict[str, int]], float]:
    """records.npz of an ``md`` run, its ring count, ring sites and stride between frames (fs)."""
    records = dict(np.load(md / "records.npz"))
    numbers, positions = records["numbers"], records["positions"]  # (B, F, n, 3), strided
    n_rings = (len(numbers) - 2) // 7
    sites = chain_sites(n_rings)
    if len(numbers) != 7 * n_rings + 2 or not all(numbers[s["S"]] == 16 for s in sites):
        raise SystemExit(f"{md}: not a chain built by build_chain")
    return records, n_rings, sites, float(records["time_fs"][-1]) / (positions.shape[1] - 1)


def start_c_h(positions: np.ndarray, sites: list[dict[str, int]]) -> float:
    """The mean C3–H3 length (Å) of the first frame: the length of the caps."""
    return float(np.mean([np.linalg.norm(positions[0, 0, s["C3"]] - positions[0, 0, s["H3"]])
                          for s in sites]))


def cut_rings(numbers: np.ndarray, x: np.ndarray, sites: list[dict[str, int]], k: int,
              length: int, c_h: float) -> tuple[Atoms, list[int]]:
    """Rings k … k + length − 1 of a chain geometry, an H on each Cα whose neighbour is cut.

    Returns the fragment and the chain index of each of its atoms but the caps (in order).
    """
    n_rings = len(sites)
    end = k + length  # one past the last ring kept
    if not (0 <= k and length >= 1 and end <= n_rings):
        raise SystemExit(f"rings {k}…{end - 1} do not exist in {n_rings} rings")
    keep = sorted(i for s in sites[k:end] for i in s.values())
    caps = ([(sites[k]["C2"], sites[k - 1]["C5"])] if k > 0 else []) + (
        [(sites[end - 1]["C5"], sites[end]["C2"])] if end < n_rings else [])
    h = [x[c] + c_h * (x[o] - x[c]) / np.linalg.norm(x[o] - x[c]) for c, o in caps]
    return Atoms(numbers=[*numbers[keep], *[1] * len(h)],
                 positions=np.vstack([x[keep], *h])), keep


def stage_fragments(args: argparse.Namespace) -> None:
    """Short chains cut from the frames of a chain MD: what the MD visited, at a short's cost.

    Rings k … k + ``--length`` − 1 of every ``--every-fs`` frame of every replica, for each k
    of ``--windows``; each Cα that was bonded to a ring left out gets an H along that bond at
    the chain's mean C–H length at the start.  Written in a seeded random order, so that any
    first chunk labelled is a fair sample of the whole:
    bench/data/polythiophene/{LENGTH}T_md{N}T.xyz.
    """
    records, n_rings, sites, stride_fs = load_chain_md(args.md)
    numbers, positions = records["numbers"], records["positions"]
    every = max(1, round(args.every_fs / stride_fs))
    c_h = start_c_h(positions, sites)
    out = []
    for k in args.windows:
        for b, replica in enumerate(positions):
            for f in range(0, len(replica), every):
                atoms, _ = cut_rings(numbers, replica[f].astype(float), sites, k, args.length,
                                     c_h)
                atoms.info.update(replica=b, time_fs=f * stride_fs, first_ring=k)
                out.append(atoms)
    order = np.random.default_rng(args.seed).permutation(len(out))
    path = fragments_file(n_rings, args.length)
    if path.exists():
        raise SystemExit(f"{path.relative_to(ROOT)} exists (its labelled chunks follow its "
                         "order): move it aside to cut anew")
    ase.io.write(path, [out[i] for i in order], format="extxyz")
    print(f"wrote {len(out)} fragments to {path.relative_to(ROOT)}")


def committed_flips(phi: np.ndarray, syn_below: float = 60.0,
                    anti_above: float = 120.0) -> np.ndarray:
    """Syn ↔ anti changes of each torsion along axis 1 of |φ| (B, F, k) → (B, k).

    A torsion is syn once |φ| < ``syn_below``, anti once |φ| > ``anti_above``, and keeps its
    state in between, so recrossings of 90° that do not reach the other well do not count.
    """
    state = phi[:, 0] < 90.0
    flips = np.zeros(state.shape, dtype=int)
    for frame in np.moveaxis(phi[:, 1:], 1, 0):
        new = np.where(frame < syn_below, True, np.where(frame > anti_above, False, state))
        flips += new != state
        state = new
    return flips


def stage_torsions(args: argparse.Namespace) -> None:
    """Inter-ring conformations visited by chain MDs: syn share, flips, S…S contacts.

    Per MD directory and replica: the share of torsion-frames with |S–C–C–S| < 90° (syn side)
    for the two end torsions and the interior ones, the committed syn ↔ anti flips
    (:func:`committed_flips`), the closest adjacent S…S and the smallest |S–C–C–S|; a
    histogram of |S–C–C–S| (end vs interior torsions, all MDs pooled) as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, pooled = [], {"end": [], "interior": []}
    for md in args.md:
        records, n_rings, sites, stride_fs = load_chain_md(md)
        x = records["positions"].astype(float)  # (B, F, n, 3)
        phi = np.abs(inter_ring_dihedrals(x, n_rings))  # (B, F, n − 1)
        s = [site["S"] for site in sites]
        s_s = np.linalg.norm(x[:, :, s[1:]] - x[:, :, s[:-1]], axis=-1)
        flips = committed_flips(phi)
        end = np.zeros(n_rings - 1, dtype=bool)
        end[[0, -1]] = True
        pooled["end"].append(phi[..., end].ravel())
        pooled["interior"].append(phi[..., ~end].ravel())
        for b in range(len(phi)):
            rows.append({
                "md": str(md.resolve().relative_to(ROOT)), "replica": b, "rings": n_rings,
                "ps": float((phi.shape[1] - 1) * stride_fs / 1000),
                "syn_share_end": float((phi[b][:, end] < 90).mean()),
                "syn_share_interior": float((phi[b][:, ~end] < 90).mean()),
                "flips_end": int(flips[b, end].sum()),
                "flips_interior": int(flips[b, ~end].sum()),
                "closest_S_S_A": float(s_s[b].min()),
                "smallest_abs_S_C_C_S_deg": float(phi[b].min())})
            print(json.dumps(rows[-1]), flush=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 180, 37)
    for name, values in pooled.items():
        ax.hist(np.concatenate(values), bins=bins, density=True, histtype="step", lw=1.5,
                label=f"{name} torsions")
    ax.set(xlabel="|S–C–C–S| (°)", ylabel="probability density",
           title="inter-ring torsions visited (all frames)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    plt.close(fig)
    command = command_line()
    lines = ["# Inter-ring conformations in chain MD", "", f"Command: `{command}`", "",
             "Syn share: torsion-frames with |S–C–C–S| < 90° (frames every 10 fs).  A flip is a "
             "committed change between syn (|φ| < 60°) and anti (|φ| > 120°); recrossings of "
             "90° that return count none.  End torsions: the first and last inter-ring bond.", "",
             "| MD | replica | ps | syn share, end | syn share, interior | flips end | "
             "flips interior | closest S…S Å | smallest abs S–C–C–S ° |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['md']} | {r['replica']} | {r['ps']:.1f} | "
                     f"{r['syn_share_end']:.2f} | {r['syn_share_interior']:.3f} | "
                     f"{r['flips_end']} | {r['flips_interior']} | {r['closest_S_S_A']:.2f} | "
                     f"{r['smallest_abs_S_C_C_S_deg']:.0f} |")
    lines += ["", f"![torsions]({args.out.with_suffix('.png').name})", ""]
    write_report(args.out, command, rows, lines)


def stage_probe(args: argparse.Namespace) -> None:
    """Model vs DFT on the bithiophene of rings ``--pair`` cut from chosen frames of a chain MD.

    One PySCF gradient per frame at :data:`LEVEL`; the report gives the S…S distance of the
    pair, the energy and force errors, and the forces on the two S along S–S.
    """
    from densnet_cli.analysis.harmonic import PySCFCalculator
    from densnet_cli.calculator import DenSNetCalculator

    records, n_rings, sites, stride_fs = load_chain_md(args.md)
    numbers, positions = records["numbers"], records["positions"]
    model = args.model or ROOT / json.loads((args.md / "run.json").read_text())["model"]
    c_h = start_c_h(positions, sites)
    s1, s2 = sites[args.pair]["S"], sites[args.pair + 1]["S"]
    calc = DenSNetCalculator(model)
    rows = []
    for f in args.frames:
        x = positions[args.replica, f].astype(float)
        atoms, keep = cut_rings(numbers, x, sites, args.pair, 2, c_h)
        i, j = keep.index(s1), keep.index(s2)
        u = (atoms.positions[j] - atoms.positions[i]) / np.linalg.norm(
            atoms.positions[j] - atoms.positions[i])
        t0 = time.perf_counter()
        atoms.calc = calc
        e_model, f_model = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = PySCFCalculator(LEVEL, threads=1)
        e_dft, f_dft = atoms.get_potential_energy(), atoms.get_forces()
        dihedral = float(Atoms(numbers=numbers, positions=x).get_dihedral(
            *inter_ring_dihedral_indices(n_rings)[args.pair]))
        rows.append({
            "frame": f, "time_fs": f * stride_fs, "S_S_A": float(np.linalg.norm(x[s1] - x[s2])),
            "S_C_C_S_deg": (dihedral + 180.0) % 360.0 - 180.0,
            "energy_model_minus_dft_eV": e_model - e_dft,
            "force_mae_meV_per_A": 1e3 * float(np.abs(f_model - f_dft).mean()),
            "force_max_error_meV_per_A": 1e3 * float(np.abs(f_model - f_dft).max()),
            "S_forces_along_S_S_model_eV_per_A": [float(f_model[i] @ u), float(f_model[j] @ u)],
            "S_forces_along_S_S_dft_eV_per_A": [float(f_dft[i] @ u), float(f_dft[j] @ u)],
            "seconds": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
    command = command_line()
    lines = [f"# Model vs DFT on bithiophenes cut from a {n_rings}-ring MD", "",
             f"Command: `{command}`", "",
             f"Model `{Path(model).resolve().relative_to(ROOT)}`; MD "
             f"`{args.md.resolve().relative_to(ROOT)}`, replica {args.replica}, rings "
             f"{args.pair} and {args.pair + 1}, H-capped where the chain went on; DFT "
             "PBE/def2-SVP, grid 2, one PySCF gradient per frame.  Forces on the two S along "
             "the unit vector from the first to the second: negative on the first and "
             "positive on the second push them apart.", "",
             "| frame | t fs | S–C–C–S ° | S…S Å | E model − DFT eV | F MAE meV/Å | "
             "F max err meV/Å | S forces model eV/Å | S forces DFT eV/Å |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fm, fd = r["S_forces_along_S_S_model_eV_per_A"], r["S_forces_along_S_S_dft_eV_per_A"]
        lines.append(f"| {r['frame']} | {r['time_fs']:.0f} | {r['S_C_C_S_deg']:.0f} | "
                     f"{r['S_S_A']:.2f} | {r['energy_model_minus_dft_eV']:+.3f} | "
                     f"{r['force_mae_meV_per_A']:.0f} | {r['force_max_error_meV_per_A']:.0f} | "
                     f"{fm[0]:+.2f}, {fm[1]:+.2f} | {fd[0]:+.2f}, {fd[1]:+.2f} |")
    lines.append("")
    write_report(args.out, command, rows, lines)


def held_out(rings: int) -> Path | None:
    """The chunk of ``rings`` never trained on.

    The last chunk of the lowest-temperature normal-mode samples; for a length that has only
    fragments cut from a long-chain MD, the first chunk of those (they are in random order,
    and the first is labelled first: a model trained before the others exist is tested on the
    same frames as one trained after).
    """
    kelvin = SAMPLES[rings][0][0] if rings in SAMPLES else None
    samples = sorted(DATA.glob(f"{rings}T_{kelvin:.0f}K_*.h5")) if kelvin else []
    if len(samples) > 1:
        return samples[-1]
    # The chunk that starts at fragment 0, whether or not a later one finished first.
    first = sorted(DATA.glob(f"{rings}T_md*_000-*.h5"))
    return first[0] if first and not samples else None


def model_path(rings: list[int]) -> Path:
    return RESULTS / "models" / f"polythiophene_{'-'.join(map(str, sorted(rings)))}T.pt"


def stage_train(args: argparse.Namespace) -> None:
    from validate_molecule import ARCH, SCHEDULE

    files = [c for n in args.rings for c in chunks(n) if c != held_out(n)]
    if not files:
        raise SystemExit(f"no labelled chunks for rings {args.rings}: run `label` first")
    model = model_path(args.rings)
    schedule = list(SCHEDULE)
    if args.early_stopping is not None:  # an ablation of the stop rule: its own model file
        schedule[schedule.index("--early-stopping") + 1] = str(args.early_stopping)
        model = model.with_name(f"{model.stem}_es{args.early_stopping}.pt")
    if model.exists():
        print(f"{model} exists")
        return
    resume = ["--resume"] if model.with_name(model.name + ".ckpt").exists() else []
    energy = ["--epochs-energy", args.epochs_energy] if args.epochs_energy else []
    run(BIN / "densnet", "train", *files, "-o", model, *ARCH, *schedule, *energy, "--cutoff",
        4.0, "--val-fraction", "0.1", "--no-progress", *resume, threads=args.threads)


def stage_accuracy(args: argparse.Namespace) -> None:
    from densnet_cli.data.hdf5 import DensityDataset

    model = args.model.resolve() if args.model else model_path(args.rings)
    tag = model.stem.removeprefix("polythiophene_")
    tests = {}
    for rings in sorted(set(args.rings) | set(args.extra_rings)):
        test = held_out(rings)
        if test is None:
            print(f"{rings} rings: no held-out chunk yet")
            continue
        tests[rings] = test, WORK / f"accuracy_{tag}_{test.stem}.json"

    def stale(report: Path) -> bool:
        return not report.exists() or report.stat().st_mtime < model.stat().st_mtime

    # Longest chains first: their density-vs-DFT grids dominate the wall time.
    jobs = [tests[rings] for rings in sorted(tests, reverse=True) if stale(tests[rings][1])]
    WORK.mkdir(parents=True, exist_ok=True)

    def evaluate(job: tuple[Path, Path]) -> None:
        test, report = job
        n = len(DensityDataset(test))
        run(BIN / "densnet", "evaluate", model, test, "--report", report,
            "--density-frames", n, "--dft-frames", n, "--no-progress")

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(evaluate, jobs))
    rows = []
    for rings, (test, report) in tests.items():
        r = json.loads(report.read_text())
        atoms = 7 * rings + 2
        rows.append({"rings": rings, "atoms": atoms, "trained_on": rings in args.rings,
                     "dataset": str(test.relative_to(ROOT)), "frames": r["n_frames"],
                     "energy_mae_meV_per_atom": r["energy_mae_meV"] / atoms,
                     "energy_mean_error_meV": r.get("energy_mean_error_meV"),
                     "force_mae_meV_per_A": r["force_mae_meV_per_A"],
                     "dipole_mae_D": r["dipole_mae_D"],
                     "density_l1_percent": r["density_l1_percent"],
                     "density_l1_vs_dft_percent": r.get("density_l1_vs_dft_percent")})
    command = command_line()
    lines = [f"# Polythiophene: held-out accuracy per chain length ({tag} model)", "",
             f"Command: `{command}` (after `train` with the same --rings).", "",
             f"Model `{model.relative_to(ROOT)}`, trained on the labelled chunks of "
             f"{', '.join(map(str, sorted(args.rings)))}-ring chains except the held-out one "
             "of each length (the last 300 K sample chunk; the first fragment chunk of a "
             "length with fragments only); level PBE/def2-SVP, DFT grid 2.", "",
             "| rings | atoms | length trained on | held-out frames | E MAE meV/atom | "
             "E mean error meV/molecule | F MAE meV/Å | μ MAE D | density L1 % (fit) | "
             "density L1 % (DFT) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        dft, bias = r["density_l1_vs_dft_percent"], r["energy_mean_error_meV"]
        lines.append(f"| {r['rings']} | {r['atoms']} | {'yes' if r['trained_on'] else 'no'} | "
                     f"{r['frames']} | {r['energy_mae_meV_per_atom']:.2f} | "
                     f"{'–' if bias is None else f'{bias:+.0f}'} | "
                     f"{r['force_mae_meV_per_A']:.1f} | {r['dipole_mae_D']:.4f} | "
                     f"{r['density_l1_percent']:.2f} | {'–' if dft is None else f'{dft:.2f}'} |")
    lines.append("")
    out = RESULTS / f"polythiophene_accuracy_{tag}"
    write_report(out, command, rows, lines)


def stage_model_ir(args: argparse.Namespace) -> None:
    """The model's harmonic IR spectrum of the all-anti chain vs length, integrated in bands.

    Optimised with the model (BFGS, ``--fmax``), then its finite-difference harmonic analysis;
    the intensity (km/mol) summed per band and divided by the number of rings shows how each
    band grows with the chain: per ring constant for local vibrations, rising for modes that
    move charge along the chain.
    """
    import torch

    from densnet_cli.analysis.harmonic import harmonic_analysis, optimise
    from densnet_cli.calculator import DenSNetCalculator

    torch.set_num_threads(args.threads)
    bands = [(600, 900), (900, 1100), (1100, 1300), (1300, 1600), (3000, 3300)]
    calc = DenSNetCalculator(args.model)
    rows = []
    for n in args.rings:
        geometry = optimise(build_chain(n, monomer=optimised_ring()), calc, fmax=args.fmax)
        result = harmonic_analysis(geometry, calc, progress=False)
        nu, km = result.frequencies_cm1, result.intensities_km_mol
        strongest = int(np.argmax(km))
        rows.append({"rings": n, "atoms": len(geometry),
                     "imaginary_modes": int((nu < 0).sum()),
                     "strongest_cm1": float(nu[strongest]),
                     "strongest_km_mol": float(km[strongest]),
                     "band_km_mol_per_ring": {f"{lo}-{hi}": float(km[(nu >= lo) & (nu < hi)]
                                                                  .sum() / n)
                                              for lo, hi in bands}})
        print(json.dumps(rows[-1]), flush=True)
    command = command_line()
    names = [f"{lo}-{hi}" for lo, hi in bands]
    lines = ["# The model's harmonic IR intensity vs chain length (all-anti chains)", "",
             f"Command: `{command}`", "",
             f"Model `{Path(args.model).resolve().relative_to(ROOT)}`; each chain optimised "
             f"with it (fmax {args.fmax:g} eV/Å), finite-difference harmonic analysis.  "
             "Intensity summed per band (cm⁻¹), per ring, km/mol.", "",
             "| rings | atoms | imaginary modes | strongest mode cm⁻¹ (km/mol) | "
             + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
    for r in rows:
        lines.append(f"| {r['rings']} | {r['atoms']} | {r['imaginary_modes']} | "
                     f"{r['strongest_cm1']:.0f} ({r['strongest_km_mol']:.0f}) | "
                     + " | ".join(f"{r['band_km_mol_per_ring'][k]:.1f}" for k in names) + " |")
    lines.append("")
    out = args.out
    write_report(out, command, rows, lines)


def stage_torsion(args: argparse.Namespace) -> None:
    """Rigid S–C–C–S torsion profile of bithiophene: DFT vs the models.

    The second ring (with its H) of the DFT-optimised anti-gauche bithiophene (the 2-ring
    ``sample`` run's first conformer) is turned about the inter-ring bond to each angle of
    ``--angles``; one PySCF energy + gradient at :data:`LEVEL` per angle, cached line by line in
    bench/data/polythiophene/dft_cache/torsion_dft.jsonl (resumable; committed, so that a later
    session skips the DFT), and each model's energy.  Profiles are relative to their own lowest
    point; the report gives the planar-syn (0°), perpendicular (90°) and planar-anti (180°)
    energies above the lowest point, the offset-free MAE of each model's profile and the torque
    about the inter-ring bond at every angle.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densnet_cli.analysis.harmonic import PySCFCalculator
    from densnet_cli.calculator import DenSNetCalculator

    summary = json.loads(samples_file(2, SAMPLES[2][0][0]).with_suffix(".modes.json")
                         .read_text())
    base = Atoms(numbers=summary["numbers"], positions=summary["conformers"][0]["positions"])
    dihedral = inter_ring_dihedral_indices(2)[0]
    second = sorted(chain_sites(2)[1].values())
    axis_atoms = dihedral[1], dihedral[2]

    def turned(angle: float) -> Atoms:
        atoms = base.copy()
        atoms.set_dihedral(*dihedral, angle, indices=second)
        return atoms

    def torque(atoms: Atoms, forces: np.ndarray) -> float:
        """Torque (eV/rad) on the second ring about the inter-ring bond: −dE/dφ."""
        a, b = (atoms.positions[i] for i in axis_atoms)
        u = (b - a) / np.linalg.norm(b - a)
        r = atoms.positions[second] - b
        return float(np.sum(np.cross(r, forces[second]) @ u))

    cache = DATA / "dft_cache" / "torsion_dft.jsonl"  # committed: a later session skips the DFT
    cache.parent.mkdir(parents=True, exist_ok=True)
    dft = {}
    if cache.exists():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            if r["level"] == LEVEL_NAME and np.allclose(r["positions"], base.positions):
                dft[r["angle"]] = r
    for angle in args.angles:
        if angle in dft:
            continue
        atoms = turned(angle)
        atoms.calc = PySCFCalculator(LEVEL, threads=args.threads)
        t0 = time.perf_counter()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        dft[angle] = {"angle": angle, "level": LEVEL_NAME, "positions": base.positions.tolist(),
                      "energy_eV": energy, "torque_eV_per_rad": torque(atoms, forces),
                      "seconds": time.perf_counter() - t0}
        with cache.open("a") as f:
            f.write(json.dumps(dft[angle]) + "\n")
        print(f"DFT {angle:g}°: {energy:.4f} eV ({dft[angle]['seconds']:.0f} s)", flush=True)
    angles = np.array(args.angles, dtype=float)
    profiles = {"DFT": np.array([dft[a]["energy_eV"] for a in args.angles])}
    torques = {"DFT": np.array([dft[a]["torque_eV_per_rad"] for a in args.angles])}
    for model in args.models:
        calc = DenSNetCalculator(model)
        energies, model_torques = [], []
        for angle in args.angles:
            atoms = turned(angle)
            atoms.calc = calc
            energies.append(atoms.get_potential_energy())
            model_torques.append(torque(atoms, atoms.get_forces()))
        name = str(Path(model).resolve().relative_to(ROOT))
        profiles[name], torques[name] = np.array(energies), np.array(model_torques)
    relative = {k: 1e3 * (v - v.min()) for k, v in profiles.items()}  # meV

    def at(name: str, angle: float) -> float | None:
        hit = np.flatnonzero(angles == angle)
        return float(relative[name][hit[0]]) if hit.size else None

    rows = []
    for name in profiles:
        diff = 1e3 * (profiles[name] - profiles["DFT"])
        rows.append({"profile": name, "lowest_at_deg": float(angles[np.argmin(profiles[name])]),
                     "syn_planar_meV": at(name, 0.0), "perpendicular_meV": at(name, 90.0),
                     "anti_planar_meV": at(name, 180.0),
                     "mae_vs_dft_meV": float(np.abs(diff - diff.mean()).mean()),
                     "torque_mae_vs_dft_meV_per_rad": 1e3 * float(
                         np.abs(torques[name] - torques["DFT"]).mean()),
                     "relative_meV": relative[name].round(2).tolist(),
                     "torque_meV_per_rad": (1e3 * torques[name]).round(1).tolist()})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in profiles:
        style = "ko-" if name == "DFT" else ".--"
        label = Path(name).stem  # DFT, or the model file's name
        ax.plot(angles, relative[name], style, label=label)
        bx.plot(angles, 1e3 * torques[name], style, label=label)
    ax.set(xlabel="S–C–C–S (°)", ylabel="E − lowest (meV)", title="rigid torsion profile")
    bx.set(xlabel="S–C–C–S (°)", ylabel="torque −dE/dφ (meV/rad)",
           title="torque on the turned ring")
    bx.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    plt.close(fig)
    command = command_line()
    fmt = (lambda x: "–" if x is None else f"{x:.0f}")  # noqa: E731
    lines = ["# Bithiophene rigid torsion profile: DFT vs DenSNet", "",
             f"Command: `{command}`", "",
             "The DFT-optimised anti-gauche bithiophene (PBE/def2-SVP, grid 2; "
             f"S–C–C–S {base.get_dihedral(*dihedral):.0f}°) with its second ring turned about "
             "the inter-ring bond, ring geometries frozen.  Energies relative to each "
             "profile's lowest point; MAE after removing the mean offset; torque = −dE/dφ from "
             "the forces.", "",
             "| profile | lowest at ° | E(0°) meV | E(90°) meV | E(180°) meV | profile MAE meV "
             "| torque MAE meV/rad |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['profile']} | {r['lowest_at_deg']:.0f} | {fmt(r['syn_planar_meV'])}"
                     f" | {fmt(r['perpendicular_meV'])} | {fmt(r['anti_planar_meV'])} | "
                     f"{r['mae_vs_dft_meV']:.1f} | {r['torque_mae_vs_dft_meV_per_rad']:.0f} |")
    lines += ["", "| S–C–C–S ° | " + " | ".join(profiles) + " |",
              "|---|" + "---|" * len(profiles)]
    for i, angle in enumerate(angles):
        lines.append(f"| {angle:g} | " + " | ".join(f"{relative[k][i]:.1f}" for k in profiles)
                     + " |")
    lines += ["", f"![profile]({args.out.with_suffix('.png').name})", ""]
    write_report(args.out, command, rows, lines)


def stage_torsion_samples(args: argparse.Namespace) -> None:
    """Bithiophenes spread over the whole S–C–C–S range, for training.

    The normal-mode samples stay near the two conformers (150° and 30°); the barrier between
    them (~150 meV in the rigid DFT profile, ``torsion``) is what a chain crosses when a ring
    flips.  Each of ``--n`` 300 K samples of the training chunks (never the held-out one) gets
    its second ring turned about the inter-ring bond to a stratified random angle in
    [0°, 180°]: thermal ring distortions at every torsion.  → bench/data/polythiophene/
    2T_torsion.xyz, which ``label --rings 2`` then labels in chunks and ``train`` takes.
    """
    out = torsion_file()
    if out.exists():
        raise SystemExit(f"{out.relative_to(ROOT)} exists (its labelled chunks follow its "
                         "order): move it aside to draw anew")
    kelvin, _ = SAMPLES[2][0]
    samples = ase.io.read(samples_file(2, kelvin), index=":")
    held = held_out(2)
    first_held = int(held.stem.split("_")[-1].split("-")[0]) if held else len(samples)
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(first_held, size=args.n, replace=False)
    angles = 180.0 * (np.arange(args.n) + rng.random(args.n)) / args.n
    dihedral = inter_ring_dihedral_indices(2)[0]
    second = sorted(chain_sites(2)[1].values())
    frames = []
    for i, angle in zip(picks, rng.permutation(angles), strict=True):
        atoms = samples[int(i)].copy()
        atoms.set_dihedral(*dihedral, angle, indices=second)
        atoms.info = {"source_frame": int(i), "S_C_C_S_deg": float(angle)}  # not harmonic now
        frames.append(atoms)
    ase.io.write(out, frames, format="extxyz")
    print(f"wrote {len(frames)} turned bithiophenes to {out.relative_to(ROOT)} (from frames "
          f"< {first_held} of {samples_file(2, kelvin).name})")


def stage_md(args: argparse.Namespace) -> None:
    """NVE of the all-anti n-ring chain with a trained model, through bench/md_nve.py."""
    model = args.model or model_path(args.trained_on)
    if not model.exists():
        raise SystemExit(f"{model}: no such model: run `train --rings "
                         f"{' '.join(map(str, args.trained_on))}` first")
    seed = [] if args.seed is None else ["--seed", args.seed]
    dt = "" if args.timestep_fs == 0.5 else f"_dt{args.timestep_fs:g}".replace(".", "")
    out = WORK / (f"md_{args.rings}T_{model.stem.removeprefix('polythiophene_')}" + dt
                  + ("" if args.seed is None else f"_seed{args.seed}"))
    out.mkdir(parents=True, exist_ok=True)
    start = out / "start.xyz"
    if not start.exists():  # deterministic: the DFT-optimised ring, anti, standard Cα–Cα′ bond
        ase.io.write(start, build_chain(args.rings, monomer=optimised_ring()))
    run(sys.executable, ROOT / "bench/md_nve.py", "run", "--model", model, "--starts", start,
        "--out", out, "--replicas", args.replicas, "--nve-ps", args.nve_ps,
        "--thermalise-ps", args.thermalise_ps, "--timestep-fs", args.timestep_fs,
        "--threads", args.threads, *seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    cost = sub.add_parser("cost", help="measure seconds per labelled frame vs chain length")
    cost.add_argument("--levels", nargs="+", choices=sorted(CANDIDATES), default=list(CANDIDATES))
    cost.add_argument("--max-rings", type=int, default=6)
    cost.add_argument("--budget-s", type=float, default=900.0,
                      help="stop a level's chain growth after a frame slower than this")
    cost.add_argument("--threads", type=int, default=1)
    sub.add_parser("cost-report", help="write bench/results/polythiophene_cost.{md,json,png}")
    model_cost = sub.add_parser("model-cost", help="DenSNet step time vs chain length, next to "
                                "DFT (bench/results/polythiophene_scaling.{md,json,png})")
    model_cost.add_argument("--model", type=Path,
                            default=RESULTS / "models/ethanethiol.pt")
    model_cost.add_argument("--rings", nargs="+", type=int,
                            default=[1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50, 75, 100])
    for name, text in (("sample", "normal-mode samples of the short chains"),
                       ("label", "fit-density of the samples, chunk by chunk")):
        stage = sub.add_parser(name, help=text)
        stage.add_argument("--rings", nargs="+", type=int,
                           choices=sorted(SAMPLES) if name == "sample" else CHECK_LENGTHS,
                           default=sorted(SAMPLES))
        if name == "sample":
            stage.add_argument("--workers", type=int, default=1,
                               help="conformers optimised side by side (one core each)")
        if name == "label":
            stage.add_argument("--chunk", type=int, default=10, help="frames per HDF5 file")
            stage.add_argument("--fragments-of", type=int, default=None, metavar="N",
                               help="also the fragments of --rings lengths cut from "
                               "the N-ring MD (`fragments`) ...")
            stage.add_argument("--max-fragments", type=int, default=None,
                               help="... only the first this many of them")
            stage.add_argument("--worker", type=worker_slot, default=(0, 1), metavar="K/N",
                               help="label only every N-th chunk, from the K-th (run N of "
                               "these side by side, K = 0 … N-1)")
    for name, text in (("train", "train a local model on the labelled chunks"),
                       ("accuracy", "held-out errors of that model per chain length")):
        stage = sub.add_parser(name, help=text)
        stage.add_argument("--rings", nargs="+", type=int, choices=LENGTHS,
                           default=sorted(SAMPLES), help="chain lengths trained on")
        if name == "train":
            stage.add_argument("--threads", type=int, default=1, help="PyTorch threads")
            stage.add_argument("--epochs-energy", type=int, default=None,
                               help="energy-stage epochs (default: the validations' schedule)")
            stage.add_argument("--early-stopping", type=int, default=None, metavar="EPOCHS",
                               help="epochs without improvement before a stage stops "
                               "(default: the validations' 30); the model is then "
                               "polythiophene_<rings>T_es<EPOCHS>.pt")
        if name == "accuracy":
            stage.add_argument("--extra-rings", nargs="+", type=int, choices=CHECK_LENGTHS,
                               default=[], help="also evaluate these (extrapolation)")
            stage.add_argument("--model", type=Path, default=None,
                               help="evaluate this model (e.g. an ablation of the one "
                               "`train --rings` made) instead")
            stage.add_argument("--workers", type=int, default=1,
                               help="chain lengths evaluated side by side (one thread each)")
    fragments = sub.add_parser("fragments", help="short chains cut from a chain MD, to label")
    fragments.add_argument("--md", type=Path, required=True, help="md stage directory")
    fragments.add_argument("--every-fs", type=float, default=250.0)
    fragments.add_argument("--length", type=int, default=2, help="rings per fragment")
    fragments.add_argument("--windows", "--pairs", nargs="+", type=int, default=[0, 5],
                           help="first ring k of each window (rings k … k + length − 1): "
                           "0 is a chain end")
    fragments.add_argument("--seed", type=int, default=0)
    model_ir = sub.add_parser("model-ir", help="the model's harmonic IR bands vs chain length")
    model_ir.add_argument("--model", type=Path,
                          default=RESULTS / "models/polythiophene_1-2T.pt")
    model_ir.add_argument("--rings", nargs="+", type=int, default=[1, 2, 4, 8, 12])
    model_ir.add_argument("--fmax", type=float, default=1e-3, help="eV/Å")
    model_ir.add_argument("--threads", type=int, default=1)
    model_ir.add_argument("--out", type=Path, default=RESULTS / "polythiophene_model_ir_vs_length",
                          help="report stem (.md and .json are written)")
    probe = sub.add_parser("probe", help="model vs DFT on bithiophenes cut from MD frames")
    probe.add_argument("--md", type=Path, required=True, help="md stage directory")
    probe.add_argument("--model", type=Path, default=None,
                       help="default: the model the MD ran with")
    probe.add_argument("--replica", type=int, default=0)
    probe.add_argument("--frames", nargs="+", type=int, required=True,
                       help="stored frames (every 10 fs)")
    probe.add_argument("--pair", type=int, default=0, help="rings pair, pair + 1")
    probe.add_argument("--out", type=Path, required=True, help="report prefix (.md, .json)")
    torsion = sub.add_parser("torsion", help="bithiophene rigid torsion profile, DFT vs models")
    torsion.add_argument("--models", nargs="+", type=Path,
                         default=[RESULTS / "models/polythiophene_1-2T.pt"])
    torsion.add_argument("--angles", nargs="+", type=float,
                         default=[0, 15, 30, 45, 60, 75, 90, 105, 120, 135, 150, 160, 170, 180],
                         help="S–C–C–S, degrees")
    torsion.add_argument("--threads", type=int, default=1, help="PySCF threads")
    torsion.add_argument("--out", type=Path, default=RESULTS / "polythiophene_torsion",
                         help="report stem (.md, .json, .png)")
    visited = sub.add_parser("torsions", help="syn share, flips and S…S contacts of chain MDs")
    visited.add_argument("--md", nargs="+", type=Path, required=True,
                         help="md stage directories")
    visited.add_argument("--out", type=Path, default=RESULTS / "polythiophene_md_torsions",
                         help="report stem (.md, .json, .png)")
    turned = sub.add_parser("torsion-samples",
                            help="bithiophene samples turned to any S–C–C–S, to label")
    turned.add_argument("--n", type=int, default=30)
    turned.add_argument("--seed", type=int, default=0)
    md = sub.add_parser("md", help="NVE of a long all-anti chain with a trained model")
    md.add_argument("--rings", type=int, default=12, help="chain length")
    md.add_argument("--trained-on", nargs="+", type=int, choices=LENGTHS,
                    default=[1, 2], help="picks the model of `train --rings` ...")
    md.add_argument("--model", type=Path, default=None, help="... or name one")
    md.add_argument("--replicas", type=int, default=4)
    md.add_argument("--nve-ps", type=float, default=5.0, help="per replica")
    md.add_argument("--thermalise-ps", type=float, default=1.0)
    md.add_argument("--threads", type=int, default=1)
    md.add_argument("--timestep-fs", type=float, default=0.5,
                    help="velocity Verlet step; other than 0.5 the run goes to ..._dtX")
    md.add_argument("--seed", type=int, default=None,
                    help="bench/md_nve.py's seed (default its own); the run goes to ..._seedN")
    args = parser.parse_args()
    {"cost": stage_cost, "cost-report": stage_cost_report, "model-cost": stage_model_cost,
     "sample": stage_sample, "label": stage_label, "train": stage_train,
     "accuracy": stage_accuracy, "md": stage_md, "fragments": stage_fragments,
     "probe": stage_probe, "model-ir": stage_model_ir, "torsion": stage_torsion,
     "torsion-samples": stage_torsion_samples, "torsions": stage_torsions}[args.stage](args)


if __name__ == "__main__":
    main()
