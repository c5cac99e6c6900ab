"""``densnet evaluate`` and the prediction API: metrics, density errors, cube files."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io.cube import read_cube_data

from densnet_cli import keys, units
from densnet_cli.evaluation.density import coulomb_error, l1_error_percent
from densnet_cli.evaluation.predict import Predictor
from densnet_cli.model.densnet import DenSNet, ModelConfig
from densnet_cli.model.io import save_model
from densnet_cli.training.config import TrainConfig
from tests.conftest import run_cli

SMALL = ModelConfig(density_features=8, density_layers=1, energy_features=8, energy_layers=1,
                    radial_hidden=8, lmax_edge=2)


@pytest.fixture(scope="module")
def model_path(ethanol, tmp_path_factory):
    torch.manual_seed(2)
    model = DenSNet(ethanol.basis, ethanol.sad, SMALL)
    with torch.no_grad():
        for head in model.density.heads.values():
            head.weight.normal_(std=0.1)
    path = tmp_path_factory.mktemp("model") / "m.pt"
    save_model(model, path)
    return path


def test_report_metrics_match_the_predictions(model_path, ethanol, tmp_path):
    report = tmp_path / "r.json"
    code, _, err = run_cli("evaluate", model_path, ethanol.path, "--report", report,
                             "--plot", tmp_path / "p.png", "--density-frames", "3",
                             "--no-progress")
    assert code == 0, err
    r = json.loads(report.read_text())
    assert r["n_frames"] == 100 and r["density_l1_frames"] == 3
    predictor = Predictor(model_path)
    frames = list(ethanol)
    preds = list(predictor.predict_frames(frames))
    errors = [p["energy"] - f.energy for p, f in zip(preds, frames, strict=True)]
    energy = np.mean(np.abs(errors))
    forces = np.mean(np.abs(np.concatenate([p["forces"] - f.forces
                                            for p, f in zip(preds, frames, strict=True)])))
    assert r["energy_mae_meV"] == pytest.approx(1e3 * energy, rel=1e-9)
    assert r["energy_mean_error_meV"] == pytest.approx(1e3 * np.mean(errors), rel=1e-9)
    assert r["force_mae_meV_per_A"] == pytest.approx(1e3 * forces, rel=1e-9)
    assert r["density_l1_percent"] > 0 and r["dipole_mae_D"] > 0
    assert r["energy_trained"] is True  # a file without a training record counts as trained
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_a_density_only_model_reports_no_energies(ethanol, tmp_path):
    """No energy stage ran: the untrained energy network's numbers must not be reported."""
    torch.manual_seed(2)
    path = tmp_path / "density_only.pt"
    training = TrainConfig(epochs_energy=0, epochs_joint=0).as_dict()
    save_model(DenSNet(ethanol.basis, ethanol.sad, SMALL), path,
               extra={"training": {"config": training}})
    report = tmp_path / "r.json"
    code, out, err = run_cli("evaluate", path, ethanol.path, "--report", report, "--plot",
                             tmp_path / "p.png", "--density-frames", "2", "--no-progress")
    assert code == 0, err
    r = json.loads(report.read_text())
    assert r["energy_trained"] is False
    assert r["energy_mae_meV"] is None and r["force_mae_meV_per_A"] is None
    assert r["dipole_mae_D"] > 0 and r["density_l1_percent"] > 0
    assert "density-only model" in out and "energy_mae" not in out
    assert (tmp_path / "p.png").stat().st_size > 5_000


def test_density_errors_vanish_for_the_reference_and_obey_the_triangle_inequality(ethanol):
    frame = ethanol[10]
    args = (ethanol.basis, frame.numbers, frame.positions)
    assert l1_error_percent(*args, frame.coefficients, frame.coefficients) == 0.0
    assert coulomb_error(*args, frame.coefficients, frame.coefficients) == 0.0
    # |L1(SAD, fit) − L1(SAD, DFT)| ≤ L1(fit, DFT): the grid integral of the stored SAD error
    # against the true density and this module's error against the fit must agree to the
    # fitting error.
    sad = ethanol.sad_coefficients(frame.numbers)
    sad_vs_fit = l1_error_percent(*args, sad, frame.coefficients, level=4)
    sad_vs_dft = ethanol.per_frame(keys.SAD_L1_PERCENT)[10]
    fit_vs_dft = ethanol.per_frame(keys.FIT_L1_PERCENT)[10]
    assert abs(sad_vs_fit - sad_vs_dft) <= fit_vs_dft + 1e-3
    assert coulomb_error(*args, sad, frame.coefficients) > 0


def test_cube_file_holds_the_electrons(model_path, ethanol, tmp_path):
    frame = ethanol[0]
    water_like = Atoms(numbers=frame.numbers[[2, 8]], positions=frame.positions[[2, 8]])
    predictor = Predictor(model_path)
    predictor.write_cube(water_like, tmp_path / "rho.cube", spacing=0.08)
    data, atoms = read_cube_data(str(tmp_path / "rho.cube"))
    assert list(atoms.numbers) == [8, 1]
    voxel_bohr3 = abs(np.linalg.det(np.asarray(atoms.cell) / np.array(data.shape)[:, None]))
    voxel_bohr3 *= units.ANGSTROM_TO_BOHR**3
    n = data.sum() * voxel_bohr3
    assert n == pytest.approx(9.0, rel=0.02)  # OH: 8 + 1 electrons, exact by construction


def test_evaluate_refuses_a_dataset_with_unknown_elements(model_path, tmp_path):
    from tests.conftest import FAST

    xyz = tmp_path / "hf.xyz"
    ase.io.write(xyz, Atoms("HF", positions=[[0, 0, 0], [0, 0, 0.92]]), format="extxyz")
    code, _, err = run_cli("fit-density", xyz, "-o", tmp_path / "hf.h5", *FAST)
    assert code == 0, err
    code, _, err = run_cli("evaluate", model_path, tmp_path / "hf.h5", "--report",
                           tmp_path / "r.json")
    assert code == 1 and "elements ['F'] the model lacks" in err
    assert not (tmp_path / "r.json").exists()


def test_l1_against_the_stored_dft_density_is_the_labelled_fit_error(water_frames, tmp_path):
    """Stored density matrix, fresh DFT and the fit diagnostics measure the same L1."""
    from densnet_cli import keys
    from densnet_cli.data.hdf5 import DensityDataset
    from densnet_cli.evaluation.density import l1_error_vs_dft_percent
    from tests.conftest import FAST, run_cli

    assert run_cli("fit-density", water_frames, "-o", tmp_path / "w.h5", *FAST)[0] == 0
    ds = DensityDataset(tmp_path / "w.h5")
    frame = ds[1]
    args = (ds.basis, frame.numbers, frame.positions, frame.coefficients, ds.metadata["settings"])
    stored = l1_error_vs_dft_percent(*args, density_matrix=ds.density_matrix(1))
    fresh = l1_error_vs_dft_percent(*args)
    assert abs(stored - ds.per_frame(keys.FIT_L1_PERCENT)[1]) < 1e-6
    assert abs(fresh - stored) < 1e-4
