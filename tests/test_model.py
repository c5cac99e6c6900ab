"""The DenSNet model (small, randomly initialised) obeys the physics suite."""

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
