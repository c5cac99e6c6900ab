"""The DenSNet model (small, randomly initialised) obeys the physics suite."""

import math

import numpy as np
import pytest
import torch

from densnet_cli.model.densnet import DenSNet, ModelConfig
from tests.model_suite import ModelPhysicsSuite

SMALL = dict(density_features=8, density_layers=2, energy_features=8, energy_layers=1,
             radial_hidden=16, lmax_edge=2)


def _model(ds, **kwargs):
    torch.manual_seed(0)
    model = DenSNet(ds.basis, ds.sad, ModelConfig(**SMALL, **kwargs)).double().eval()
    # Random heads (a new model starts at Δ = 0) and non-trivial per-shell scales and
    # references, so that everything is exercised.
    with torch.no_grad():
        for head in model.density.heads.values():
            head.weight.normal_()
        if model.density.flexible:
            for head in model.density.exponent_heads.values():
                head.weight.normal_()
        if model.density.flow is not None:  # charges really flow between atoms
            model.density.flow.mlp[-1].weight.normal_()
    for s in model.density.symbols:
        for scale in (getattr(model.density, f"scale_{s}"),
                      getattr(model.energy, f"input_scale_{s}")):
            scale.copy_(torch.linspace(0.5, 1.5, len(scale)))
    model.energy.reference_energy.copy_(torch.tensor([-13.6, -1030.0, -2040.0]))
    return model


class TestDeltaModel(ModelPhysicsSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, ethanol):
        return _model(ethanol)


class TestNoDeltaModel(ModelPhysicsSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, ethanol):
        return _model(ethanol, delta=False)


class TestChargeFlowModel(ModelPhysicsSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, ethanol):
        return _model(ethanol, charge_flow=True)


def test_charge_flow_moves_electrons_between_atoms(ethanol):
    """Every atom of an untrained charge-flow model is neutral; random flows make charges."""
    from densnet_cli.model.batch import collate

    frame = ethanol[0]
    batch = collate(ethanol.basis, [(frame.numbers, frame.positions)])
    torch.manual_seed(0)
    fresh = DenSNet(ethanol.basis, ethanol.sad, ModelConfig(**SMALL, charge_flow=True))
    numbers = torch.as_tensor(frame.numbers, dtype=torch.float64)
    torch.testing.assert_close(fresh(batch, forces=False)["populations"], numbers)
    populations = _model(ethanol, charge_flow=True)(batch, forces=False)["populations"].detach()
    assert (populations - numbers).abs().max() > 0.05
    assert abs(float(populations.sum() - numbers.sum())) < 1e-10


class TestFlexibleModel(ModelPhysicsSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, ethanol):
        return _model(ethanol, max_exponent_factor=1.5)


def test_flexible_scales_are_bounded_and_start_at_one(ethanol):
    from densnet_cli.model.batch import collate

    frame = ethanol[0]
    batch = collate(ethanol.basis, [(frame.numbers, frame.positions)])
    torch.manual_seed(0)
    fresh = DenSNet(ethanol.basis, ethanol.sad, ModelConfig(**SMALL, max_exponent_factor=1.5))
    out = fresh(batch, forces=False)
    torch.testing.assert_close(out["exponent_scales"], torch.ones_like(out["coefficients"]))
    scales = _model(ethanol, max_exponent_factor=1.5)(batch, forces=False)["exponent_scales"]
    assert scales.min() >= 1 / 1.5 and scales.max() <= 1.5
    assert scales.std() > 0.05  # random heads really move the exponents


class TestRepulsionModel(ModelPhysicsSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, ethanol):
        return _model(ethanol, pair_repulsion=True)


def _zbl_by_hand(z1: int, z2: int, r: float, scale: float = 1.0) -> float:
    """ZBL from its textbook form (Ziegler, Biersack, Littmark 1985), eV, with the p = 6 envelope
    at ``scale`` × the sum of ASE's covalent radii, independent of densnet_cli.model.repulsion."""
    from ase.data import covalent_radii

    a = 0.8854 * 0.529177210903 / (z1**0.23 + z2**0.23)  # 0.8854 Bohr radii
    x = r / a
    phi = (0.18175 * math.exp(-3.1998 * x) + 0.50986 * math.exp(-0.94229 * x)
           + 0.28022 * math.exp(-0.4029 * x) + 0.02817 * math.exp(-0.20162 * x))
    u = r / (scale * (covalent_radii[z1] + covalent_radii[z2]))
    f = 1 - 28 * u**6 + 48 * u**7 - 21 * u**8 if u < 1 else 0.0
    return z1 * z2 * 14.399645 / r * phi * f


