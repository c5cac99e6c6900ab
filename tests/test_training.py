"""``densnet train`` on real labelled ethanol frames: learning, resume, torchrun, failures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from densnet_cli.model.io import load_model
from tests.conftest import run_cli, run_densnet

DATA = Path(__file__).resolve().parents[1] / "examples/ethanol/ethanol_100.h5"
TINY = ["--density-features", "8", "--density-layers", "1", "--energy-features", "8",
        "--energy-layers", "1", "--radial-hidden", "8", "--lmax-edge", "2", "--no-progress",
        "--val-fraction", "0.2"]


def _log(model: Path) -> list[dict]:
    return [json.loads(line) for line in model.with_name(model.name + ".log.jsonl")
            .read_text().splitlines()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def test_training_lowers_every_validation_loss(tmp_path):
    model = tmp_path / "m.pt"
    code, _, err = run_cli("train", DATA, "-o", model, *TINY, "--epochs-density", "6",
                             "--epochs-energy", "6", "--lr", "0.01")
    assert code == 0, err
    log = _log(model)
    density = [e["val"]["density"] for e in log if e["stage"] == "density"]
    forces = [e["val"]["forces"] for e in log if e["stage"] == "energy"]
    assert min(density) < 0.9 * density[0]
    assert min(forces) < 0.7 * forces[0]
    assert model.with_name("m.pt.curve.png").stat().st_size > 10_000
    assert not model.with_name("m.pt.ckpt").exists()
    _, metadata = load_model(model)
    training = metadata["training"]
    assert training["split"] == {"seed": 0, "n_train": 80, "n_val": 20}
    assert len(training["data"][0]["sha256"]) == 64
    assert "forces" in training["final_validation"]


def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path):
    args = [*TINY, "--epochs-density", "3", "--epochs-energy", "3", "--dtype", "float64"]
    reference = tmp_path / "ref.pt"
    assert run_densnet("train", DATA, "-o", reference, *args).returncode == 0

    model = tmp_path / "m.pt"
    log = tmp_path / "m.pt.log.jsonl"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("densnet")), "train", str(DATA),
                             "-o", str(model), *args], start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (not log.exists() or len(log.read_text().splitlines()) < 4) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not model.exists() and model.with_name("m.pt.ckpt").exists(), \
        "the kill must land mid-run for this test to mean anything"

    refused = run_densnet("train", DATA, "-o", model, *args)
    assert refused.returncode == 1 and "pass --resume" in refused.stderr
    resumed = run_densnet("train", DATA, "-o", model, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert [e["epoch"] for e in _log(model)] == [1, 2, 3, 1, 2, 3]
    a, b = _weights(reference), _weights(model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-12, rtol=0)


def test_two_gloo_processes_equal_one_process_with_twice_the_batch(tmp_path):
    args = [*TINY, "--epochs-density", "2", "--epochs-energy", "2", "--dtype", "float64"]
    single = tmp_path / "single.pt"
    assert run_densnet("train", DATA, "-o", single, *args, "--batch-size", "8").returncode == 0
    ddp = tmp_path / "ddp.pt"
    bindir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bindir / "torchrun"), "--nproc_per_node", "2", "--no-python",
         str(bindir / "densnet"), "train", str(DATA), "-o", str(ddp), *args,
         "--batch-size", "4"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = _weights(single), _weights(ddp)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-9, rtol=1e-9)


def test_diverging_training_stops_with_a_clear_message(tmp_path):
    code, _, err = run_cli("train", DATA, "-o", tmp_path / "m.pt", *TINY, "--epochs-density",
                           "2", "--epochs-energy", "0", "--lr", "1e30")
    assert code == 1
    assert "loss became" in err and "lower --lr" in err
    assert not (tmp_path / "m.pt").exists()


def test_yaml_config_fills_options_and_the_command_line_wins(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("epochs_density: 1\nepochs-energy: 1\nseed: 5\nbatch_size: 16\n")
    code, _, err = run_cli("train", DATA, "-o", tmp_path / "m.pt", *TINY, "--config", config,
                           "--seed", "7")
    assert code == 0, err
    stored = load_model(tmp_path / "m.pt")[1]["training"]["config"]
    assert (stored["epochs_density"], stored["epochs_energy"]) == (1, 1)
    assert (stored["seed"], stored["batch_size"]) == (7, 16)
    config.write_text("epochs_densty: 1\n")
    code, _, err = run_cli("train", DATA, "-o", tmp_path / "x.pt", "--config", config)
    assert code == 1 and "unknown training option(s) epochs_densty" in err


def test_refine_stage_lowers_the_real_space_error_and_learns_exponents(tmp_path):
    """Flexible basis: the refine stage fits the true DFT density and moves the exponents."""
    import ase.io

    from densnet_cli.model.batch import collate
    from tests.conftest import FAST, WATER, jiggled

    ase.io.write(tmp_path / "water.xyz", jiggled(WATER, 10, amplitude=0.1), format="extxyz")
    data = tmp_path / "water.h5"
    assert run_cli("fit-density", tmp_path / "water.xyz", "-o", data, *FAST)[0] == 0
    model = tmp_path / "m.pt"
    code, _, err = run_cli("train", data, "-o", model, *TINY, "--epochs-density", "3",
                           "--epochs-refine", "8", "--epochs-energy", "2", "--lr", "0.01",
                           "--max-exponent-factor", "1.5", "--grid-level", "0",
                           "--batch-size", "2")
    assert code == 0, err
    log = _log(model)
    grid = [e["val"]["grid"] for e in log if e["stage"] == "refine"]
    assert min(grid) < 0.9 * grid[0]
    net, metadata = load_model(model)
    assert metadata["config"]["max_exponent_factor"] == 1.5
    frame = ase.io.read(tmp_path / "water.xyz", 0)
    out = net(collate(net.basis, [(frame.numbers, frame.positions)]), forces=False)
    assert (out["exponent_scales"] - 1).abs().max() > 1e-3


def test_refine_stage_needs_density_matrices_and_flexible_needs_refine(tmp_path):
    code, _, err = run_cli("train", DATA, "-o", tmp_path / "m.pt", *TINY, "--epochs-refine", "2")
    assert code == 1 and "stores no DFT density matrices" in err
    code, _, err = run_cli("train", DATA, "-o", tmp_path / "m.pt", *TINY,
                           "--max-exponent-factor", "1.5")
    assert code == 1 and "set epochs_refine > 0" in err


def test_reference_energies_are_refitted_so_no_composition_keeps_an_offset(tmp_path):
    """Water and methane in one training set: after a short run the model's mean energy error
    over each molecule's training frames is zero (the per-element reference energies are
    re-fitted by least squares after the energy stage), and the shift that did it is recorded.
    """
    import ase.io
    import numpy as np
    from ase.build import molecule

    from densnet_cli.evaluation.predict import Predictor
    from densnet_cli.training.data import load_training_data, split
    from tests.conftest import FAST, WATER, jiggled

    files = []
    for name, atoms in (("water", WATER), ("methane", molecule("CH4"))):
        ase.io.write(tmp_path / f"{name}.xyz", jiggled(atoms, 10, amplitude=0.08),
                     format="extxyz")
        files.append(tmp_path / f"{name}.h5")
        code, _, err = run_cli("fit-density", tmp_path / f"{name}.xyz", "-o", files[-1], *FAST)
        assert code == 0, err
    model = tmp_path / "m.pt"
    code, _, err = run_cli("train", *files, "-o", model, *TINY, "--epochs-density", "2",
                           "--epochs-energy", "3", "--dtype", "float64", "--progress")
    assert code == 0, err
    assert "reference energies re-fitted" in err
    refit = load_model(model)[1]["training"]["reference_energy_refit_eV"]["energy"]
    assert set(refit) == {"H", "C", "O"} and max(abs(v) for v in refit.values()) > 1e-3

    frames = load_training_data(files).frames
    train, _ = split(len(frames), 0.2, 0)
    predictor = Predictor(model)
    errors = {"water": [], "methane": []}
    for i in train:
        f = frames[i]
        error = predictor.predict_many([(f.numbers, f.positions)])[0]["energy"] - f.energy
        errors["methane" if 6 in f.numbers else "water"].append(error)
    for name, e in errors.items():
        assert len(e) >= 6
        assert abs(np.mean(e)) < 1e-6, (name, np.mean(e))  # eV per molecule


def test_init_density_takes_the_density_network_and_trains_only_the_energy_side(tmp_path):
    """``--init-density`` with ``--epochs-density 0``: an energy-side ablation on a fixed density
    network.  The density weights come over bit for bit, the energy network trains from fresh
    weights, the repulsion setting is this run's; another density architecture is refused."""
    first = tmp_path / "first.pt"
    assert run_densnet("train", DATA, "-o", first, *TINY, "--epochs-density", "3",
                       "--epochs-energy", "1").returncode == 0
    second = tmp_path / "second.pt"
    code, _, err = run_cli("train", DATA, "-o", second, *TINY, "--init-density", first,
                           "--epochs-density", "0", "--epochs-energy", "2",
                           "--repulsion-radius-scale", "0.7")
    assert code == 0, err
    a, b = _weights(first), _weights(second)
    density = [k for k in a if k.startswith("density.")]
    assert density and all(torch.equal(a[k], b[k]) for k in density)
    assert not all(torch.equal(a[k], b[k]) for k in a if k.startswith("energy."))
    assert load_model(second)[1]["config"]["repulsion_radius_scale"] == 0.7
    assert [e["stage"] for e in _log(second)] == ["energy", "energy"]

    code, _, err = run_cli("train", DATA, "-o", tmp_path / "third.pt",
                           *[x if x != "8" else "12" for x in TINY], "--init-density", first,
                           "--epochs-density", "0", "--epochs-energy", "1")
    assert code == 1 and "differs in density_features (8 vs 12 here)" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli("train", DATA, "-o", tmp_path / "m.pt", *TINY,
                           "--repulsion-radius-scale", "1.5")
    assert code == 1 and "repulsion_radius_scale must be in (0, 1]" in err
