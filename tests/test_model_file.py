"""The model file round-trips and refuses damaged or foreign files clearly."""

import pytest
import torch

from densnet_cli.errors import InputError
from densnet_cli.model.batch import collate
from densnet_cli.model.densnet import DenSNet, ModelConfig
from densnet_cli.model.io import load_model, read_model_file, save_model

SMALL = ModelConfig(density_features=8, density_layers=1, energy_features=8, energy_layers=1,
                    radial_hidden=8, lmax_edge=2)


@pytest.fixture(scope="module")
def saved(ethanol, tmp_path_factory):
    torch.manual_seed(1)
    model = DenSNet(ethanol.basis, ethanol.sad, SMALL).double().eval()
    model.energy.reference_energy.copy_(torch.tensor([-13.0, -1030.0, -2040.0]))
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_model(model, path, extra={"training": {"data_sha256": ["abc"]}})
    return model, path


def test_round_trip_gives_identical_predictions(saved, ethanol):
    model, path = saved
    loaded, metadata = load_model(path)
    assert metadata["elements"] == ["H", "C", "O"]
    assert metadata["units"]["energy"] == "eV"
    assert metadata["training"] == {"data_sha256": ["abc"]}
    assert {"torch", "e3nn", "densnet"} <= set(metadata["versions"])
    frame = ethanol[0]
    batch = collate(ethanol.basis, [(frame.numbers, frame.positions)])
    a, b = model(batch), loaded(batch)
    for key in ("energy", "forces", "dipole", "coefficients"):
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_truncated_file_is_refused_clearly(saved, tmp_path):
    _, path = saved
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="not a valid DenSNet model"):
        read_model_file(broken)


def test_foreign_and_missing_files_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="is not a DenSNet model file"):
        read_model_file(tmp_path / "other.pt")
    with pytest.raises(InputError, match="does not exist"):
        read_model_file(tmp_path / "nope.pt")


def test_pickled_code_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pwned')",))

    torch.save({"format": "densnet-model", "format_version": 1, "metadata": "{}",
                "state_dict": {}, "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(InputError, match="not a valid DenSNet model"):
        read_model_file(tmp_path / "evil.pt")


def test_a_file_from_before_charge_flow_loads_with_the_fragment_projection(tmp_path, ethanol):
    """Config keys added later take the value that reproduces the old model: the shipped
    example model predates ``charge_flow`` and must keep the fragment-wide projection."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples/ethanol/model/ethanol_100.pt"
    metadata, _ = read_model_file(example)
    assert "charge_flow" not in metadata["config"]
    old, _ = load_model(example)
    assert old.density.flow is None
    torch.manual_seed(1)
    new = DenSNet(ethanol.basis, ethanol.sad, ModelConfig(**{**SMALL.as_dict(),
                                                             "charge_flow": True}))
    save_model(new, tmp_path / "flow.pt")
    loaded, metadata = load_model(tmp_path / "flow.pt")
    assert metadata["config"]["charge_flow"] is True
    assert loaded.density.flow is not None
