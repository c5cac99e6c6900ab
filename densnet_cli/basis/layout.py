"""The density basis: which Gaussian functions sit on each element, and in which order.

A :class:`BasisSet` maps element symbols to :class:`ElementBasis` objects.  Every element basis
is a list of *shells*, each one contracted radial Gaussian of angular momentum ``l`` times the
``2l+1`` real spherical harmonics.  All exponents are in Bohr⁻², all functions are normalised
(``∫φ² = 1``) exactly as PySCF normalises them, and coefficients are dimensionless weights of the
electron *number* density (so ``Σ c_μ ∫φ_μ`` is the electron count).

Two orders exist for the coefficients of one atom:

* **PySCF order** – shells in the order of the basis definition, components as in
  :mod:`densnet_cli.basis.convention`.  Used only to talk to PySCF.
* **e3nn order** – shells sorted by ``l`` (stable), components in e3nn's real basis, matching
  :attr:`ElementBasis.irreps` (e.g. ``"12x0e+7x1o+5x2e"``).  Used everywhere else: in datasets,
  in the model, in files.

A molecule's coefficient vector is the concatenation of its atoms' blocks in atom order.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from ase.data import atomic_numbers, chemical_symbols
from scipy.special import gamma

from densnet_cli.basis.convention import pyscf_to_e3nn_matrix
from densnet_cli.errors import InputError

Numbers = Sequence[int] | np.ndarray  # atomic numbers of a molecule, atom order
ETB_PREFIX = "etb"  # --density-basis etb or etb:BETA → PySCF's even-tempered auxiliary basis


@dataclass(frozen=True)
class Shell:
    """One contracted Gaussian shell ``R(r) = Σ_k c_k r^l exp(-α_k r²)`` (before normalisation)."""

    l: int
    exponents: tuple[float, ...]  # Bohr⁻²
    coefficients: tuple[float, ...]  # contraction coefficients as in the basis definition

    def to_pyscf(self) -> list:
        """This shell in PySCF's basis format ``[l, [α, c], ...]``."""
        return [self.l, *([a, c] for a, c in zip(self.exponents, self.coefficients, strict=True))]


def _gaussian_radial_integral(n: int, alpha: np.ndarray) -> np.ndarray:
    """``∫_0^∞ r^n exp(-α r²) dr``."""
    return 0.5 * gamma((n + 1) / 2) / alpha ** ((n + 1) / 2)