@pytest.mark.parametrize("scale", [1.0, 0.7])
@pytest.mark.parametrize("z1, z2", [(1, 8), (6, 6), (6, 16)])
def test_zbl_pairs_match_the_formula_and_vanish_smoothly(z1, z2, scale):
    from ase.data import covalent_radii

    from densnet_cli.model.repulsion import ZBLRepulsion

    zbl = ZBLRepulsion(cutoff=4.0, radius_scale=scale).double()
    r_max = scale * (covalent_radii[z1] + covalent_radii[z2])
    for r in (0.3, 0.6, 0.9 * r_max, 0.999 * r_max, r_max, 1.5):
        positions = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=torch.float64,
                                 requires_grad=True)
        e = zbl(torch.tensor([z1, z2]), positions, torch.zeros(2, dtype=torch.long),
                torch.tensor([0, 1]), torch.tensor([1, 0]), 1)
        assert e.item() == pytest.approx(_zbl_by_hand(z1, z2, r, scale), rel=1e-8, abs=1e-12)
        (grad,) = torch.autograd.grad(e.sum(), positions)
        if r >= r_max:
            assert e.item() == 0.0 and grad.abs().max() == 0.0
        elif r >= 0.999 * r_max:  # energy ∝ (1 − r/r_max)³ and force ∝ its square fade out
            bare = _zbl_by_hand(z1, z2, r, scale=1e9)  # the unswitched ZBL energy here
            assert abs(e.item()) < 1e-7 * bare and grad.abs().max() < 1e-3 * bare / r_max
    assert _zbl_by_hand(z1, z2, 0.3) > 10.0  # a wall of tens of eV at 0.3 Å


def test_repulsion_keeps_a_collapsing_bond_out(ethanol):
    """A random model may bind two nuclei; with the ZBL term a 0.4 Å O–H costs tens of eV."""
    from densnet_cli.model.batch import collate

    frame = ethanol[0]
    numbers = frame.numbers
    o = int(np.nonzero(numbers == 8)[0][0])
    h = int(np.argmin(np.where(numbers == 1, np.linalg.norm(
        frame.positions - frame.positions[o], axis=1), np.inf)))
    energies = {}
    for repulsion in (False, True):
        model = _model(ethanol, pair_repulsion=repulsion)
        for r in (0.4, 0.97):
            positions = frame.positions.copy()
            bond = positions[h] - positions[o]
            positions[h] = positions[o] + bond / np.linalg.norm(bond) * r
            batch = collate(ethanol.basis, [(numbers, positions)])
            energies[repulsion, r] = model(batch, forces=False)["energy"].item()
    wall_without = energies[False, 0.4] - energies[False, 0.97]
    wall_with = energies[True, 0.4] - energies[True, 0.97]
    assert wall_with - wall_without > 20.0  # the ZBL wall: ~50 eV for O–H at 0.4 Å
    assert wall_with > 20.0


def test_loading_weights_leaves_the_inputs_of_the_model_alone(ethanol):
    """Buffers are copies: load_state_dict must not write into ASE's covalent radii, the SAD
    prior or the basis (as torch.as_tensor buffers did: a float32-rounded model loaded once
    rounded every later model of the process, and the results of the next run moved by 1e-7)."""
    from ase.data import covalent_radii

    radii, sad = covalent_radii.copy(), {s: v.copy() for s, v in ethanol.sad.items()}
    charges = {s: e.charges.copy() for s, e in ethanol.basis.elements.items()}
    model = DenSNet(ethanol.basis, ethanol.sad, ModelConfig(**SMALL, pair_repulsion=True))
    state = {k: v + 0.25 if v.is_floating_point() else v for k, v in
             model.state_dict().items()}
    model.load_state_dict(state)
    assert float(model.repulsion.radii[6]) == pytest.approx(radii[6] + 0.25)
    np.testing.assert_array_equal(covalent_radii, radii)
    for s in sad:
        np.testing.assert_array_equal(ethanol.sad[s], sad[s])
        np.testing.assert_array_equal(ethanol.basis[s].charges, charges[s])


def test_a_large_exactly_built_molecule_has_no_self_edges():
    # cdist's matrix-product path (used above 25 atoms) left ~1e-7 on the diagonal of the
    # 5-ring chain (37 atoms): a self-edge of zero length, NaN energies and forces.
    from densnet_cli.model.batch import radius_graph
    from densnet_cli.systems.oligothiophene import build_chain

    chain = build_chain(5)
    positions = torch.tensor(chain.positions, dtype=torch.float64)
    src, dst = radius_graph(positions, torch.zeros(len(chain), dtype=torch.long), 4.0)
    assert len(src) > 0 and not bool((src == dst).any())
    d = (positions[src] - positions[dst]).norm(dim=1)
    assert float(d.min()) > 0.9
