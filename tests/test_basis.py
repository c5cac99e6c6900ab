"""The density basis: moments, conventions, serialisation (properties checked against PySCF)."""

import numpy as np
import pytest
import torch
from e3nn import o3
from pyscf import dft

from densnet_cli.basis.convention import pyscf_to_e3nn_matrix
from densnet_cli.basis.layout import BasisSet
from densnet_cli.errors import InputError

NUMBERS = [8, 1, 6]
POSITIONS = np.array([[0.1, -0.2, 0.3], [1.4, 0.9, -0.5], [-1.2, 0.4, 0.8]])  # Bohr


@pytest.fixture(scope="module", params=["def2-universal-jkfit", "etb"])
def basis(request) -> BasisSet:
    return BasisSet.from_pyscf(request.param, ["C", "O", "H"], "def2-SVP")


def _grid(mol, level=5):
    grids = dft.gen_grid.Grids(mol)
    grids.level = level
    return grids.build()


def test_charges_and_dipole_moments_match_numerical_integration(basis):
    mol = basis.mole(NUMBERS, POSITIONS)
    grids = _grid(mol)
    phi = basis.pyscf_to_e3nn(mol.eval_gto("GTOval_sph", grids.coords), NUMBERS)
    q_grid = grids.weights @ phi
    d_grid = np.einsum("g,gx,gm->mx", grids.weights, grids.coords, phi)
    np.testing.assert_allclose(basis.charges(NUMBERS), q_grid, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(basis.dipoles(NUMBERS, POSITIONS), d_grid, rtol=1e-6, atol=5e-6)


def test_functions_are_normalised(basis):
    mol = basis.mole(NUMBERS, POSITIONS)
    np.testing.assert_allclose(np.diag(mol.intor("int1e_ovlp")), 1.0, atol=1e-12)


@pytest.mark.parametrize("l", range(7))
def test_pyscf_to_e3nn_maps_pyscf_harmonics_onto_e3nn_harmonics(l):
    """Y^E = U Y^P at directions that were not used to build U."""
    from densnet_cli.basis.convention import _e3nn_harmonics, _pyscf_harmonics

    rng = np.random.default_rng(l)
    n = rng.normal(size=(50, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    yp, ye = _pyscf_harmonics(l, n), _e3nn_harmonics(l, n)
    u = pyscf_to_e3nn_matrix(l)
    ratio = (yp @ u.T) / np.where(np.abs(ye) > 1e-8, ye, np.nan)
    scale = np.nanmedian(ratio)
    np.testing.assert_allclose(yp @ u.T, scale * ye, atol=1e-10)
    np.testing.assert_allclose(u @ u.T, np.eye(2 * l + 1), atol=1e-12)


def test_e3nn_vectors_are_cartesian():
    """The convention the dipole code relies on: e3nn's 1o irrep is (x, y, z) and D(R) = R."""
    r = o3.rand_matrix(dtype=torch.float64)
    np.testing.assert_allclose(o3.Irreps("1o").D_from_matrix(r).numpy(), r.numpy(), atol=1e-6)
    np.testing.assert_allclose(pyscf_to_e3nn_matrix(1), np.eye(3), atol=1e-12)


def test_irreps_describe_the_e3nn_order(basis):
    for element in basis.elements.values():
        irreps = o3.Irreps(element.irreps)
        assert irreps.dim == element.n_functions
        ls = np.concatenate([[ir.l] * (2 * ir.l + 1) for mul, ir in irreps for _ in range(mul)])
        np.testing.assert_array_equal(ls, element.function_l)
        assert all(ir.p == (-1) ** ir.l for _, ir in irreps)


def test_conversion_round_trip_and_json(basis):
    c = np.random.default_rng(0).normal(size=(2, basis.atom_offsets(NUMBERS)[-1]))
    np.testing.assert_allclose(basis.e3nn_to_pyscf(basis.pyscf_to_e3nn(c, NUMBERS), NUMBERS), c,
                               atol=1e-13)
    again = BasisSet.from_json(basis.to_json())
    assert again == basis
    np.testing.assert_array_equal(again.charges(NUMBERS), basis.charges(NUMBERS))


def test_unknown_basis_or_element_is_an_input_error():
    with pytest.raises(InputError, match="no-such-basis"):
        BasisSet.from_pyscf("no-such-basis", ["H"], "def2-SVP")
    with pytest.raises(InputError, match="element U"):
        BasisSet.from_pyscf("def2-universal-jkfit", ["U"], "def2-SVP")
    with pytest.raises(KeyError, match="element N "):
        BasisSet.from_pyscf("def2-universal-jkfit", ["H"], "def2-SVP")["N"]
