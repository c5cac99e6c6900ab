"""Starting structures for sampling: the input (a file or a SMILES string) and its conformers.

Conformer 0 is always the input structure.  More come from a multi-frame file of starting
structures (same atoms in the same order) and from ``--dihedral`` settings, each of which rotates
the part of the input on the far side of a bond to set one or more dihedral angles.  Every
conformer is optimised separately afterwards, so a setting only has to land in the right basin.

Atom indices are 0-based (ASE's), angles in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import covalent_radii
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import pdist, squareform

from densnet_cli.data.geometries import check_geometry, read_geometries
from densnet_cli.errors import InputError

BOND_FACTOR = 1.2  # atoms closer than this × the sum of their covalent radii are bonded
SMILES_EMBED_SEED = 61453  # fixed: the same SMILES always gives the same start (and cache key)


@dataclass(frozen=True)
class Dihedral:
    """One dihedral setting: rotate the l-side of bond j–k so that angle(i, j, k, l) = angle."""

    atoms: tuple[int, int, int, int]  # 0-based i, j, k, l
    angle: float  # degrees

    def __str__(self) -> str:
        return f"{','.join(map(str, self.atoms))}={self.angle:g}"


@dataclass(frozen=True)
class Conformer:
    """A starting structure and where it came from."""

    label: str  # "input", "FILE[i]" or "dihedral i,j,k,l=angle"
    atoms: Atoms


def parse_dihedrals(text: str) -> tuple[Dihedral, ...]:
    """One ``--dihedral`` value: ``"i,j,k,l=ANGLE"``, several joined by ``;`` for one conformer."""
    settings = []
    for part in text.split(";"):
        try:
            atoms_text, angle_text = part.split("=")
            atoms = tuple(int(a) for a in atoms_text.split(","))
            angle = float(angle_text)
            if len(atoms) != 4 or not np.isfinite(angle):
                raise ValueError
        except ValueError:
            raise InputError(f"--dihedral '{text}' is not of the form i,j,k,l=ANGLE (0-based atom "
                             f"indices, degrees; several joined by ';')") from None
        settings.append(Dihedral((atoms[0], atoms[1], atoms[2], atoms[3]), angle))
    return tuple(settings)


def bond_graph(atoms: Atoms) -> np.ndarray:
    """(n, n) bool: atoms closer than :data:`BOND_FACTOR` × the sum of covalent radii."""
    radii = covalent_radii[atoms.numbers]
    bonded = squareform(pdist(atoms.positions)) < BOND_FACTOR * (radii[:, None] + radii[None, :])
    np.fill_diagonal(bonded, False)
    return bonded


def moving_side(atoms: Atoms, j: int, k: int) -> np.ndarray:
    """(n,) bool: the atoms reached from k without crossing the bond j–k (k included).

    Raises:
        InputError: if j and k are not bonded, or the bond is in a ring.
    """
    graph = bond_graph(atoms)
    if not graph[j, k]:
        raise InputError(f"--dihedral: atoms {j} and {k} are not bonded, so there is no bond "
                         f"{j}–{k} to rotate about")
    graph[j, k] = graph[k, j] = False
    _, labels = connected_components(csr_matrix(graph), directed=False)
    side = labels == labels[k]
    if side[j]:
        raise InputError(f"--dihedral: the bond {j}–{k} is in a ring; rotating about it would "
                         f"break the ring")
    return side


def set_dihedrals(atoms: Atoms, settings: tuple[Dihedral, ...]) -> Atoms:
    """A copy of ``atoms`` with each dihedral set, moving the whole l-side of each bond j–k."""
    out = atoms.copy()
    for setting in settings:
        i, j, k, l = setting.atoms
        bad = [a for a in setting.atoms if not 0 <= a < len(out)]
        if bad:
            raise InputError(f"--dihedral {setting}: atom index {bad[0]} is out of range (the "
                             f"molecule has {len(out)} atoms, indices 0 to {len(out) - 1})")
        if len(set(setting.atoms)) != 4:
            raise InputError(f"--dihedral {setting}: the four atoms must be different")
        side = moving_side(out, j, k)
        if not side[l] or side[i]:
            raise InputError(f"--dihedral {setting}: atom {l} must be on the far side of the "
                             f"bond {j}–{k} from atom {i}")
        out.set_dihedral(i, j, k, l, setting.angle, mask=side)
    return out


def smiles_to_atoms(smiles: str) -> Atoms:
    """A 3-D structure for a SMILES string (RDKit: hydrogens added, ETKDG embedding, MMFF)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem
    from rdkit.rdBase import BlockLogs

    _block = BlockLogs()  # RDKit's own messages would add lines to a one-line error
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise InputError(f"{smiles} does not exist as a file and is not a SMILES string RDKit "
                         f"can parse")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = SMILES_EMBED_SEED
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise InputError(f"RDKit could not make a 3-D structure for the SMILES {smiles}")
    AllChem.MMFFOptimizeMolecule(mol)  # a better start; its failure (no MMFF types) is harmless
    atoms = Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
                  positions=mol.GetConformer().GetPositions())
    atoms.info["formal_charge"] = int(Chem.GetFormalCharge(mol))
    return atoms


