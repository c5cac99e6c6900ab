"""Python API: a trained model applied to ASE ``Atoms`` or to a whole dataset.

>>> from densnet_cli.evaluation.predict import Predictor    # doctest: +SKIP
>>> p = Predictor("ethanol.pt")
>>> out = p.predict(atoms)        # energy eV, forces eV/Å, dipole e·Å, coefficients, ...
>>> p.write_cube(atoms, "rho.cube")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms

from densnet_cli.data.hdf5 import Frame
from densnet_cli.evaluation.density import write_cube
from densnet_cli.model.batch import collate
from densnet_cli.model.io import load_model, resolve_device


class Predictor:
    """A loaded model (float64 by default) with numpy in, numpy out."""

    def __init__(self, model_path: str | Path, device: str = "cpu",
                 dtype: torch.dtype = torch.float64):
        """Load the model file once (``device``: auto, cpu or cuda[:N])."""
        self.device, self.dtype = resolve_device(device), dtype
        self.model, self.metadata = load_model(model_path, device=self.device, dtype=dtype)
        self.basis = self.model.basis

    def predict_many(self, molecules: Sequence[tuple[np.ndarray, np.ndarray]],
                     charges: Sequence[float] | None = None) -> list[dict[str, np.ndarray]]:
        """Predictions for ``(numbers, positions_Å)`` molecules, one batch, split per molecule."""
        batch = collate(self.basis, molecules, charges=charges, dtype=self.dtype).to(self.device)
        out = {k: v.detach().cpu().numpy() for k, v in self.model(batch).items()}
        results, atom0, coeff0 = [], 0, 0
        for m, (numbers, _) in enumerate(molecules):
            n = len(numbers)
            c = int(self.basis.atom_offsets(numbers)[-1])
            results.append({"energy": float(out["energy"][m]),
                            "forces": out["forces"][atom0:atom0 + n],
                            "dipole": out["dipole"][m],
                            "populations": out["populations"][atom0:atom0 + n],
                            "coefficients": out["coefficients"][coeff0:coeff0 + c]})
            if "exponent_scales" in out:  # flexible basis
                results[-1]["exponent_scales"] = out["exponent_scales"][coeff0:coeff0 + c]
            atom0, coeff0 = atom0 + n, coeff0 + c
        return results

    def predict(self, atoms: Atoms, charge: float = 0.0) -> dict[str, np.ndarray]:
        """Energy (eV), forces (eV/Å), dipole (e·Å), populations, coefficients of ``atoms``.

        A flexible-basis model adds ``exponent_scales`` (one per coefficient).
        """
        return self.predict_many([(atoms.numbers, atoms.positions)], [charge])[0]

    def predict_frames(self, frames: Sequence[Frame], batch_size: int = 16
                       ) -> Iterator[dict[str, np.ndarray]]:
        """Predictions for dataset frames, in order."""
        for i in range(0, len(frames), batch_size):
            chunk = frames[i:i + batch_size]
            yield from self.predict_many([(f.numbers, f.positions) for f in chunk])

    def write_cube(self, atoms: Atoms, path: str | Path, spacing: float = 0.2) -> None:
        """The predicted density of ``atoms`` as a Gaussian cube file (grid ``spacing`` Å)."""
        out = self.predict(atoms)
        write_cube(self.basis, atoms.numbers, atoms.positions, out["coefficients"], path,
                   spacing=spacing, scales=out.get("exponent_scales"))
