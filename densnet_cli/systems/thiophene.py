"""The thiophene ring of every oligothiophene: from the literature, a file or the project's DFT.

A ring is a planar C2v pentagon S, C2, C3, C4, C5 (Cα = C2, C5; Cβ = C3, C4) with one H on each
C.  Its geometry is four ring numbers (three bond lengths and ∠CSC: a C2v pentagon has four
degrees of freedom) plus two C–H lengths and two H angles (:class:`ThiopheneGeometry`).

Units: Å and degrees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms
from ase.data import covalent_radii

from densnet_cli.data.atomic import write_text
from densnet_cli.errors import InputError
from densnet_cli.reference.dft import LevelOfTheory

BOND_FACTOR = 1.2  # bonded: closer than this × the sum of covalent radii (ASE's table)
MAX_ASYMMETRY = 0.02  # Å, largest difference of C2v-equivalent bonds accepted in a monomer
MAX_ASYMMETRY_DEGREES = 2.0  # the same for angles
MAX_NONPLANARITY = 0.05  # Å, largest distance of a monomer's atom from its best plane
CACHE_FORMAT = "densnet-thiophene-monomer-1"


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _turn(v: np.ndarray, degrees: float) -> np.ndarray:
    """``v`` (in the xy plane) rotated by ``degrees`` about z."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], 0.0])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(_unit(a) @ _unit(b), -1.0, 1.0))))


def _outward(origin: np.ndarray, towards: np.ndarray, degrees: float, away_from: np.ndarray
             ) -> np.ndarray:
    """Unit vector at ``degrees`` from origin→towards, on the side away from origin→away_from."""
    base = _unit(towards - origin)
    candidates = [_turn(base, degrees), _turn(base, -degrees)]
    return max(candidates, key=lambda v: _angle(v, away_from - origin))


