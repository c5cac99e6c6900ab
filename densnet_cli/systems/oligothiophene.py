"""α,α′-linked oligothiophenes H–(C4H2S)n–H built exactly from the internal coordinates of one ring.

Every ring is the same planar C2v thiophene (:class:`ThiopheneGeometry`).  Ring k+1 hangs on
ring k by the inter-ring bond Cα(5)–Cα′(2), which points along ring k's α C–H direction and, by
the same angle, along ring k+1's; the rotation about that bond is the inter-ring dihedral
S_k–C5_k–C2_{k+1}–S_{k+1} (degrees, ASE's sign convention): 180° anti, 0° syn.  The chain ends
carry the α hydrogens.  Formula C_{4n} H_{2n+2} S_n.

Conventions of the output (``docs/oligothiophene.md``):

* atoms ring by ring, each ring S, C2, C3, C4, C5, [H2 on the first ring], H3, H4, [H5 on the
  last ring]; ``atoms.arrays["ring"]`` holds each atom's ring (0-based);
* the geometric centre at the origin, x along the end-to-end vector C2 (first ring) → C5 (last
  ring), z along the first ring's normal (made orthogonal to x), so planar chains lie in z = 0
  and a monomer has S on the +y side.

Units: Å and degrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from ase import Atoms
from ase.data import vdw_radii
from scipy.spatial import cKDTree

from densnet_cli.errors import InputError
from densnet_cli.systems.thiophene import LITERATURE, ThiopheneGeometry

INTER_RING_BOND = 1.45  # Å, Cα–Cα′; 2,2′-bithiophene gas-phase electron diffraction ≈ 1.456 Å
CLASH_FACTOR = 0.6  # atoms ≥ 3 bonds apart closer than this × the sum of vdW radii: a clash
RING_ATOMS = ("S", "C2", "C3", "C4", "C5")  # order of the heavy atoms of each ring


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotation_about(axis: np.ndarray, v: np.ndarray, degrees: float) -> np.ndarray:
    """``v`` rotated by ``degrees`` about the unit vector ``axis`` (right hand)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return v * c + np.cross(axis, v) * s + axis * (axis @ v) * (1 - c)