def read_structure(source: str, index: str = "0", charge: int = 0) -> Atoms:
    """The input structure: one frame (``index``) of a file ASE reads, or a SMILES string.

    SMILES needs RDKit (the ``smiles`` extra); its formal charge must equal ``charge``.
    """
    if Path(source).is_file():
        frames = read_geometries(source, index)
        if len(frames) != 1:
            raise InputError(f"--index {index} selects {len(frames)} frames of {source}; it must "
                             f"select one (use --conformers for several starting structures)")
        return frames[0][1]
    try:
        import rdkit  # noqa: F401
    except ImportError:
        raise InputError(f"{source} does not exist (SMILES input needs RDKit: "
                         f"pip install 'densnet[smiles]')") from None
    atoms = smiles_to_atoms(source)
    if atoms.info["formal_charge"] != charge:
        raise InputError(f"the SMILES {source} has formal charge {atoms.info['formal_charge']} "
                         f"but --charge is {charge}")
    return atoms


def starting_conformers(structure: Atoms, conformers_file: Path | None = None,
                        dihedrals: tuple[str, ...] = ()) -> list[Conformer]:
    """The input, then each frame of ``conformers_file``, then one conformer per dihedral spec.

    Raises:
        InputError: for a conformer with other atoms than the input, overlapping atoms, or a
            dihedral setting that cannot be applied.
    """
    if structure.pbc.any() or len(structure) < 2:
        raise InputError("sampling is for a molecule in vacuum (no periodic cell) with at least "
                         "two atoms")
    plain = Atoms(numbers=structure.numbers, positions=structure.positions,
                  masses=structure.get_masses())
    conformers = [Conformer("input", plain)]
    if conformers_file is not None:
        for i, atoms in read_geometries(conformers_file, ":"):
            if not np.array_equal(atoms.numbers, plain.numbers):
                raise InputError(f"{conformers_file} frame {i} ({atoms.get_chemical_formula()}) "
                                 f"does not have the input's atoms ({plain.get_chemical_formula()}"
                                 f") in the same order")
            start = plain.copy()
            start.positions = atoms.positions
            conformers.append(Conformer(f"{conformers_file.name}[{i}]", start))
    for spec in dihedrals:
        settings = parse_dihedrals(spec)
        label = "dihedral " + ";".join(map(str, settings))
        conformers.append(Conformer(label, set_dihedrals(plain, settings)))
    for c, conformer in enumerate(conformers):
        try:
            check_geometry(c, conformer.atoms)
        except InputError as exc:
            raise InputError(f"conformer {c} ({conformer.label}): {exc}") from None
    return conformers
