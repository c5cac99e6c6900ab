"""``densnet sample``: starting structures → DFT normal modes → thermal samples → extxyz.

The run is: read the input and build the conformers → check the level of theory → optimise each
conformer and compute its Hessian (or reuse the cache) → share the samples out over the
conformers → draw them (:mod:`densnet_cli.sampling.thermal`) → write ``OUT`` (extended XYZ, in
random order so that any slice of it covers every conformer) and ``OUT.modes.json``.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import ase.io
import numpy as np
from ase import Atoms

from densnet_cli.data.atomic import atomic_output, write_text
from densnet_cli.errors import InputError
from densnet_cli.reference.dft import LevelOfTheory, build_molecule
from densnet_cli.sampling.conformers import Conformer, read_structure, starting_conformers
from densnet_cli.sampling.normal_modes import Log, NormalModes, cached_normal_modes, quiet
from densnet_cli.sampling.thermal import (
    MIN_DISTANCE_FACTOR,
    MIN_FREQUENCY_CM1,
    Samples,
    draw_samples,
)
from densnet_cli.units import BOLTZMANN_EV_PER_K, angstrom_to_bohr

DEFAULT_CACHE_DIR = "densnet-cache"  # beside the output unless --cache-dir says otherwise


@dataclass(frozen=True)
class SampleConfig:
    """All options of ``densnet sample`` (the CLI maps its flags 1:1 onto these fields)."""

    input: str
    output: Path
    n_samples: int = 100
    temperature: float = 300.0  # K
    quantum: bool = False
    seed: int = 0
    index: str = "0"
    dihedral: tuple[str, ...] = ()
    conformers: Path | None = None
    weights: str = "even"
    xc: str = "PBE"
    basis: str = "def2-SVP"
    scf_auxbasis: str = ""
    charge: int = 0
    spin: int = 0
    grid_level: int = 4
    conv_tol: float = 1e-10  # Hartree
    fmax: float = 1e-3  # eV/Å
    min_frequency: float = MIN_FREQUENCY_CM1  # cm⁻¹
    min_distance_factor: float = MIN_DISTANCE_FACTOR
    cache_dir: Path | None = None  # None: DEFAULT_CACHE_DIR beside the output
    cache: bool = True
    threads: int = 0  # 0: PySCF's default
    workers: int = 1  # conformers optimised side by side, each in its own process
    progress: bool = True

    def level(self) -> LevelOfTheory:
        """The level of theory of the optimisations and Hessians."""
        return LevelOfTheory.of(self)

    @property
    def modes_path(self) -> Path:
        """The summary file written beside the output: ``OUT.modes.json``."""
        return self.output.with_suffix(".modes.json")

    def check(self) -> None:
        """Reject option values that cannot work, before any file is read."""
        problems = [
            (self.n_samples < 1, f"--n-samples must be at least 1, not {self.n_samples}"),
            (not self.temperature >= 0, f"--temperature must be ≥ 0 K, not {self.temperature}"),
            (self.temperature == 0 and not self.quantum,
             "--temperature 0 with classical sampling gives only the minimum; use --quantum "
             "for zero-point motion"),
            (not 0 <= self.grid_level <= 9, f"--grid-level must be 0 to 9, not {self.grid_level}"),
            (not self.conv_tol > 0, f"--conv-tol must be > 0, not {self.conv_tol}"),
            (not self.fmax > 0, f"--fmax must be > 0 eV/Å, not {self.fmax}"),
            (not self.min_frequency > 0,
             f"--min-frequency must be > 0 cm⁻¹, not {self.min_frequency}"),
            (not 0 <= self.min_distance_factor < 1,
             f"--min-distance-factor must be in [0, 1), not {self.min_distance_factor}"),
            (self.threads < 0, f"--threads must be ≥ 0, not {self.threads}"),
            (self.workers < 1, f"--workers must be ≥ 1, not {self.workers}"),
        ]
        for bad, message in problems:
            if bad:
                raise InputError(message)
        from pyscf.dft import libxc

        try:
            libxc.parse_xc(self.xc)
        except (KeyError, ValueError):
            raise InputError(f"--xc '{self.xc}' is not a functional PySCF (libxc) knows") from None


@dataclass(frozen=True)
class ConformerResult:
    """One conformer's start, modes and samples."""

    conformer: Conformer
    modes: NormalModes
    cache_file: Path | None  # where the modes are cached (None: --no-cache)
    weight: float  # its share of the samples
    samples: Samples


