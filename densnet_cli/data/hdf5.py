"""The DenSNet dataset file (HDF5): writer and reader.

Layout (documented in ``docs/dataset.md``; names and units in :mod:`densnet_cli.keys`):
variable-size molecules are stored CSR-style, per-atom and per-coefficient arrays concatenated
over frames with offset arrays; metadata (format version, level of theory, density basis,
units, package versions, input file and its hash, frame selection) are JSON attributes of the
root group.

Files are written to a temporary name in the same directory and renamed into place, so a
dataset file that exists is always complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from densnet_cli import keys
from densnet_cli.basis.layout import BasisSet, Numbers
from densnet_cli.data.atomic import atomic_output
from densnet_cli.errors import InputError

FORMAT = "densnet-dataset"
FORMAT_VERSION = 1
UNITS = {"positions": "Angstrom", "energy": "eV", "forces": "eV/Angstrom",
         "dipole": "e*Angstrom", "coefficients": "electron-number-density weights, basis in a.u.",
         "fit_coulomb_error": "Hartree", "l1_percent": "percent of N", "wall_time": "s"}


def pack_lower(matrix: np.ndarray) -> np.ndarray:
    """Lower triangle of a symmetric matrix, row by row (the dataset's density-matrix layout)."""
    return np.asarray(matrix)[np.tril_indices(len(matrix))]


def unpack_lower(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_lower`: the full symmetric matrix."""
    n = round(float(np.sqrt(8 * len(packed) + 1) - 1) / 2)
    if n * (n + 1) // 2 != len(packed):
        raise ValueError(f"{len(packed)} values are not a packed triangle")
    out = np.zeros((n, n))
    out[np.tril_indices(n)] = packed
    return out + np.tril(out, -1).T


def write_dataset(path: str | Path, records: Sequence[dict], failed: Sequence[tuple[int, str]],
                  metadata: dict, basis: BasisSet, sad: dict[str, np.ndarray]) -> None:
    """Write labelled frames (sorted by source index) to ``path`` atomically."""
    path = Path(path)
    records = sorted(records, key=lambda r: r["source_index"])
    with atomic_output(path, ".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_frames"] = len(records)
        f.attrs["units"] = json.dumps(UNITS)
        f.attrs["basis"] = basis.to_json()
        for key, value in metadata.items():
            f.attrs[key] = json.dumps(value)
        for symbol, coefficients in sad.items():
            f[f"{keys.SAD_PREFIX}/{symbol}"] = coefficients
        n_atoms = [len(r["numbers"]) for r in records]
        n_coeff = [len(r["coefficients"]) for r in records]
        f[keys.SOURCE_INDEX] = np.array([r["source_index"] for r in records], dtype=np.int64)
        f[keys.ATOM_OFFSET] = np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64)
        f[keys.COEFF_OFFSET] = np.concatenate([[0], np.cumsum(n_coeff)]).astype(np.int64)
        for field, name in keys.FRAME_ARRAYS.items():
            f[name] = np.array([r[field] for r in records])
        f[keys.SCF_STRATEGY] = np.array([r["scf_strategy"] for r in records], dtype="S")
        for field, name in keys.ATOM_ARRAYS.items():
            f[name] = (np.concatenate([r[field] for r in records]) if records
                       else np.zeros((0, 3) if field != "numbers" else 0))
        f[keys.COEFFICIENTS] = (np.concatenate([r["coefficients"] for r in records])
                                if records else np.zeros(0))
        if records and all("density_matrix" in r for r in records):
            sizes = [len(r["density_matrix"]) for r in records]
            f[keys.DM_OFFSET] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            f[keys.DENSITY_MATRIX] = np.concatenate([r["density_matrix"] for r in records])
        f[keys.FAILED_INDEX] = np.array([i for i, _ in failed], dtype=np.int64)
        f[keys.FAILED_REASON] = np.array([m for _, m in failed], dtype="S")


def read_metadata(path: str | Path) -> dict:
    """Root attributes of a dataset (JSON decoded), checking that it is one."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise InputError(f"{path} is not a DenSNet dataset (no '{FORMAT}' format tag)")
            out = {}
            for k, v in f.attrs.items():
                try:
                    out[k] = json.loads(v) if isinstance(v, str) else v
                except json.JSONDecodeError:
                    out[k] = v
            return out
    except OSError as exc:
        raise InputError(f"cannot read dataset {path}: {exc}") from exc


@dataclass(frozen=True)
class Frame:
    """One labelled molecule (ASE units; coefficients in e3nn order)."""

    source_index: int
    numbers: np.ndarray  # (n,) int
    positions: np.ndarray  # (n, 3) Å
    energy: float  # eV
    forces: np.ndarray  # (n, 3) eV/Å
    dipole: np.ndarray  # (3,) e·Å, DFT
    coefficients: np.ndarray  # (C_frame,) e3nn order


class DensityDataset:
    """A DenSNet dataset loaded into memory, the reader the training stage uses.

    Example:
        >>> ds = DensityDataset("ethanol.h5")               # doctest: +SKIP
        >>> frame = ds[0]; frame.coefficients.shape         # doctest: +SKIP
        >>> prior = ds.sad_coefficients(frame.numbers)      # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        """Load every array of the file at ``path``."""
        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        if self.metadata.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: dataset format version "
                             f"{self.metadata.get('format_version')} is not {FORMAT_VERSION}")
        self.basis = BasisSet.from_json(json.dumps(self.metadata["basis"]))
        with h5py.File(self.path, "r") as f:
            self.arrays = {name: f[name][()] for name in self._dataset_names(f)}
            self.sad = {s: f[f"{keys.SAD_PREFIX}/{s}"][()] for s in f[keys.SAD_PREFIX]}
        self._atom_off = self.arrays[keys.ATOM_OFFSET]
        self._coeff_off = self.arrays[keys.COEFF_OFFSET]

    @staticmethod
    def _dataset_names(f: h5py.File) -> list[str]:
        names: list[str] = []
        f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
        return [n for n in names if not n.startswith(keys.SAD_PREFIX + "/")]

    def __len__(self) -> int:
        """Number of labelled frames."""
        return len(self.arrays[keys.SOURCE_INDEX])

    def __getitem__(self, i: int) -> Frame:
        """Frame ``i`` (0-based position in the file, not the source index)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        i %= len(self)
        a = slice(self._atom_off[i], self._atom_off[i + 1])
        c = slice(self._coeff_off[i], self._coeff_off[i + 1])
        return Frame(source_index=int(self.arrays[keys.SOURCE_INDEX][i]),
                     numbers=self.arrays[keys.NUMBERS][a],
                     positions=self.arrays[keys.POSITIONS][a],
                     energy=float(self.arrays[keys.ENERGY][i]),
                     forces=self.arrays[keys.FORCES][a],
                     dipole=self.arrays[keys.DIPOLE][i],
                     coefficients=self.arrays[keys.COEFFICIENTS][c])

    def __iter__(self) -> Iterator[Frame]:
        """All frames in file order."""
        return (self[i] for i in range(len(self)))

    @property
    def has_density_matrices(self) -> bool:
        """Whether the file stores the DFT density matrix of every frame."""
        return keys.DENSITY_MATRIX in self.arrays

    def density_matrix(self, i: int) -> np.ndarray:
        """Frame ``i``'s DFT density matrix (n_ao, n_ao), PySCF AO order, a.u."""
        if not self.has_density_matrices:
            raise InputError(f"{self.path} stores no DFT density matrices (labelled before they "
                             "were kept); relabel with densnet fit-density")
        off = self.arrays[keys.DM_OFFSET]
        i %= len(self)
        return unpack_lower(self.arrays[keys.DENSITY_MATRIX][off[i]:off[i + 1]])

    def per_frame(self, key: str) -> np.ndarray:
        """A per-frame array by its :mod:`densnet_cli.keys` name, e.g. ``keys.FIT_L1_PERCENT``."""
        return self.arrays[key]

    def sad_coefficients(self, numbers: Numbers) -> np.ndarray:
        """The SAD prior of a molecule (e3nn order), from the per-element priors in the file."""
        return self.basis.molecule_vector(self.sad, numbers)

    @property
    def failed(self) -> list[tuple[int, str]]:
        """Frames whose labelling failed: (source index, reason)."""
        reasons = [r.decode() for r in self.arrays[keys.FAILED_REASON]]
        return list(zip(self.arrays[keys.FAILED_INDEX].tolist(), reasons, strict=True))

    def to_atoms(self, i: int):
        """Frame ``i`` as ASE ``Atoms`` with energy, forces and dipole attached."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        fr = self[i]
        atoms = Atoms(numbers=fr.numbers, positions=fr.positions)
        atoms.calc = SinglePointCalculator(atoms, energy=fr.energy, forces=fr.forces,
                                           dipole=fr.dipole)
        return atoms
