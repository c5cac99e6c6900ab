"""``densnet fit-density``: label geometries with DFT and fitted densities, resumably.

The run is: read and check the geometries → load the density basis and the SAD prior →
label every frame not yet in the part store (in-process, in local worker processes, or on a
Dask cluster) → assemble the HDF5 dataset.  See :mod:`densnet_cli.reference.partstore` for why
a killed run can simply be rerun.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers
from tqdm import tqdm

from densnet_cli import __version__
from densnet_cli.basis.layout import BasisSet, pyscf_basis_entries
from densnet_cli.data.geometries import check_geometry, file_sha256, read_geometries
from densnet_cli.data.hdf5 import read_metadata, write_dataset
from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.reference.dft import LevelOfTheory
from densnet_cli.reference.labelling import FrameTask, LabelSettings, label_frame
from densnet_cli.reference.partstore import PartStore, identity_differences
from densnet_cli.reference.sad import sad_prior


@dataclass(frozen=True)
class FitDensityConfig:
    """All options of ``densnet fit-density`` (the CLI maps its flags 1:1 onto these fields)."""

    geometries: Path
    output: Path
    index: str = ":"
    xc: str = "PBE"
    basis: str = "def2-SVP"
    scf_auxbasis: str = ""
    density_basis: str = "def2-universal-jkfit"
    constrain_dipole: bool = True
    charge: int = 0
    spin: int = 0
    grid_level: int = 4
    conv_tol: float = 1e-10
    max_cycle: int = 100
    workers: int = 1
    threads: int = 0
    scheduler: str = ""
    progress: bool = True

    def settings(self) -> LabelSettings:
        """The part of the configuration that determines the numbers in the dataset."""
        level = LevelOfTheory.of(self)
        return LabelSettings(level=level, density_basis=self.density_basis,
                             constrain_dipole=self.constrain_dipole)


@dataclass
class FitDensitySummary:
    """What a run did (printed by the CLI)."""

    output: Path
    n_frames: int
    n_labelled_now: int
    failed: list[tuple[int, str]] = field(default_factory=list)
    already_complete: bool = False
    seconds_per_frame: float = float("nan")
    fit_l1_percent: float = float("nan")
    sad_l1_percent: float = float("nan")
    max_fit_dipole_error: float = float("nan")  # e·Å


def _check_inputs(frames, cfg: FitDensityConfig) -> list[str]:
    """Check geometries, elements, functional and charge/spin before any DFT.

    Returns:
        The elements present, by atomic number.
    """
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(cfg.xc)
    except (KeyError, ValueError):
        raise InputError(f"--xc '{cfg.xc}' is not a functional PySCF (libxc) knows") from None
    symbols: set[str] = set()
    for index, atoms in frames:
        check_geometry(index, atoms)
        symbols.update(atoms.get_chemical_symbols())
    for symbol in sorted(symbols):
        if not pyscf_basis_entries(cfg.basis, symbol):
            raise InputError(f"element {symbol} is not in the orbital basis '{cfg.basis}'")
    for index, atoms in frames:
        n_electrons = int(atoms.numbers.sum()) - cfg.charge
        if n_electrons < 1 or (n_electrons - cfg.spin) % 2 or abs(cfg.spin) > n_electrons:
            raise InputError(f"frame {index}: {n_electrons} electrons cannot have spin "
                             f"(2S) = {cfg.spin} with charge {cfg.charge}")
    return sorted(symbols, key=lambda s: atomic_numbers[s])


def _versions() -> dict[str, str]:
    import ase
    import h5py
    import pyscf
    import scipy

    return {"densnet": __version__, "pyscf": pyscf.__version__, "ase": ase.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "h5py": h5py.__version__,
            "python": platform.python_version()}


def _execute(tasks: list[FrameTask], cfg: FitDensityConfig) -> Iterator[dict]:
    """Label ``tasks``, yielding records as they complete (in any order)."""
    if cfg.scheduler:
        from distributed import Client
        from distributed import as_completed as dask_completed

        try:
            client = Client(cfg.scheduler, timeout="20s")
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler at {cfg.scheduler}: {exc}"
                             ) from None
        with client:
            futures = client.map(label_frame, tasks, pure=False)
            for future in dask_completed(futures):
                yield future.result()
    elif cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn")) as pool:
            try:
                for done in as_completed([pool.submit(label_frame, t) for t in tasks]):
                    yield done.result()
            except BrokenProcessPool:
                raise DenSNetError("a worker process died (out of memory?); the frames "
                                   "labelled so far are kept: rerun the same command to resume"
                                   ) from None
    else:
        yield from map(label_frame, tasks)


def _identity(cfg: FitDensityConfig, source_indices: Iterable[int]) -> dict:
    return {"settings": cfg.settings().as_dict(),
            "source": {"sha256": file_sha256(cfg.geometries), "index": cfg.index,
                       "frames": list(map(int, source_indices))}}


def run_fit_density(cfg: FitDensityConfig) -> FitDensitySummary:
    """Label the selected frames of ``cfg.geometries`` into ``cfg.output`` (resumably).

    Raises:
        InputError: for bad geometries, unknown elements or bases, a mismatching existing
            output or part store, or an unreachable Dask scheduler.
    """
    if cfg.workers < 1:
        raise InputError(f"--workers must be at least 1, got {cfg.workers}")
    frames = read_geometries(cfg.geometries, cfg.index)
    symbols = _check_inputs(frames, cfg)
    identity = _identity(cfg, (i for i, _ in frames))
    store = PartStore(cfg.output)
    if not store.exists() and cfg.output.exists():
        found = read_metadata(cfg.output)
        diff = identity_differences(identity, {"settings": found.get("settings"),
                                               "source": _source_identity(found)})
        if diff:
            raise InputError(f"{cfg.output} exists and was written with different "
                             f"{', '.join(diff)}; choose another output or delete it")
        return FitDensitySummary(cfg.output, len(frames), 0, already_complete=True)

    settings = cfg.settings()
    basis = BasisSet.from_pyscf(cfg.density_basis, symbols, cfg.basis)
    store.open(identity)
    try:
        sad = sad_prior(basis, settings.level)
        done = store.done()
        threads = cfg.threads or (max(1, (os.cpu_count() or 1) // cfg.workers)
                                  if cfg.workers > 1 else 0)
        tasks = [FrameTask(i, atoms.numbers.copy(), atoms.get_positions(), settings, basis, sad,
                           cfg.max_cycle, threads) for i, atoms in frames if i not in done]
        labelled_now = 0
        with tqdm(total=len(frames), initial=len(frames) - len(tasks), unit="frame",
                  desc="fit-density", disable=not cfg.progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
            for record in _execute(tasks, cfg):
                if "error" in record:
                    store.put_failure(record["source_index"], record["error"])
                    bar.write(f"frame {record['source_index']} failed: {record['error']}",
                              file=sys.stderr)
                else:
                    store.put(record)
                    labelled_now += 1
                    bar.set_postfix(fit_L1=f"{record['fit_l1_percent']:.2f}%",
                                    scf=record["scf_strategy"], refresh=False)
                bar.update(1)
        return _assemble(cfg, store, frames, identity, basis, sad, labelled_now)
    finally:
        store.close()


def _source_identity(metadata: dict) -> dict | None:
    source = metadata.get("source")
    return None if source is None else {k: source.get(k) for k in ("sha256", "index", "frames")}


def _assemble(cfg: FitDensityConfig, store: PartStore, frames: list, identity: dict,
              basis: BasisSet, sad: dict[str, np.ndarray], labelled_now: int
              ) -> FitDensitySummary:
    """Write the dataset from the part store; remove the store if nothing failed."""
    done = store.done()
    records = [store.get(i) for i, _ in frames if i in done]
    selected = {i for i, _ in frames}
    failed = [(i, reason) for i, reason in store.failures() if i not in done and i in selected]
    metadata = {"settings": identity["settings"],
                "source": {"path": str(cfg.geometries), **identity["source"]},
                "versions": _versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_dataset(cfg.output, records, failed, metadata, basis, sad)
    if not failed:
        store.remove()  # the dataset is complete; a rerun now finds it "already complete"
    summary = FitDensitySummary(cfg.output, len(frames), labelled_now, failed=failed)
    if records:
        summary.seconds_per_frame = float(np.mean([r["wall_time"] for r in records]))
        summary.fit_l1_percent = float(np.mean([r["fit_l1_percent"] for r in records]))
        summary.sad_l1_percent = float(np.mean([r["sad_l1_percent"] for r in records]))
        summary.max_fit_dipole_error = float(max(np.abs(r["fit_dipole"] - r["dipole"]).max()
                                                 for r in records))
    return summary
