"""Shared fixtures: small real molecules and a way to run the real ``densnet`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from click.testing import CliRunner

from densnet_cli.cli import main
from densnet_cli.data.hdf5 import DensityDataset

# A fast level of theory for tests that check bookkeeping rather than chemistry.
FAST = ["--basis", "sto-3g", "--grid-level", "1", "--conv-tol", "1e-9", "--no-progress"]

WATER = Atoms("OH2", positions=[[0.0, 0.0, 0.119], [0.0, 0.763, -0.477], [0.0, -0.763, -0.477]])


def jiggled(atoms: Atoms, n: int, amplitude: float = 0.05, seed: int = 0) -> list[Atoms]:
    """``n`` copies of ``atoms`` with reproducible random displacements (Å)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = atoms.copy()
        a.positions += rng.uniform(-amplitude, amplitude, a.positions.shape)
        out.append(a)
    return out


@pytest.fixture
def water_frames(tmp_path: Path) -> Path:
    """An extxyz file of 4 distorted water molecules."""
    path = tmp_path / "water.xyz"
    ase.io.write(path, jiggled(WATER, 4), format="extxyz")
    return path


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run ``densnet`` in-process; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def run_densnet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the installed ``densnet`` console script in a subprocess."""
    exe = Path(sys.executable).with_name("densnet")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="session")
def ethanol() -> DensityDataset:
    """The committed example dataset: 100 rMD17 ethanol frames labelled at PBE/def2-SVP."""
    return DensityDataset(Path(__file__).resolve().parents[1] / "examples/ethanol/ethanol_100.h5")
