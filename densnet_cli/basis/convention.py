"""PySCF ↔ e3nn conventions for real spherical harmonics: the one place that fixes them.

PySCF (libcint) writes a spherical Gaussian shell of angular momentum ``l`` as
``φ_m(r) = R(|r|) Y^P_{l,m}(r̂)`` with real, orthonormal spherical harmonics ``Y^P``, ordered
``m = -l … l`` with the z axis as the polar axis — except for ``l = 1``, which PySCF orders
``(p_x, p_y, p_z)``.

e3nn's irreps use its own real basis (``e3nn.o3.spherical_harmonics``; for e3nn ≥ 0.5 the
``l = 1`` components are ``(x, y, z)`` and ``Irreps("1o").D_from_matrix(R) == R``).  Both
bases span the same space, so for each ``l`` there is an orthogonal matrix ``U_l`` with

    Y^E(r̂) = U_l · Y^P(r̂)        (e3nn harmonics, "integral" normalisation)

We *define* DenSNet's basis functions as ``φ^E = U_l φ^P``.  A density
``ρ = Σ c^P φ^P = Σ c^E φ^E`` then has coefficients

    c^E = U_l · c^P        and        c^P = U_lᵀ · c^E,

and rotating the molecule by ``R`` maps ``c^E → D_l(R) · c^E`` with e3nn's Wigner-D matrix.
``tests/test_basis.py`` proves this against PySCF by fitting the density of a rotated molecule.

``U_l`` is obtained by least squares on a fixed set of directions (it is exact: both sides are
the same polynomial space) and is checked to be orthogonal to 1e-10.
"""

from __future__ import annotations

from functools import cache

import numpy as np


def _fibonacci_directions(n: int) -> np.ndarray:
    """``n`` quasi-uniform unit vectors (deterministic)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5.0**0.5) * k
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def _pyscf_harmonics(l: int, directions: np.ndarray) -> np.ndarray:
    """PySCF's real spherical harmonics ``Y^P_l`` at unit vectors, shape (n, 2l+1)."""
    from pyscf import gto

    # One shell of one primitive on a ghost-free H atom; on the unit sphere its radial part is
    # a constant, which the orthonormalisation below removes.
    mol = gto.M(atom="H 0 0 0", basis={"H": [[l, [1.0, 1.0]]]}, spin=1, unit="Bohr", verbose=0)
    return np.asarray(mol.eval_gto("GTOval_sph", directions))


def _e3nn_harmonics(l: int, directions: np.ndarray) -> np.ndarray:
    """e3nn's real spherical harmonics ``Y^E_l`` (integral normalisation), shape (n, 2l+1)."""
    import torch
    from e3nn import o3

    x = torch.as_tensor(directions, dtype=torch.float64)
    y = o3.spherical_harmonics(l, x, normalize=True, normalization="integral")
    return y.numpy()


@cache
def pyscf_to_e3nn_matrix(l: int) -> np.ndarray:
    """Orthogonal ``U_l`` (2l+1, 2l+1) with ``c_e3nn = U_l @ c_pyscf`` for one shell.

    Raises:
        ValueError: if ``l`` is negative.
        RuntimeError: if the two conventions are not related by an orthogonal map (a changed
            convention in a new PySCF or e3nn release must not go unnoticed).
    """
    if l < 0:
        raise ValueError(f"angular momentum must be >= 0, got {l}")
    directions = _fibonacci_directions(4 * (2 * l + 1) + 16)
    yp = _pyscf_harmonics(l, directions)
    ye = _e3nn_harmonics(l, directions)
    # Solve Y^E = Y^P · Uᵀ in the least-squares sense, then remove PySCF's radial constant.
    ut, *_ = np.linalg.lstsq(yp, ye, rcond=None)
    if not np.allclose(yp @ ut, ye, atol=1e-10):
        raise RuntimeError(f"PySCF and e3nn harmonics for l={l} span different spaces")
    u = ut.T / np.sqrt(np.mean(np.sum(ut * ut, axis=0)))
    u[np.abs(u) < 1e-13] = 0.0
    if not np.allclose(u @ u.T, np.eye(2 * l + 1), atol=1e-10):
        raise RuntimeError(f"PySCF and e3nn harmonics for l={l} are not orthogonally related")
    u.setflags(write=False)
    return u
