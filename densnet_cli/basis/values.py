"""Density-basis functions evaluated in PyTorch, with optional exponent scales ("flexible" basis).

A basis function of DenSNet (e3nn order, see :mod:`densnet_cli.basis.layout`) centred on atom
``A`` is ``φ_μ(r) = R_μ(|x|) Y^E_{lm}(x̂)``, ``x = r − R_A``, with PySCF's normalised contracted
radial part ``R_μ(r) = Σ_p c_p r^l exp(−α_p r²)`` and e3nn's real harmonics.

The flexible basis multiplies every exponent of a shell by a scale ``s > 0``.  DenSNet defines
the scaled function as the normalised dilation

    φ_μ^s(x) = s^{3/4} φ_μ(√s x) = s^{3/4 + l/2} S_{lm}(x) Σ_p c_p exp(−s α_p |x|²),

(``S_lm = |x|^l Y_lm`` the solid harmonic): every exponent times ``s``, ``∫(φ^s)² = 1`` for any
``s``.  Its moments follow in closed form — ``∫φ^s = s^{−3/4} ∫φ`` and
``∫x φ^s = s^{−5/4} ∫x φ`` — so the electron count and the dipole stay analytic.

Everything here is differentiable with respect to positions, grid points and scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from e3nn import o3

from densnet_cli.basis.layout import BasisSet, Numbers

CHARGE_SCALE_POWER = -0.75  # ∫φ^s = s^(−3/4) ∫φ
DIPOLE_SCALE_POWER = -1.25  # ∫(r − R_A) φ^s = s^(−5/4) ∫(r − R_A) φ


@dataclass(frozen=True)
class MoleculeFunctions:
    """Per-function tables of one molecule's density basis (e3nn order, length C)."""

    atom: np.ndarray  # (C,) atom index of each function
    l: np.ndarray  # (C,) angular momentum
    harmonic: np.ndarray  # (C,) column in e3nn's spherical harmonics 0…lmax: l² + m
    exponents: np.ndarray  # (C, P) primitive exponents (Bohr⁻²), zero-padded
    contraction: np.ndarray  # (C, P) normalised contraction coefficients, zero-padded
    lmax: int

    @classmethod
    def build(cls, basis: BasisSet, numbers: Numbers) -> MoleculeFunctions:
        """Tables for the molecule with atomic numbers ``numbers``."""
        atom, ls, harmonic, radial = [], [], [], []
        for a, element in enumerate(basis.for_numbers(numbers)):
            for shell_index in element.shell_order:
                l = element.shells[shell_index].l
                exps, coef = element.normalised_radial[shell_index]
                for m in range(2 * l + 1):
                    atom.append(a)
                    ls.append(l)
                    harmonic.append(l * l + m)
                    radial.append((exps, coef))
        n_prim = max(len(e) for e, _ in radial)
        exponents = np.zeros((len(radial), n_prim))
        contraction = np.zeros((len(radial), n_prim))
        for i, (e, c) in enumerate(radial):
            exponents[i, :len(e)] = e
            contraction[i, :len(c)] = c
        return cls(np.array(atom), np.array(ls), np.array(harmonic), exponents, contraction,
                   int(max(ls)))


def basis_values(functions: MoleculeFunctions, positions_bohr: torch.Tensor,
                 points: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
    """``φ_μ^s`` at ``points`` (G, 3) Bohr for atoms at ``positions_bohr`` (n, 3): (G, C).

    ``scales`` (C,) are per-function exponent scales (equal within a shell); None means 1.
    """
    dtype, device = points.dtype, points.device
    x = points[None, :, :] - positions_bohr[:, None, :]  # (n, G, 3)
    sh = o3.spherical_harmonics(list(range(functions.lmax + 1)), x, normalize=False,
                                normalization="integral")  # (n, G, (lmax+1)²), solid harmonics
    atom = torch.as_tensor(functions.atom, device=device)
    angular = sh[atom, :, torch.as_tensor(functions.harmonic, device=device)]  # (C, G)
    r2 = (x * x).sum(-1)[atom]  # (C, G)
    alpha = torch.as_tensor(functions.exponents, dtype=dtype, device=device)  # (C, P)
    coef = torch.as_tensor(functions.contraction, dtype=dtype, device=device)
    if scales is not None:
        alpha = alpha * scales[:, None]
    radial = torch.einsum("cp,cpg->cg", coef, torch.exp(-alpha[:, :, None] * r2[:, None, :]))
    values = angular * radial
    if scales is not None:
        l = torch.as_tensor(functions.l, dtype=dtype, device=device)
        values = values * (scales ** (0.75 + 0.5 * l))[:, None]
    return values.T


def density_values(functions: MoleculeFunctions, positions_bohr: torch.Tensor,
                   points: torch.Tensor, coefficients: torch.Tensor,
                   scales: torch.Tensor | None = None, block: int = 20000) -> torch.Tensor:
    """``ρ(r) = Σ_μ c_μ φ_μ^s(r)`` at ``points`` (G,), electrons/Bohr³, in blocks of points."""
    return torch.cat([basis_values(functions, positions_bohr, points[i:i + block], scales)
                      @ coefficients for i in range(0, len(points), block)])
