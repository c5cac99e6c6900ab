"""Training data: datasets → frames with targets, the seeded split, batches, statistics.

Every frame also carries its Coulomb metric ``J`` (e3nn order), so that the density loss
``Δcᵀ J Δc`` — the Coulomb self-energy of the density error, in Hartree, the same norm the
reference fit minimised — costs one small matrix product per molecule.  For the refine stage
each frame also carries a :class:`GridTarget`: points and weights of a PySCF integration grid
and the true DFT density there (from the density matrix stored by ``fit-density``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase.data import atomic_numbers, chemical_symbols

from densnet_cli import units
from densnet_cli.basis.layout import BasisSet
from densnet_cli.basis.values import MoleculeFunctions
from densnet_cli.data.geometries import file_sha256
from densnet_cli.data.hdf5 import DensityDataset, Frame
from densnet_cli.errors import InputError
from densnet_cli.model.batch import Batch, collate, radius_graph


@dataclass(frozen=True)
class GridTarget:
    """The true DFT density of one frame on an integration grid (atomic units)."""

    functions: MoleculeFunctions  # the molecule's density-basis tables
    points: np.ndarray  # (G, 3) Bohr
    weights: np.ndarray  # (G,) Bohr³
    density: np.ndarray  # (G,) electrons/Bohr³
    n_electrons: float

    def to(self, device: torch.device, dtype: torch.dtype) -> GridTensors:
        """The arrays as tensors on ``device`` (the functions' tables stay numpy)."""
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype, device=device)

        return GridTensors(self.functions, t(self.points), t(self.weights), t(self.density),
                           self.n_electrons)


@dataclass(frozen=True)
class GridTensors:
    """A :class:`GridTarget` moved to a device: what the loss reads."""

    functions: MoleculeFunctions
    points: torch.Tensor
    weights: torch.Tensor
    density: torch.Tensor
    n_electrons: float


@dataclass(frozen=True)
class TrainingData:
    """All frames of the input datasets, with what training needs."""

    basis: BasisSet
    sad: dict[str, np.ndarray]
    frames: list[Frame]
    coulomb: list[np.ndarray]  # per frame (C_f, C_f) Hartree, e3nn order
    files: list[dict]  # path and sha256 of each dataset
    grids: list[GridTarget] | None = None  # per frame, when the refine stage needs them

    def batch(self, indices: Sequence[int], dtype: torch.dtype) -> tuple[Batch, list, list]:
        """A batch of frames with targets, their Coulomb metrics and grid targets (or [])."""
        frames = [self.frames[i] for i in indices]
        targets = [{"energy": f.energy, "forces": f.forces, "dipole": f.dipole,
                    "coefficients": f.coefficients} for f in frames]
        batch = collate(self.basis, [(f.numbers, f.positions) for f in frames],
                        targets=targets, dtype=dtype)
        grids = [self.grids[i] for i in indices] if self.grids else []
        return batch, [torch.as_tensor(self.coulomb[i], dtype=dtype) for i in indices], grids


def grid_target(ds: DensityDataset, i: int, level: int,
                functions: MoleculeFunctions) -> GridTarget:
    """Frame ``i`` of ``ds``: its DFT density on a PySCF grid of the given level."""
    from pyscf import dft
    from pyscf.dft import numint

    from densnet_cli.reference.dft import LevelOfTheory, build_molecule

    frame = ds[i]
    mol = build_molecule(frame.numbers, units.angstrom_to_bohr(frame.positions),
                         LevelOfTheory(**ds.metadata["settings"]["level"]))
    grids = dft.gen_grid.Grids(mol)
    grids.level = level
    grids.build()
    rho = numint.eval_rho(mol, mol.eval_gto("GTOval_sph", grids.coords), ds.density_matrix(i))
    return GridTarget(functions, grids.coords, grids.weights, rho, float(mol.nelectron))


def load_training_data(paths: Sequence[Path], grid_level: int | None = None) -> TrainingData:
    """Read one or more datasets, which must share the level of theory and density basis.

    With ``grid_level`` every frame also gets its DFT density on a grid of that level; every
    dataset must then store DFT density matrices.
    """
    if not paths:
        raise InputError("no dataset given")
    datasets = [DensityDataset(p) for p in paths]
    first = datasets[0]
    for p, ds in zip(paths[1:], datasets[1:], strict=True):
        if ds.metadata["settings"] != first.metadata["settings"]:
            raise InputError(f"{p} was labelled with other settings than {paths[0]}; "
                             f"datasets for one model must share level of theory and basis")
    basis = _merged_basis([ds.basis for ds in datasets], paths)
    sad: dict[str, np.ndarray] = {}
    for ds in datasets:
        sad.update(ds.sad)
    frames = [f for ds in datasets for f in ds]
    if len(frames) < 2:
        raise InputError(f"need at least 2 labelled frames to train, found {len(frames)}")
    transforms: dict[tuple, np.ndarray] = {}
    coulomb = []
    for f in frames:
        key = tuple(f.numbers)
        if key not in transforms:
            transforms[key] = basis.transform(f.numbers)
        t = transforms[key]
        j = basis.mole(f.numbers, units.angstrom_to_bohr(f.positions)).intor("int2c2e")
        coulomb.append((t @ j @ t.T).astype(np.float32))
    files = [{"path": str(p), "sha256": file_sha256(p)} for p in paths]
    grids = None
    if grid_level is not None:
        for p, ds in zip(paths, datasets, strict=True):
            if not ds.has_density_matrices:
                raise InputError(f"{p} stores no DFT density matrices, which the refine stage "
                                 f"trains against; relabel it with densnet fit-density or "
                                 f"leave it out")
        functions: dict[tuple, MoleculeFunctions] = {}
        grids = []
        for ds in datasets:
            for i in range(len(ds)):
                key = tuple(ds[i].numbers)
                if key not in functions:
                    functions[key] = MoleculeFunctions.build(basis, ds[i].numbers)
                grids.append(grid_target(ds, i, grid_level, functions[key]))
    return TrainingData(basis, sad, frames, coulomb, files, grids)