@dataclass(frozen=True)
class ElementBasis:
    """The density basis functions of one element."""

    symbol: str
    shells: tuple[Shell, ...]  # PySCF order

    @cached_property
    def shell_order(self) -> tuple[int, ...]:
        """Indices of :attr:`shells` in e3nn order (sorted by ``l``, stable)."""
        return tuple(sorted(range(len(self.shells)), key=lambda i: self.shells[i].l))

    @cached_property
    def irreps(self) -> str:
        """e3nn irreps string of one atom's coefficients, e.g. ``"12x0e+7x1o+5x2e"``."""
        counts: dict[int, int] = {}
        for shell in self.shells:
            counts[shell.l] = counts.get(shell.l, 0) + 1
        return "+".join(f"{n}x{l}{'e' if l % 2 == 0 else 'o'}" for l, n in sorted(counts.items()))

    @property
    def n_functions(self) -> int:
        """Number of basis functions (coefficients) on one atom."""
        return sum(2 * s.l + 1 for s in self.shells)

    @property
    def lmax(self) -> int:
        """Highest angular momentum on this element."""
        return max(s.l for s in self.shells)

    @cached_property
    def pyscf_to_e3nn(self) -> np.ndarray:
        """Orthogonal (n, n) matrix ``T`` with ``c_e3nn = T @ c_pyscf`` (its transpose inverts)."""
        starts = np.cumsum([0] + [2 * s.l + 1 for s in self.shells])
        t = np.zeros((self.n_functions, self.n_functions))
        row = 0
        for i in self.shell_order:
            l = self.shells[i].l
            t[row : row + 2 * l + 1, starts[i] : starts[i] + 2 * l + 1] = pyscf_to_e3nn_matrix(l)
            row += 2 * l + 1
        t.setflags(write=False)
        return t

    @cached_property
    def function_shell(self) -> np.ndarray:
        """Which shell (counted in e3nn order) each function belongs to, shape (n,).

        Anything applied per shell (e.g. a scale) through this index keeps equivariance.
        """
        return np.concatenate([np.full(2 * self.shells[i].l + 1, k)
                               for k, i in enumerate(self.shell_order)])

    @cached_property
    def function_l(self) -> np.ndarray:
        """Angular momentum of each function, e3nn order, shape (n,)."""
        return np.concatenate([np.full(2 * self.shells[i].l + 1, self.shells[i].l)
                               for i in self.shell_order])

    @cached_property
    def normalised_radial(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(exponents, coefficients including PySCF's normalisation) per shell, PySCF order."""
        mol = atom_basis_mole(self)
        out = []
        for ib in range(mol.nbas):
            ptr = mol._bas[ib, 6]  # PTR_COEFF
            nprim = mol.bas_nprim(ib)
            out.append((mol.bas_exp(ib).copy(), mol._env[ptr : ptr + nprim].copy()))
        return out

    @cached_property
    def charges(self) -> np.ndarray:
        """``∫φ_μ d³r`` for each function, e3nn order, shape (n,).  Only ``l = 0`` is non-zero.

        With PySCF's normalisation a shell is ``R(r) Y_lm(r̂)`` with orthonormal real harmonics,
        so ``∫φ = sqrt(4π) Σ_k c_k ∫ r² exp(-α_k r²) dr`` for s shells.
        """
        q_pyscf = np.zeros(self.n_functions)
        pos = 0
        for shell, (alpha, c) in zip(self.shells, self.normalised_radial, strict=True):
            if shell.l == 0:
                q_pyscf[pos] = np.sqrt(4 * np.pi) * np.sum(c * _gaussian_radial_integral(2, alpha))
            pos += 2 * shell.l + 1
        return self.pyscf_to_e3nn @ q_pyscf

    @cached_property
    def dipoles(self) -> np.ndarray:
        """``∫(r − R_atom) φ_μ d³r`` (Bohr) for each function, e3nn order, shape (n, 3).

        Only ``l = 1`` is non-zero: ``∫ x φ_px = sqrt(4π/3) Σ_k c_k ∫ r⁴ exp(-α_k r²) dr`` in
        PySCF's (p_x, p_y, p_z) order.
        """
        d_pyscf = np.zeros((self.n_functions, 3))
        pos = 0
        for shell, (alpha, c) in zip(self.shells, self.normalised_radial, strict=True):
            if shell.l == 1:
                value = np.sqrt(4 * np.pi / 3) * np.sum(c * _gaussian_radial_integral(4, alpha))
                d_pyscf[pos : pos + 3] = value * np.eye(3)
            pos += 2 * shell.l + 1
        return self.pyscf_to_e3nn @ d_pyscf

    def to_dict(self) -> dict:
        """JSON-ready description (exponents and coefficients at full precision)."""
        return {"symbol": self.symbol, "irreps": self.irreps,
                "shells": [{"l": s.l, "exponents": list(s.exponents),
                            "coefficients": list(s.coefficients)} for s in self.shells]}

    @classmethod
    def from_dict(cls, d: dict) -> ElementBasis:
        """Inverse of :meth:`to_dict`."""
        shells = tuple(Shell(int(s["l"]), tuple(map(float, s["exponents"])),
                             tuple(map(float, s["coefficients"]))) for s in d["shells"])
        return cls(symbol=str(d["symbol"]), shells=shells)


def atom_basis_mole(element: ElementBasis, position_bohr: Sequence[float] = (0.0, 0.0, 0.0)):
    """A one-atom PySCF ``Mole`` carrying this element's density basis."""
    from pyscf import gto

    z = atomic_numbers[element.symbol]
    return gto.M(atom=[(element.symbol, tuple(position_bohr))],
                 basis={element.symbol: [s.to_pyscf() for s in element.shells]},
                 unit="Bohr", spin=z % 2, verbose=0)


def _shells_from_pyscf(spec: list) -> tuple[Shell, ...]:
    """Split PySCF basis entries ``[l, (kappa,) [α, c1, c2...], ...]`` into single contractions."""
    shells = []
    for entry in spec:
        l = int(entry[0])
        prims = [p for p in entry[1:] if not isinstance(p, (int, float))]  # drop kappa if present
        table = np.asarray(prims, dtype=float)
        for col in range(1, table.shape[1]):
            keep = table[:, col] != 0.0
            shells.append(Shell(l, tuple(table[keep, 0]), tuple(table[keep, col])))
    return tuple(shells)


def pyscf_basis_entries(name: str, symbol: str) -> list:
    """PySCF's basis entries for ``symbol`` in basis ``name``; ``[]`` if it has none."""
    from pyscf import gto

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "basis may be available in basis-set-exchange"
        try:
            return list(gto.basis.load(name, symbol) or [])
        except Exception:  # PySCF raises several types for unknown names
            return []


def _load_element(name: str, symbol: str, orbital_basis: str) -> ElementBasis:
    from pyscf import df, gto

    if name == ETB_PREFIX or name.startswith(ETB_PREFIX + ":"):
        beta = float(name.split(":", 1)[1]) if ":" in name else 2.0
        z = atomic_numbers[symbol]
        if not pyscf_basis_entries(orbital_basis, symbol):
            raise InputError(f"element {symbol} is not in the orbital basis '{orbital_basis}' "
                             f"that the even-tempered density basis is built from")
        mol = gto.M(atom=f"{symbol} 0 0 0", basis=orbital_basis, spin=z % 2, verbose=0)
        spec = df.aug_etb(mol, beta=beta)[symbol]
    else:
        spec = pyscf_basis_entries(name, symbol)
        if not spec:
            raise InputError(f"density basis '{name}' is unknown to PySCF or has no functions "
                             f"for element {symbol}")
    return ElementBasis(symbol=symbol, shells=_shells_from_pyscf(spec))


@dataclass(frozen=True)
class BasisSet:
    """Density basis for a set of elements; ``name`` records where it came from."""

    name: str
    elements: dict[str, ElementBasis]

    @classmethod
    def from_pyscf(cls, name: str, symbols: Sequence[str], orbital_basis: str) -> BasisSet:
        """Load ``name`` (a PySCF auxiliary basis, or ``etb``/``etb:BETA``) for ``symbols``.

        ``orbital_basis`` is only used by the even-tempered option, which PySCF derives from the
        orbital basis.

        Raises:
            InputError: if the basis is unknown or lacks one of the elements.

        """
        return cls(name=name, elements={s: _load_element(name, s, orbital_basis)
                                        for s in sorted(set(symbols))})

    def __getitem__(self, symbol: str) -> ElementBasis:
        """The basis of one element (KeyError names the missing element)."""
        try:
            return self.elements[symbol]
        except KeyError:
            raise KeyError(f"element {symbol} is not in density basis '{self.name}' "
                           f"(has {sorted(self.elements)})") from None

    def for_numbers(self, numbers: Numbers) -> list[ElementBasis]:
        """The element bases of a molecule's atoms, in atom order."""
        return [self[chemical_symbols[int(z)]] for z in numbers]

    def atom_offsets(self, numbers: Numbers) -> np.ndarray:
        """Start of each atom's block in the molecule's coefficient vector, shape (n_atoms+1,)."""
        return np.cumsum([0] + [b.n_functions for b in self.for_numbers(numbers)])

    def transform(self, numbers: Numbers) -> np.ndarray:
        """Block-diagonal orthogonal (C, C) matrix ``T`` with ``c_e3nn = T @ c_pyscf``.

        A metric ``J`` in PySCF order becomes ``T J Tᵀ`` in e3nn order.
        """
        offsets = self.atom_offsets(numbers)
        t = np.zeros((offsets[-1], offsets[-1]))
        for basis, a, b in zip(self.for_numbers(numbers), offsets[:-1], offsets[1:], strict=True):
            t[a:b, a:b] = basis.pyscf_to_e3nn
        return t

    def pyscf_to_e3nn(self, coefficients: np.ndarray, numbers: Numbers) -> np.ndarray:
        """Molecule coefficients, PySCF order → e3nn order (last axis)."""
        return self._convert(coefficients, numbers, transpose=False)

    def e3nn_to_pyscf(self, coefficients: np.ndarray, numbers: Numbers) -> np.ndarray:
        """Molecule coefficients, e3nn order → PySCF order (last axis)."""
        return self._convert(coefficients, numbers, transpose=True)

    def _convert(self, c: np.ndarray, numbers: Numbers, transpose: bool) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        offsets = self.atom_offsets(numbers)
        if c.shape[-1] != offsets[-1]:
            raise ValueError(f"expected {offsets[-1]} coefficients for this molecule, "
                             f"got {c.shape[-1]}")
        out = np.empty_like(c)
        for basis, a, b in zip(self.for_numbers(numbers), offsets[:-1], offsets[1:], strict=True):
            t = basis.pyscf_to_e3nn.T if transpose else basis.pyscf_to_e3nn
            out[..., a:b] = c[..., a:b] @ t.T
        return out

    def molecule_vector(self, per_element: dict[str, np.ndarray], numbers: Numbers) -> np.ndarray:
        """Concatenate per-element coefficient vectors (e.g. the SAD prior) for a molecule."""
        return np.concatenate([per_element[b.symbol] for b in self.for_numbers(numbers)])

    def charges(self, numbers: Numbers) -> np.ndarray:
        """``∫φ_μ`` for a molecule's functions (e3nn order): ``N = charges · c``."""
        return np.concatenate([b.charges for b in self.for_numbers(numbers)])

    def dipoles(self, numbers: Numbers, positions_bohr: np.ndarray) -> np.ndarray:
        """``∫ r φ_μ`` (Bohr, about the origin) for a molecule's functions, shape (n, 3).

        The electronic dipole integral of the density is ``dipoles.T @ c``; the molecular
        dipole is ``Σ_A Z_A R_A − dipoles.T @ c``.
        """
        blocks = [b.dipoles + np.outer(b.charges, r)
                  for b, r in zip(self.for_numbers(numbers), positions_bohr, strict=True)]
        return np.concatenate(blocks)

    def mole(self, numbers: Numbers, positions_bohr: np.ndarray):
        """A PySCF ``Mole`` whose AOs are this density basis on the molecule (PySCF order)."""
        from pyscf import gto

        symbols = [chemical_symbols[int(z)] for z in numbers]
        mol = gto.Mole()
        mol.atom = list(zip(symbols, [tuple(map(float, r)) for r in positions_bohr], strict=True))
        mol.basis = {s: [sh.to_pyscf() for sh in self[s].shells] for s in set(symbols)}
        mol.unit = "Bohr"
        mol.spin = int(sum(numbers)) % 2
        mol.verbose = 0
        return mol.build()

    def to_json(self) -> str:
        """Serialise (for HDF5 attributes and model files)."""
        return json.dumps({"name": self.name,
                           "elements": [self.elements[s].to_dict() for s in sorted(self.elements)]})

    @classmethod
    def from_json(cls, text: str) -> BasisSet:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        return cls(name=d["name"],
                   elements={e["symbol"]: ElementBasis.from_dict(e) for e in d["elements"]})