def _frame(u: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Right-handed orthonormal frame (3, 3) with columns u, towards ⊥ u, u × that.

    ``u`` is normalised again, so that rounding errors do not compound along a long chain.
    """
    u = _unit(u)
    v = _unit(towards - (towards @ u) * u)
    return np.stack([u, v, np.cross(u, v)], axis=1)


def chain_dihedrals(n: int, conformation: str = "anti") -> list[float]:
    """The n − 1 inter-ring dihedrals of an all-anti (180°) or all-syn (0°) chain."""
    angles = {"anti": 180.0, "syn": 0.0}
    if conformation not in angles:
        raise InputError(f"conformation must be one of {sorted(angles)}, not '{conformation}'")
    return [angles[conformation]] * max(n - 1, 0)


def chain_sites(n: int) -> list[dict[str, int]]:
    """Per ring, the atom index of each site: S, C2, C3, C4, C5, H3, H4, H2 (first), H5 (last)."""
    sites, start = [], 0
    for k in range(n):
        names = [*RING_ATOMS, *(["H2"] if k == 0 else []), "H3", "H4",
                 *(["H5"] if k == n - 1 else [])]
        sites.append({name: start + i for i, name in enumerate(names)})
        start += len(names)
    return sites


def chain_bonds(n: int) -> list[tuple[int, int]]:
    """The bonds (i, j) of a chain of ``n`` rings: 5n in rings, n − 1 between, 2n + 2 C–H."""
    sites = chain_sites(n)
    bonds = []
    for k, site in enumerate(sites):
        ring = [site[a] for a in RING_ATOMS]
        bonds += [(ring[i], ring[(i + 1) % 5]) for i in range(5)]
        bonds += [(site["C" + h[1]], site[h]) for h in ("H2", "H3", "H4", "H5") if h in site]
        if k > 0:
            bonds.append((sites[k - 1]["C5"], site["C2"]))
    return bonds


def inter_ring_dihedral_indices(n: int) -> list[tuple[int, int, int, int]]:
    """Atom indices (S_k, C5_k, C2_{k+1}, S_{k+1}) of each inter-ring dihedral of a chain."""
    sites = chain_sites(n)
    return [(a["S"], a["C5"], b["C2"], b["S"]) for a, b in pairwise(sites)]


def inter_ring_dihedrals(positions: np.ndarray, n: int) -> np.ndarray:
    """The n − 1 inter-ring dihedrals S–C–C–S (degrees, in (−180, 180], ASE's sign) of chains.

    ``positions`` (..., 7n + 2, 3) in this module's atom order, any leading shape (e.g. replicas
    × frames of an MD); returns (..., n − 1).
    """
    q = np.array(inter_ring_dihedral_indices(n)).reshape(-1, 4)
    a, b, c, d = (positions[..., q[:, i], :] for i in range(4))
    axis = c - b
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    v = (a - b) - np.sum((a - b) * axis, axis=-1, keepdims=True) * axis  # ⊥ components
    w = (d - c) - np.sum((d - c) * axis, axis=-1, keepdims=True) * axis
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(axis, v) * w, axis=-1)
    return np.degrees(np.arctan2(y, x))


def build_chain(n: int, dihedrals: Sequence[float] | None = None,
                monomer: Atoms | ThiopheneGeometry | None = None,
                inter_ring_bond: float = INTER_RING_BOND) -> Atoms:
    """The α-linked, H-terminated oligothiophene of ``n`` rings.

    Args:
        n: number of rings (1: thiophene).
        dihedrals: the n − 1 inter-ring dihedrals S–C–C–S in degrees (default all 180°, anti).
        monomer: the ring geometry: a thiophene molecule (its C2v-averaged internal coordinates
            are used for every ring) or a :class:`ThiopheneGeometry` (default
            :data:`LITERATURE`).
        inter_ring_bond: the Cα–Cα′ bond length between rings (Å).

    Raises:
        InputError: for n < 1, a wrong number of dihedrals, a monomer that is not thiophene,
            or a chain whose atoms overlap.
    """
    if n < 1:
        raise InputError(f"an oligothiophene needs at least one ring, not {n}")
    angles = chain_dihedrals(n) if dihedrals is None else [float(a) for a in dihedrals]
    if len(angles) != n - 1 or not np.isfinite(angles).all():
        raise InputError(f"a chain of {n} rings has {n - 1} inter-ring dihedrals, got "
                         f"{len(angles)}: {angles}")
    if not 1.0 < inter_ring_bond < 2.0:
        raise InputError(f"the inter-ring bond must be between 1 and 2 Å, not {inter_ring_bond}")
    geometry = (LITERATURE if monomer is None else monomer
                if isinstance(monomer, ThiopheneGeometry) else
                ThiopheneGeometry.from_atoms(monomer))
    ring, e2, e5 = geometry.template()
    # Ring k is the template moved rigidly, x → rotation @ x + origin (ring 0: not moved).  Ring
    # k+1's frame at its C2 (exo direction, then towards S) must be: exo pointing back along
    # the bond to ring k's C5, S turned about that bond by the dihedral from ring k's S.
    template_frame = _frame(e2, ring[0] - ring[1])
    rotation, origin = np.eye(3), np.zeros(3)
    rings: list[np.ndarray] = []
    for k in range(n):
        if k > 0:
            s_prev, c5_prev = rings[-1][0], rings[-1][4]
            bond = rotation @ e5  # unit vector C5_k → C2_{k+1}
            sulphur_side = _rotation_about(bond, s_prev - c5_prev, angles[k - 1])
            rotation = _frame(-bond, sulphur_side) @ template_frame.T
            origin = c5_prev + inter_ring_bond * bond - rotation @ ring[1]
        rings.append(ring @ rotation.T + origin)
    exo_first, exo_last = e2, rotation @ e5  # the chain-end α hydrogens' directions
    sites = chain_sites(n)
    placed = [(site[name], x) for site, r in zip(sites, rings, strict=True)
              for name, x in zip([*RING_ATOMS, "H3", "H4"], r, strict=True)]
    placed += [(sites[0]["H2"], rings[0][1] + geometry.r_ch_alpha * exo_first),
               (sites[-1]["H5"], rings[-1][4] + geometry.r_ch_alpha * exo_last)]
    positions = np.array([x for _, x in sorted(placed, key=lambda p: p[0])])
    symbols = [name[0] for site in sites for name in site]  # sites list names in atom order
    atoms = Atoms(symbols, positions=_align(positions, rings[0], rings[-1]))
    atoms.arrays["ring"] = np.repeat(np.arange(n), [len(site) for site in sites])
    atoms.info.update(n_rings=n, dihedrals=angles, inter_ring_bond=inter_ring_bond)
    check_clashes(atoms, chain_bonds(n))
    return atoms


def _align(positions: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Positions about their centre in the frame x = C2(first)→C5(last), z = first's normal."""
    x = _unit(last[4] - first[1])
    normal = _unit(np.cross(first[1] - first[0], first[4] - first[0]))
    z = _unit(normal - (normal @ x) * x)  # (a chain ending along that normal would overlap)
    axes = np.stack([x, np.cross(z, x), z])
    return (positions - positions.mean(axis=0)) @ axes.T


def check_clashes(atoms: Atoms, bonds: Sequence[tuple[int, int]],
                  factor: float = CLASH_FACTOR) -> None:
    """Raise :class:`InputError` if atoms ≥ 3 ``bonds`` apart are closer than ``factor`` × vdW.

    The threshold is ``factor`` times the sum of the two van der Waals radii (ASE's table).
    Linear in the number of atoms (a k-d tree finds the candidate pairs).
    """
    neighbours: list[set[int]] = [set() for _ in range(len(atoms))]
    for i, j in bonds:
        neighbours[i].add(j)
        neighbours[j].add(i)
    radii = vdw_radii[atoms.numbers]
    p = atoms.positions
    for i, j in sorted(cKDTree(p).query_pairs(factor * 2 * radii.max())):
        if j in neighbours[i] or neighbours[i] & neighbours[j]:  # 1–2 and 1–3 pairs
            continue
        distance = float(np.linalg.norm(p[i] - p[j]))
        if distance < factor * (radii[i] + radii[j]):
            raise InputError(f"atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) of "
                             f"the chain are {distance:.2f} Å apart: the conformation makes the "
                             f"chain overlap itself; choose other dihedrals")