@dataclass(frozen=True)
class ThiopheneGeometry:
    """Internal coordinates of a planar C2v thiophene ring (Å, degrees).

    The ring follows from three bond lengths and ∠CSC (a C2v pentagon has four degrees of
    freedom).  Defaults: the microwave r_s structure of B. Bak, D. Christensen, L.
    Hansen-Nygaard, J. Rastrup-Andersen, J. Mol. Spectrosc. 7, 58 (1961), quoted from memory
    (not checked against the paper; the redundant angles are consistent: its ∠SCC 111.47° and
    ∠CCC 112.45° follow to 0.01° from the four ring values used here).
    """

    r_sc: float = 1.7140  # S–Cα
    r_cacb: float = 1.3696  # Cα=Cβ
    r_cbcb: float = 1.4232  # Cβ–Cβ′
    angle_csc: float = 92.17  # Cα–S–Cα′
    r_ch_alpha: float = 1.0776  # Cα–H
    r_ch_beta: float = 1.0805  # Cβ–H
    angle_sch: float = 119.85  # S–Cα–H, also S–Cα–Cα′ of the inter-ring bond
    angle_cch: float = 124.27  # Cβ′–Cβ–H

    def template(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ring S, C2, C3, C4, C5, H3, H4 (7, 3) in the xy plane; unit α exo vectors at C2, C5.

        Raises:
            InputError: if the three bond lengths and ∠CSC make no convex ring.
        """
        half = np.radians(self.angle_csc) / 2
        s = np.zeros(3)
        c5 = np.array([self.r_sc * np.sin(half), -self.r_sc * np.cos(half), 0.0])
        dx = c5[0] - self.r_cbcb / 2
        dy2 = self.r_cacb**2 - dx**2
        if dy2 <= 0:
            raise InputError(f"no thiophene ring has S–C {self.r_sc:.4f} Å, C=C "
                             f"{self.r_cacb:.4f} Å, C–C {self.r_cbcb:.4f} Å and ∠CSC "
                             f"{self.angle_csc:.2f}°")
        c4 = np.array([self.r_cbcb / 2, c5[1] - np.sqrt(dy2), 0.0])
        e5 = _outward(c5, s, self.angle_sch, away_from=c4)
        h4 = c4 + self.r_ch_beta * _outward(c4, c4 * [-1, 1, 1], self.angle_cch, away_from=c5)
        mirror = np.array([-1.0, 1.0, 1.0])
        ring = np.array([s, c5 * mirror, c4 * mirror, c4, c5, h4 * mirror, h4])
        return ring, e5 * mirror, e5

    @classmethod
    def from_atoms(cls, atoms: Atoms) -> ThiopheneGeometry:
        """The C2v-averaged internal coordinates of a thiophene molecule (any atom order).

        Raises:
            InputError: if ``atoms`` is not a planar, nearly C2v C4H4S thiophene.
        """
        if atoms.get_chemical_formula(mode="hill") != "C4H4S":
            raise InputError(f"a thiophene monomer is C4H4S, not "
                             f"{atoms.get_chemical_formula(mode='hill')}")
        s, c2, c3, c4, c5, h2, h3, h4, h5 = _thiophene_sites(atoms)
        p = atoms.positions

        def dist(i: int, j: int) -> float:
            return float(np.linalg.norm(p[i] - p[j]))

        def ang(i: int, j: int, k: int) -> float:
            return _angle(p[i] - p[j], p[k] - p[j])

        pairs = {"r_sc": (dist(s, c2), dist(s, c5)), "r_cacb": (dist(c2, c3), dist(c5, c4)),
                 "r_cbcb": (dist(c3, c4),) * 2, "angle_csc": (ang(c2, s, c5),) * 2,
                 "r_ch_alpha": (dist(c2, h2), dist(c5, h5)),
                 "r_ch_beta": (dist(c3, h3), dist(c4, h4)),
                 "angle_sch": (ang(s, c2, h2), ang(s, c5, h5)),
                 "angle_cch": (ang(c4, c3, h3), ang(c3, c4, h4))}
        for name, (a, b) in pairs.items():
            tolerance = MAX_ASYMMETRY_DEGREES if name.startswith("angle") else MAX_ASYMMETRY
            if abs(a - b) > tolerance:
                raise InputError(f"the thiophene monomer is not C2v: its two {name} values are "
                                 f"{a:.4f} and {b:.4f}")
        centred = p - p.mean(axis=0)
        off_plane = float(np.abs(centred @ np.linalg.svd(centred)[2][2]).max())
        if off_plane > MAX_NONPLANARITY:
            raise InputError(f"the thiophene monomer is not planar: an atom is {off_plane:.3f} Å "
                             f"from the best plane")
        return cls(**{name: (a + b) / 2 for name, (a, b) in pairs.items()})

    def atoms(self) -> Atoms:
        """The molecule: S, C2, C3, C4, C5, H2, H3, H4, H5 (the ring in the xy plane)."""
        ring, e2, e5 = self.template()
        h2, h5 = ring[1] + self.r_ch_alpha * e2, ring[4] + self.r_ch_alpha * e5
        return Atoms("SC4H4", positions=[*ring[:5], h2, ring[5], ring[6], h5])

    def as_dict(self) -> dict[str, float]:
        """Plain-data form (for file metadata)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


LITERATURE = ThiopheneGeometry()


def _thiophene_sites(atoms: Atoms) -> tuple[int, ...]:
    """Indices S, C2, C3, C4, C5, H2, H3, H4, H5 of a C4H4S molecule, found by its bonds."""
    z = atoms.numbers
    d = atoms.get_all_distances()
    bonded = (d < BOND_FACTOR * (covalent_radii[z][:, None] + covalent_radii[z][None, :]))
    np.fill_diagonal(bonded, False)

    def neighbours(i: int, symbol: str) -> list[int]:
        return [int(j) for j in np.flatnonzero(bonded[i]) if atoms[j].symbol == symbol]

    s = int(np.flatnonzero(z == 16)[0])
    alphas = neighbours(s, "C")
    betas = [neighbours(a, "C") for a in alphas]
    problem = "the monomer's bonds are not thiophene's (S–Cα, Cα=Cβ, Cβ–Cβ′, one H on each C)"
    if (len(alphas) != 2 or [len(b) for b in betas] != [1, 1]
            or betas[1][0] not in neighbours(betas[0][0], "C")):
        raise InputError(problem)
    carbons = [alphas[0], betas[0][0], betas[1][0], alphas[1]]
    hydrogens = [neighbours(c, "H") for c in carbons]
    if any(len(h) != 1 for h in hydrogens):
        raise InputError(problem)
    return (s, *carbons, *(h[0] for h in hydrogens))


def optimised_monomer(level: LevelOfTheory, cache: Path | None = None, fmax: float = 1e-3,
                      threads: int | None = None, logfile: IO | str | None = None,
                      log: Callable[[str], None] | None = None) -> Atoms:
    """Thiophene optimised with the project's DFT (:class:`PySCFCalculator`, :func:`optimise`).

    Starts from the literature geometry.  With ``cache`` (a JSON file), a result stored there
    for the same level of theory and ``fmax`` is reused, and a new one is stored.
    """
    from densnet_cli.analysis.harmonic import PySCFCalculator, optimise  # (pulls in torch)

    identity = {"format": CACHE_FORMAT, "level": level.as_dict(), "fmax": fmax}
    if cache is not None and cache.is_file():
        try:
            record = json.loads(cache.read_text(encoding="utf-8"))
            if {k: record[k] for k in identity} == identity:
                if log:
                    log(f"reusing the optimised thiophene in {cache}")
                return Atoms(numbers=record["numbers"], positions=record["positions"])
            if log:
                log(f"{cache} holds another level of theory or fmax: replacing it")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if log:
                log(f"ignoring unreadable cache file {cache} ({type(exc).__name__})")
    if log:
        log(f"optimising thiophene at {level.xc}/{level.basis} (fmax {fmax:g} eV/Å)")
    start = LITERATURE.atoms()
    atoms = optimise(start, PySCFCalculator(level, threads), fmax=fmax, logfile=logfile)
    if cache is not None:
        write_text(cache, json.dumps({**identity, "numbers": atoms.numbers.tolist(),
                                      "positions": atoms.positions.tolist()}, indent=1))
    return atoms


def read_monomer(path: Path) -> Atoms:
    """A thiophene monomer from a file ASE reads (its last frame) or an optimised_monomer cache.

    Raises:
        InputError: if the file cannot be read.
    """
    import ase.io

    try:
        if path.suffix == ".json":
            record = json.loads(path.read_text(encoding="utf-8"))
            return Atoms(numbers=record["numbers"], positions=record["positions"])
        atoms = ase.io.read(path)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise InputError(f"cannot read the monomer file {path}: {type(exc).__name__}: {exc}"
                         ) from exc
    if not isinstance(atoms, Atoms):
        raise InputError(f"the monomer file {path} holds no structure")
    return atoms
