"""``densnet serve``: load a model once, connect to i-PI or ASE, answer until the run ends.

Everything is checked before connecting (template readable, its elements known to the model,
output paths writable), so a bad command fails at once instead of after i-PI has started.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms

from densnet_cli.calculator import ModelEvaluator
from densnet_cli.data.dipole_stream import DipoleStreamWriter
from densnet_cli.errors import InputError
from drivers.connection import Address, connect
from drivers.potential import DenSNetPotential
from drivers.session import Session, SessionStats


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``densnet serve`` (one field per CLI option)."""

    model: Path
    template: Path
    unix: str | None = None
    unix_prefix: str = "/tmp/ipi_"
    host: str | None = None
    port: int | None = None
    dipoles: Path | None = None
    timestep: float | None = None  # fs, for the dipole stream's time column
    device: str = "auto"
    dtype: str = "float64"
    threads: int = 1  # torch CPU threads; 0 leaves torch's default
    charge: float = 0.0
    max_batch: int = 64
    connect_timeout: float = 60.0  # s
    timeout: float = 0.0  # s to wait for the next request; 0: forever
    require_exit: bool = False
    tag_beads: bool = True
    diagnosis: Path = Path("densnet-serve-failure.xyz")
    stats: Path | None = None


@dataclass(frozen=True)
class ServeSummary:
    """How a run ended and what it cost."""

    ended_by: str  # "EXIT" or "EOF"
    address: str
    stats: dict


def read_template(path: Path) -> Atoms:
    """The species (and reference geometry) the server's atoms must match."""
    if not path.is_file():
        raise InputError(f"template {path} does not exist")
    try:
        atoms = ase.io.read(path, index=0)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise InputError(f"cannot read template {path} as a structure: {exc}") from None
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise InputError(f"template {path} holds no atoms")
    return atoms


def geometry_keeper(template: Atoms, path: Path):
    """A ``diagnose`` callback: write the offending geometries (extxyz) to ``path``."""
    def diagnose(positions_angstrom: np.ndarray, reason: str) -> str:
        frames = []
        for r in positions_angstrom:
            atoms = (template.copy() if len(r) == len(template)
                     else Atoms(f"X{len(r)}"))  # species unknown when the count is wrong
            atoms.positions = r
            atoms.info["densnet_serve_failure"] = reason
            frames.append(atoms)
        ase.io.write(path, frames, format="extxyz")
        return str(path)
    return diagnose


def _check_writable(path: Path | None, what: str) -> None:
    if path is not None and not os.access(path.parent if str(path.parent) else Path("."),
                                          os.W_OK):
        raise InputError(f"{what} {path}: its directory does not exist or is not writable")


def run_serve(cfg: ServeConfig) -> ServeSummary:
    """Serve ``cfg.model`` until the server ends the run (EXIT, or EOF between requests).

    Raises:
        InputError: bad model, template, address or output path.
        DenSNetError: the connection failed or the server broke the protocol.
    """
    address = Address.parse(cfg.unix, cfg.unix_prefix, cfg.host, cfg.port)
    if cfg.threads:
        # One MD step of a molecule is thousands of tiny kernels: extra CPU threads only add
        # synchronisation, and on a busy machine they cost up to 10x (measured: 23 ms/step on
        # one thread vs 231 ms on two, ethanol, while another job held a core).
        torch.set_num_threads(cfg.threads)
    if cfg.max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, not {cfg.max_batch}")
    if cfg.timestep is not None and not cfg.timestep > 0:
        raise InputError(f"--timestep must be positive (fs), not {cfg.timestep}")
    for path, what in ((cfg.dipoles, "--dipoles"), (cfg.stats, "--stats"),
                       (cfg.diagnosis, "--diagnosis")):
        _check_writable(path, what)
    template = read_template(cfg.template)
    evaluator = ModelEvaluator(cfg.model, device=cfg.device, dtype=cfg.dtype, charge=cfg.charge)
    evaluator.check_species(template.numbers, f"template {cfg.template}")
    potential = DenSNetPotential(evaluator, template.numbers)
    writer = (DipoleStreamWriter(cfg.dipoles, metadata=_stream_header(cfg, address))
              if cfg.dipoles is not None else None)
    stats = SessionStats()
    try:
        sock = connect(address, cfg.connect_timeout)
        with sock:
            record = None
            if writer is not None:
                dt = cfg.timestep
                stream = writer

                def record(step: int, bead: int, dipole: np.ndarray) -> None:
                    stream.write(step, bead, step * dt if dt is not None else math.nan, dipole)

            session = Session(sock, potential, len(template), max_batch=cfg.max_batch,
                              diagnose=geometry_keeper(template, cfg.diagnosis),
                              record=record, tag_beads=cfg.tag_beads,
                              require_exit=cfg.require_exit,
                              idle_timeout=cfg.timeout if cfg.timeout > 0 else None)
            stats = session.stats
            ended_by = session.run()
    finally:
        if writer is not None:
            writer.close()
        if cfg.stats is not None:
            _write_stats(cfg.stats, cfg, stats)
    return ServeSummary(ended_by=ended_by, address=str(address), stats=stats.as_dict())


def _stream_header(cfg: ServeConfig, address: Address) -> dict[str, object]:
    header: dict[str, object] = {"source": f"densnet serve {cfg.model} ({address})"}
    if cfg.timestep is not None:
        header["timestep_fs"] = cfg.timestep
    return header


def _write_stats(path: Path, cfg: ServeConfig, stats: SessionStats) -> None:
    payload = {"config": {k: (str(v) if isinstance(v, Path) else v)
                          for k, v in asdict(cfg).items()},
               **stats.as_dict()}
    path.write_text(json.dumps(payload, indent=2) + "\n")
