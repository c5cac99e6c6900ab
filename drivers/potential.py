"""What the socket client calls: a potential of positions, in ASE units, and the unit edge.

A :class:`Potential` maps a stack of geometries (B, n, 3) Å to energies (eV), forces (eV/Å) and
dipoles (e·Å).  :class:`DenSNetPotential` is the real one (a model file through
:class:`~densnet_cli.calculator.ModelEvaluator`); protocol tests may use any analytic one.
:func:`to_atomic_units` is the only place results are converted for the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from densnet_cli.calculator import ModelEvaluator
from densnet_cli.units import (
    dipole_e_angstrom_to_au,
    ev_to_hartree,
    forces_ev_per_angstrom_to_au,
)


@dataclass(frozen=True)
class Evaluation:
    """Results for B geometries (ASE units)."""

    energy: np.ndarray  # (B,) eV
    forces: np.ndarray  # (B, n, 3) eV/Å
    dipole: np.ndarray  # (B, 3) e·Å

    def first_nonfinite(self) -> str | None:
        """Name of the first quantity holding NaN/Inf (``"energy of structure 2"``), or None."""
        for name in ("energy", "forces", "dipole"):
            values = np.asarray(getattr(self, name), dtype=float)
            bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if bad.any():
                return f"{name} of structure {int(np.flatnonzero(bad)[0])}"
        return None


class Potential(Protocol):
    """Energy, forces and dipole of a stack of geometries of fixed atoms."""

    def __call__(self, positions: np.ndarray) -> Evaluation:
        """Evaluate positions (B, n, 3) Å."""
        ...


class DenSNetPotential:
    """A DenSNet model for the atoms ``numbers`` (in the server's order)."""

    def __init__(self, evaluator: ModelEvaluator, numbers: np.ndarray) -> None:
        self.evaluator = evaluator
        self.numbers = np.asarray(numbers, dtype=np.int64)

    def __call__(self, positions: np.ndarray) -> Evaluation:
        """Evaluate positions (B, n, 3) Å with the model."""
        p = self.evaluator(self.numbers, positions)
        return Evaluation(energy=p.energy, forces=p.forces, dipole=p.dipole)


@dataclass(frozen=True)
class WireResults:
    """Results in atomic units, as they go on the socket."""

    energy: np.ndarray  # (B,) Hartree
    forces: np.ndarray  # (B, n, 3) Hartree/Bohr
    extras: list[str]  # per structure: JSON {"dipole": [x, y, z]} in e·Bohr


def to_atomic_units(ev: Evaluation) -> WireResults:
    """Convert an :class:`Evaluation` for the wire; extras carry the dipole in e·Bohr."""
    dipole = dipole_e_angstrom_to_au(ev.dipole)
    return WireResults(
        energy=np.asarray(ev_to_hartree(np.asarray(ev.energy, dtype=float))),
        forces=forces_ev_per_angstrom_to_au(ev.forces),
        extras=[json.dumps({"dipole": [float(v) for v in mu]}) for mu in dipole],
    )