def _merged_basis(bases: list[BasisSet], paths: Sequence[Path]) -> BasisSet:
    elements: dict = {}
    for basis, path in zip(bases, paths, strict=True):
        for symbol, element in basis.elements.items():
            if symbol in elements and elements[symbol] != element:
                raise InputError(f"{path}: density basis of {symbol} differs from the other "
                                 f"datasets'")
            elements[symbol] = element
    return BasisSet(name=bases[0].name, elements=elements)


def split(n_frames: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random train/validation split of frame positions (at least one of each)."""
    order = np.random.default_rng(seed).permutation(n_frames)
    n_val = min(n_frames - 1, max(1, round(val_fraction * n_frames)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass(frozen=True)
class Statistics:
    """Normalisation constants from the training split (stored in the model's buffers)."""

    shell_rms: dict[str, np.ndarray]  # per element, per shell: RMS of the learned coefficients
    delta_rms: dict[str, np.ndarray]  # per element, per shell: RMS of c − c_SAD
    reference_energy: dict[str, float]  # eV per atom, least squares on the training energies
    force_rms: float  # eV/Å
    avg_num_neighbors: float

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return json.loads(json.dumps({
            "shell_rms": {k: v.tolist() for k, v in self.shell_rms.items()},
            "delta_rms": {k: v.tolist() for k, v in self.delta_rms.items()},
            "reference_energy": self.reference_energy, "force_rms": self.force_rms,
            "avg_num_neighbors": self.avg_num_neighbors}))


def statistics(data: TrainingData, train: Sequence[int] | np.ndarray, cutoff: float,
               delta: bool) -> Statistics:
    """Per-shell coefficient scales, per-element reference energies, force scale, neighbours."""
    symbols = sorted(data.basis.elements)
    sums = {s: np.zeros(len(data.basis[s].shells)) for s in symbols}
    delta_sums = {s: np.zeros(len(data.basis[s].shells)) for s in symbols}
    counts = dict.fromkeys(symbols, 0)
    energies, forces, neighbours, n_atoms = [], [], 0, 0
    for i in train:
        f = data.frames[i]
        offsets = data.basis.atom_offsets(f.numbers)
        for atom, z in enumerate(f.numbers):
            s = chemical_symbols[z]
            eb = data.basis[s]
            c = f.coefficients[offsets[atom]:offsets[atom + 1]]
            d = c - data.sad[s]
            sums[s] += np.bincount(eb.function_shell, (d if delta else c) ** 2)
            delta_sums[s] += np.bincount(eb.function_shell, d**2)
            counts[s] += 1
        energies.append(f.energy)
        forces.append(f.forces.ravel())
        pos = torch.as_tensor(f.positions)
        neighbours += len(radius_graph(pos, torch.zeros(len(pos), dtype=torch.long), cutoff)[0])
        n_atoms += len(f.numbers)
    per_shell = {s: np.bincount(data.basis[s].function_shell) for s in symbols}
    rms = {s: _safe_rms(sums[s], counts[s] * per_shell[s]) for s in symbols}
    delta_rms = {s: _safe_rms(delta_sums[s], counts[s] * per_shell[s]) for s in symbols}
    ref, *_ = np.linalg.lstsq(composition([data.frames[i].numbers for i in train], symbols),
                              np.array(energies), rcond=None)
    return Statistics(shell_rms=rms, delta_rms=delta_rms,
                      reference_energy={s: float(e) for s, e in zip(symbols, ref, strict=True)},
                      force_rms=float(np.sqrt(np.mean(np.concatenate(forces) ** 2))),
                      avg_num_neighbors=neighbours / n_atoms)


def composition(numbers: Sequence[np.ndarray], symbols: Sequence[str]) -> np.ndarray:
    """(molecules, elements) atom counts, the elements in the order of ``symbols``."""
    column = {atomic_numbers[s]: k for k, s in enumerate(symbols)}
    counts = np.zeros((len(numbers), len(symbols)))
    for row, z in enumerate(numbers):
        for atom in z:
            counts[row, column[int(atom)]] += 1
    return counts


def _safe_rms(sum_sq: np.ndarray, n: np.ndarray) -> np.ndarray:
    rms = np.sqrt(sum_sq / np.maximum(n, 1))
    floor = 1e-3 * max(float(rms.max()), 1e-12)
    return np.maximum(rms, floor)  # a shell never seen or always zero still gets a scale