def _check_molecule(atoms: Atoms, level: LevelOfTheory) -> None:
    """Basis, charge and spin problems as one-line errors before any SCF."""
    try:
        with warnings.catch_warnings():  # PySCF suggests basis-set-exchange for unknown names
            warnings.simplefilter("ignore")
            build_molecule(atoms.numbers, angstrom_to_bohr(atoms.positions), level)
    except InputError as exc:
        raise InputError(str(exc).splitlines()[0]) from None


def conformer_weights(spec: str, energies: np.ndarray, temperature: float) -> np.ndarray:
    """Normalised weights: ``even``, ``boltzmann`` (DFT minimum energies, eV) or ``w0,w1,...``."""
    n = len(energies)
    if spec == "even":
        weights = np.ones(n)
    elif spec == "boltzmann":
        relative = energies - energies.min()
        kt = BOLTZMANN_EV_PER_K * temperature
        weights = np.exp(-relative / kt) if kt > 0 else (relative == 0).astype(float)
    else:
        try:
            weights = np.array([float(w) for w in spec.split(",")])
        except ValueError:
            raise InputError(f"--weights '{spec}' is not 'even', 'boltzmann' or a list of "
                             f"numbers like 1,2,1") from None
        if len(weights) != n or not np.all(weights >= 0) or not weights.sum() > 0:
            raise InputError(f"--weights '{spec}' must be {n} non-negative numbers (one per "
                             f"conformer), not all zero")
    return weights / weights.sum()


def allocate(n_samples: int, weights: np.ndarray) -> np.ndarray:
    """Integer sample counts proportional to ``weights`` summing to ``n_samples``.

    Largest remainder: every conformer gets floor(n·w), the leftovers go to the largest
    fractional parts (ties to the lower index).
    """
    share = n_samples * np.asarray(weights, dtype=float)
    counts = np.floor(share).astype(int)
    leftovers = np.argsort(-(share - counts), kind="stable")[: n_samples - counts.sum()]
    counts[leftovers] += 1
    return counts


def run_sample(cfg: SampleConfig, log: Log = quiet, warn: Log = quiet,
               optimiser_log: IO | None = None) -> list[ConformerResult]:
    """Run ``densnet sample``.

    Args:
        cfg: the options.
        log: receives a progress line before each slow step (with ``cfg.workers`` > 1 it is
            sent to the worker processes, so it must pickle: a module-level function).
        warn: receives warnings (modes that are not displaced).
        optimiser_log: where ASE's BFGS writes a line per optimisation step (None: nowhere).
    """
    cfg.check()
    structure = read_structure(cfg.input, cfg.index, cfg.charge)
    conformers = starting_conformers(structure, cfg.conformers, cfg.dihedral)
    if cfg.weights != "boltzmann":  # check before the expensive part
        conformer_weights(cfg.weights, np.zeros(len(conformers)), cfg.temperature)
    level = cfg.level()
    _check_molecule(structure, level)
    cache_dir = (cfg.cache_dir or cfg.output.parent / DEFAULT_CACHE_DIR) if cfg.cache else None

    jobs = [_ConformerJob(f"conformer {c} ({conformer.label}): ", conformer.atoms, level,
                          cfg.fmax, cache_dir, cfg.threads or None)
            for c, conformer in enumerate(conformers)]
    computed = _conformer_modes(jobs, cfg.workers, log, optimiser_log)

    weights = conformer_weights(cfg.weights, np.array([m.energy for m, _ in computed]),
                                cfg.temperature)
    counts = allocate(cfg.n_samples, weights)
    rng = np.random.default_rng(cfg.seed)
    results = []
    for c, (conformer, (modes, cache_file)) in enumerate(zip(conformers, computed, strict=True)):
        soft = modes.frequencies_cm1[modes.frequencies_cm1 < cfg.min_frequency]
        if len(soft):
            warn(f"warning: conformer {c} ({conformer.label}): {len(soft)} mode(s) below "
                 f"{cfg.min_frequency:g} cm⁻¹ are not displaced: "
                 f"{', '.join(f'{f:.0f}' for f in soft)} cm⁻¹ (negative: imaginary, not a "
                 f"minimum)")
        samples = draw_samples(modes, int(counts[c]), cfg.temperature, rng, cfg.quantum,
                               cfg.min_frequency, cfg.min_distance_factor)
        results.append(ConformerResult(conformer, modes, cache_file, float(weights[c]), samples))
    write_text(cfg.modes_path, json.dumps(_summary(cfg, results), indent=1))
    _write_frames(cfg, results, rng)
    return results


