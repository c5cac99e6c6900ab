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
    """Index tables of one molecule's density basis: primitives → shells → functions.

    Functions are in e3nn order (length C); shells (S) in the same order; primitives (P) are
    the Gaussians of every shell, flattened, so that each exponential is computed once.
    """

    function_shell: np.ndarray  # (C,) shell of each function
    harmonic: np.ndarray  # (C,) column in e3nn's spherical harmonics 0…lmax: l² + m
    function_atom: np.ndarray  # (C,) atom of each function
    shell_l: np.ndarray  # (S,) angular momentum
    shell_first: np.ndarray  # (S,) first function of each shell
    primitive_shell: np.ndarray  # (P,) shell of each primitive
    primitive_atom: np.ndarray  # (P,) atom of each primitive
    exponents: np.ndarray  # (P,) Bohr⁻²
    contraction: np.ndarray  # (P,) normalised contraction coefficients (PySCF's)
    lmax: int

    @classmethod
    def build(cls, basis: BasisSet, numbers: Numbers) -> MoleculeFunctions:
        """Tables for the molecule with atomic numbers ``numbers``."""
        f_shell: list[int] = []
        harmonic: list[int] = []
        f_atom: list[int] = []
        shell_l: list[int] = []
        shell_first: list[int] = []
        p_shell: list[int] = []
        p_atom: list[int] = []
        exponents: list[float] = []
        contraction: list[float] = []
        for a, element in enumerate(basis.for_numbers(numbers)):
            for shell_index in element.shell_order:
                l = element.shells[shell_index].l
                exps, coef = element.normalised_radial[shell_index]
                shell = len(shell_l)
                shell_l.append(l)
                shell_first.append(len(f_shell))
                f_shell += [shell] * (2 * l + 1)
                harmonic += [l * l + m for m in range(2 * l + 1)]
                f_atom += [a] * (2 * l + 1)
                p_shell += [shell] * len(exps)
                p_atom += [a] * len(exps)
                exponents += list(exps)
                contraction += list(coef)
        arr = np.asarray
        return cls(function_shell=arr(f_shell), harmonic=arr(harmonic),
                   function_atom=arr(f_atom),
                   shell_l=arr(shell_l), shell_first=arr(shell_first), primitive_shell=arr(p_shell),
                   primitive_atom=arr(p_atom), exponents=arr(exponents),
                   contraction=arr(contraction),
                   lmax=max(shell_l))


def basis_values(functions: MoleculeFunctions, positions_bohr: torch.Tensor,
                 points: torch.Tensor, scales: torch.Tensor | None = None) -> torch.Tensor:
    """``φ_μ^s`` at ``points`` (G, 3) Bohr for atoms at ``positions_bohr`` (n, 3): (G, C).

    ``scales`` (C,) are per-function exponent scales (equal within a shell); None means 1.
    """
    dtype, device = points.dtype, points.device

    def index(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device)

    x = points[None, :, :] - positions_bohr[:, None, :]  # (n, G, 3)
    sh = o3.spherical_harmonics(list(range(functions.lmax + 1)), x, normalize=False,
                                normalization="integral")  # (n, G, (lmax+1)²), solid harmonics
    r2 = (x * x).sum(-1)  # (n, G)
    alpha = torch.as_tensor(functions.exponents, dtype=dtype, device=device)  # (P,)
    coef = torch.as_tensor(functions.contraction, dtype=dtype, device=device)
    n_shells = len(functions.shell_l)
    if scales is not None:
        shell_scale = scales[index(functions.shell_first)]  # (S,)
        alpha = alpha * shell_scale[index(functions.primitive_shell)]
    gaussians = coef[:, None] * torch.exp(-alpha[:, None] * r2[index(functions.primitive_atom)])
    radial = torch.zeros(n_shells, len(points), dtype=dtype, device=device).index_add(
        0, index(functions.primitive_shell), gaussians)  # (S, G)
    if scales is not None:
        l = torch.as_tensor(functions.shell_l, dtype=dtype, device=device)
        radial = radial * (shell_scale ** (0.75 + 0.5 * l))[:, None]
    angular = sh[index(functions.function_atom), :, index(functions.harmonic)]  # (C, G)
    return (angular * radial[index(functions.function_shell)]).T


def density_values(functions: MoleculeFunctions, positions_bohr: torch.Tensor,
                   points: torch.Tensor, coefficients: torch.Tensor,
                   scales: torch.Tensor | None = None, block: int = 20000) -> torch.Tensor:
    """``ρ(r) = Σ_μ c_μ φ_μ^s(r)`` at ``points`` (G,), electrons/Bohr³, in blocks of points."""
    return torch.cat([basis_values(functions, positions_bohr, points[i:i + block], scales)
                      @ coefficients for i in range(0, len(points), block)])
