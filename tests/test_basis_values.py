"""The PyTorch evaluation of the density basis, fixed and flexible (scaled exponents)."""

import numpy as np
import pytest
import torch
from pyscf import dft, gto

from densnet_cli import units
from densnet_cli.basis.values import (
    CHARGE_SCALE_POWER,
    DIPOLE_SCALE_POWER,
    MoleculeFunctions,
    basis_values,
    density_values,
)
from densnet_cli.model.batch import collate


def _points(n=600, seed=0):
    return np.random.default_rng(seed).normal(scale=1.5, size=(n, 3))


def test_unscaled_functions_equal_pyscf_in_e3nn_order(ethanol):
    frame = ethanol[0]
    positions = units.angstrom_to_bohr(frame.positions)
    points = _points()
    mol = ethanol.basis.mole(frame.numbers, positions)
    reference = mol.eval_gto("GTOval_sph", points) @ ethanol.basis.transform(frame.numbers).T
    values = basis_values(MoleculeFunctions.build(ethanol.basis, frame.numbers),
                          torch.as_tensor(positions), torch.as_tensor(points))
    np.testing.assert_allclose(values.numpy(), reference, atol=1e-12)


@pytest.mark.parametrize("scale", [0.7, 1.4])
def test_scaled_functions_equal_pyscf_with_scaled_exponents(ethanol, scale):
    """Scaling every exponent of a (contracted) shell and renormalising is the dilation."""
    element = ethanol.basis["O"]
    shells = [[sh.l, *([a * scale, c] for a, c in zip(sh.exponents, sh.coefficients,
                                                       strict=True))]
              for sh in element.shells]
    mol = gto.M(atom="O 0 0 0", basis={"O": shells}, spin=None, unit="Bohr", verbose=0)
    points = _points(seed=1)
    reference = mol.eval_gto("GTOval_sph", points) @ element.pyscf_to_e3nn.T
    functions = MoleculeFunctions.build(ethanol.basis, [8])
    values = basis_values(functions, torch.zeros(1, 3, dtype=torch.float64),
                          torch.as_tensor(points),
                          torch.full((element.n_functions,), scale, dtype=torch.float64))
    np.testing.assert_allclose(values.numpy(), reference, atol=1e-11)


def test_moments_of_scaled_functions_follow_the_closed_form(ethanol):
    """∫φ^s = s^(−3/4)∫φ and ∫xφ^s = s^(−5/4)∫xφ, by quadrature on an atom-centred grid."""
    element = ethanol.basis["C"]
    mol = gto.M(atom="C 0 0 0", basis="sto-3g", spin=None, unit="Bohr", verbose=0)
    grids = dft.gen_grid.Grids(mol)
    grids.level = 5
    grids.build()
    rng = np.random.default_rng(2)
    scales = np.repeat(rng.uniform(0.7, 1.4, len(element.shells)),
                       np.bincount(element.function_shell))
    values = basis_values(MoleculeFunctions.build(ethanol.basis, [6]),
                          torch.zeros(1, 3, dtype=torch.float64),
                          torch.as_tensor(grids.coords), torch.as_tensor(scales)).numpy()
    w = grids.weights
    np.testing.assert_allclose(w @ values**2, 1.0, atol=2e-5)  # still normalised
    np.testing.assert_allclose(w @ values, element.charges * scales**CHARGE_SCALE_POWER,
                               atol=2e-6)
    np.testing.assert_allclose((w[:, None] * grids.coords).T @ values,
                               element.dipoles.T * scales**DIPOLE_SCALE_POWER, atol=2e-6)


def test_flexible_model_density_integrates_to_n_and_to_its_dipole(ethanol):
    """The flexible model's analytic N and dipole are those of its real-space density."""
    from tests.test_model import _model

    model = _model(ethanol, max_exponent_factor=1.5)
    frame = ethanol[10]
    out = model(collate(ethanol.basis, [(frame.numbers, frame.positions)]), forces=False)
    positions = units.angstrom_to_bohr(frame.positions)
    mol = ethanol.basis.mole(frame.numbers, positions)
    grids = dft.gen_grid.Grids(mol)
    grids.level = 4
    grids.build()
    with torch.no_grad():
        rho = density_values(MoleculeFunctions.build(ethanol.basis, frame.numbers),
                             torch.as_tensor(positions), torch.as_tensor(grids.coords),
                             out["coefficients"], out["exponent_scales"]).numpy()
    assert abs(grids.weights @ rho - 26.0) < 1e-4
    nuclear = frame.numbers @ positions
    dipole = units.dipole_au_to_e_angstrom(nuclear - (grids.weights * rho) @ grids.coords)
    np.testing.assert_allclose(dipole, out["dipole"][0].detach().numpy(), atol=1e-4)
