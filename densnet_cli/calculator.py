"""Running a trained model in-process: :class:`ModelEvaluator` and the ASE calculator.

:class:`ModelEvaluator` loads a model file once and evaluates many geometries of the same
atoms: the :class:`~densnet_cli.model.batch.Batch` (species, coefficient layout) is built once
per set of atoms and number of copies, and each call only replaces its positions.
:class:`DenSNetCalculator` (ASE) and ``densnet serve`` (i-PI / ASE sockets) both evaluate
through it, so they give identical numbers for the same geometry.

Units are ASE's: positions Å, energy eV, forces eV/Å, dipole e·Å.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols

from densnet_cli.errors import InputError
from densnet_cli.model.batch import Batch, collate
from densnet_cli.model.io import load_model, resolve_device

DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class Predictions:
    """Model outputs for B geometries of the same n atoms (numpy, float64, ASE units)."""

    energy: np.ndarray  # (B,) eV
    forces: np.ndarray  # (B, n, 3) eV/Å
    dipole: np.ndarray  # (B, 3) e·Å
    populations: np.ndarray  # (B, n) electrons on each atom
    coefficients: np.ndarray  # (B, C) density coefficients, e3nn order
    exponent_scales: np.ndarray | None = None  # (B, C) flexible basis only


class ModelEvaluator:
    """A loaded DenSNet model that evaluates stacks of geometries of fixed atoms.

    Args:
        model_path: a model file written by ``densnet train`` (or ``save_model``).
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda[:N]``.
        dtype: ``float64`` (default; what the agreement tests use) or ``float32``.
        charge: net charge of the molecule (e), an input of the density network.
    """

    def __init__(self, model_path: str | Path, device: str = "auto",
                 dtype: str = "float64", charge: float = 0.0) -> None:
        if dtype not in DTYPES:
            raise InputError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        self.device = resolve_device(device)
        self.dtype = DTYPES[dtype]
        self.model, self.metadata = load_model(model_path, device=self.device, dtype=self.dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)  # forces need ∂E/∂R only
        self.elements: list[str] = list(self.metadata["elements"])
        self.charge = float(charge)
        self._batches: dict[tuple[tuple[int, ...], int], Batch] = {}

    def check_species(self, numbers: np.ndarray, source: str) -> None:
        """Raise :class:`InputError` naming ``source`` if it has elements the model lacks."""
        missing = sorted({chemical_symbols[int(z)] for z in numbers} - set(self.elements))
        if missing:
            raise InputError(f"{source} contains {', '.join(missing)}, which the model does "
                             f"not know (it was trained on {', '.join(self.elements)})")

    def _batch(self, numbers: np.ndarray, n_copies: int) -> Batch:
        key = (tuple(int(z) for z in numbers), n_copies)
        batch = self._batches.get(key)
        if batch is None:
            zeros = np.zeros((len(numbers), 3))
            batch = collate(self.model.basis, [(numbers, zeros)] * n_copies,
                            charges=[self.charge] * n_copies, dtype=self.dtype
                            ).to(device=self.device)
            self._batches = {key: batch}  # keep one: MD never changes its atoms
        return batch

    def __call__(self, numbers: np.ndarray, positions: np.ndarray) -> Predictions:
        """Predictions for positions (B, n, 3) Å of the atoms ``numbers`` (n,)."""
        positions = np.asarray(positions, dtype=float)
        n_struct, n_atoms = positions.shape[0], positions.shape[1]
        batch = self._batch(numbers, n_struct)
        batch.positions = torch.as_tensor(positions.reshape(-1, 3), dtype=self.dtype,
                                          device=self.device)
        out = self.model(batch, forces=True)

        def host(t: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
            return t.detach().to("cpu", torch.float64).numpy().reshape(shape)

        return Predictions(
            energy=host(out["energy"], (n_struct,)),
            forces=host(out["forces"], (n_struct, n_atoms, 3)),
            dipole=host(out["dipole"], (n_struct, 3)),
            populations=host(out["populations"], (n_struct, n_atoms)),
            coefficients=host(out["coefficients"], (n_struct, -1)),
            exponent_scales=(host(out["exponent_scales"], (n_struct, -1))
                             if "exponent_scales" in out else None),
        )


class DenSNetCalculator(Calculator):
    """ASE calculator for a DenSNet model file (molecules in vacuum; no periodic cell).

    Results (ASE units):

    * ``energy``, ``free_energy`` (eV), ``forces`` (eV/Å) — forces are −∂E/∂R through both the
      density and the energy network;
    * ``dipole`` (e·Å, ASE's convention, about the origin; with a net charge it depends on
      the origin);
    * ``charges`` (e): net atomic charges q_A = Z_A − N_A, with N_A the electrons on atom A in
      the predicted density (``populations``).  Positive means the atom lost electrons; the
      charges sum to the molecule's net charge;
    * ``populations`` (electrons, N_A, summing to the electron count) and ``coefficients``
      (the predicted density coefficients, the model's basis in e3nn order) in ``calc.results``,
      and ``exponent_scales`` for a flexible-basis model.

    Args:
        model: path of the model file.
        device: ``auto`` (CUDA if available), ``cpu`` or ``cuda[:N]``.
        dtype: ``float64`` (default) or ``float32``.
        charge: net charge of the molecule (e).
    """

    implemented_properties = [  # noqa: RUF012 (ASE declares it an instance attribute)
        "energy", "free_energy", "forces", "dipole", "charges"]

    def __init__(self, model: str | Path, device: str = "auto", dtype: str = "float64",
                 charge: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.evaluator = ModelEvaluator(model, device=device, dtype=dtype, charge=charge)

    def calculate(self, atoms: Atoms | None = None, properties: list[str] | None = None,
                  system_changes: list[str] = all_changes) -> None:
        """Evaluate the model for ``atoms`` and fill ``self.results``."""
        super().calculate(atoms, properties or ["energy"], system_changes)
        if self.atoms is None:
            raise InputError("DenSNetCalculator needs an Atoms object")
        numbers = self.atoms.numbers
        if "numbers" in system_changes:
            self.evaluator.check_species(numbers, "the Atoms object")
        p = self.evaluator(numbers, self.atoms.positions[None])
        self.results = {
            "energy": float(p.energy[0]),
            "free_energy": float(p.energy[0]),
            "forces": p.forces[0],
            "dipole": p.dipole[0],
            "charges": numbers - p.populations[0],
            "populations": p.populations[0],
            "coefficients": p.coefficients[0],
        }
        if p.exponent_scales is not None:
            self.results["exponent_scales"] = p.exponent_scales[0]