@dataclass(frozen=True)
class _ConformerJob:
    """One conformer's optimisation and Hessian: what a worker process needs to run it."""

    prefix: str  # "conformer 1 (dihedral ...): ", before every message it logs
    atoms: Atoms
    level: LevelOfTheory
    fmax: float
    cache_dir: Path | None
    threads: int | None

    def run(self, log: Log, optimiser_log: IO | None) -> tuple[NormalModes, Path | None]:
        return cached_normal_modes(self.atoms, self.level, self.fmax, self.cache_dir,
                                   self.threads, _Prefixed(log, self.prefix), optimiser_log)


@dataclass(frozen=True)
class _Prefixed:
    """A log that puts a prefix before every message (a class, so that it pickles)."""

    log: Log
    prefix: str

    def __call__(self, message: str) -> None:
        self.log(self.prefix + message)


class _PrefixedStream(io.TextIOBase):
    """A text stream that writes each line to stderr with a prefix.

    The optimiser's table of a worker process, told apart from the other workers' tables.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix, self.pending = prefix, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            sys.stderr.write(f"{self.prefix}{line}\n")
        sys.stderr.flush()
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _run_in_worker(job: _ConformerJob, log: Log,
                   optimiser_table: bool) -> tuple[NormalModes, Path | None]:
    stream = cast(IO[str], _PrefixedStream(job.prefix)) if optimiser_table else None
    return job.run(log, stream)


def _conformer_modes(jobs: list[_ConformerJob], workers: int, log: Log,
                     optimiser_log: IO | None) -> list[tuple[NormalModes, Path | None]]:
    """Every conformer's modes (and cache file), in order.

    One after another in this process, or ``workers`` at a time in fresh processes (each
    conformer's DFT is independent; the cache files are per conformer, so finished ones survive
    a failure of another).
    """
    if workers == 1 or len(jobs) == 1:
        return [job.run(log, optimiser_log) for job in jobs]
    # spawn, not fork: PySCF's and PyTorch's thread pools do not survive a fork
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        futures = [pool.submit(_run_in_worker, job, log, optimiser_log is not None)
                   for job in jobs]
        return [future.result() for future in futures]


def _write_frames(cfg: SampleConfig, results: list[ConformerResult],
                  rng: np.random.Generator) -> None:
    """All samples, shuffled, as extended XYZ with per-frame info (atomically)."""
    frames = []
    for c, result in enumerate(results):
        for x, energy in zip(result.samples.positions, result.samples.harmonic_energy,
                             strict=True):
            atoms = Atoms(numbers=result.modes.numbers, positions=x, masses=result.modes.masses)
            atoms.info.update(conformer=c, temperature=cfg.temperature,
                              harmonic_energy=float(energy), seed=cfg.seed,
                              sampling="quantum" if cfg.quantum else "classical")
            frames.append(atoms)
    with atomic_output(cfg.output) as tmp:
        ase.io.write(tmp, [frames[i] for i in rng.permutation(len(frames))], format="extxyz")


def _summary(cfg: SampleConfig, results: list[ConformerResult]) -> dict:
    """The content of ``OUT.modes.json``."""
    lowest = min(r.modes.energy for r in results)
    conformers = []
    for c, r in enumerate(results):
        conformers.append({
            "index": c, "source": r.conformer.label,
            "start_positions": r.conformer.atoms.positions.tolist(),
            "positions": r.modes.positions.tolist(),
            "dft_energy": r.modes.energy, "relative_energy": r.modes.energy - lowest,
            "frequencies_cm1": r.modes.frequencies_cm1.tolist(),
            "displaced_modes": r.samples.displaced.tolist(), "hessian": r.modes.method,
            "hessian_sum_rule_violation_eV_per_A2": r.modes.to_dict()["sum_rule_violation"],
            "weight": r.weight, "n_samples": len(r.samples.positions),
            "n_rejected": r.samples.n_rejected,
            "cache_file": str(r.cache_file) if r.cache_file else None})
    return {"samples": str(cfg.output), "n_samples": cfg.n_samples,
            "temperature": cfg.temperature, "sampling": "quantum" if cfg.quantum else "classical",
            "seed": cfg.seed, "min_frequency_cm1": cfg.min_frequency,
            "min_distance_factor": cfg.min_distance_factor, "fmax": cfg.fmax,
            "level_of_theory": cfg.level().as_dict(),
            "numbers": results[0].modes.numbers.tolist(),
            "units": {"energy": "eV", "positions": "Angstrom", "temperature": "K",
                      "frequencies": "cm^-1", "fmax": "eV/Angstrom"},
            "conformers": conformers}
