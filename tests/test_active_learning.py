"""``densnet active-learn``: selection, committee statistics, resumable MD, and the whole loop on
water at a minimal basis (2 tiny models, 2 rounds)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest

from densnet_cli.active.committee import Committee, committee_statistics
from densnet_cli.active.exploration import (
    CHECKPOINT,
    ExplorationSettings,
    Trajectory,
    explore,
)
from densnet_cli.active.loop import labelling_settings
from densnet_cli.active.selection import select_frames
from densnet_cli.data.hdf5 import DensityDataset
from densnet_cli.model.io import load_model
from tests.conftest import FAST, WATER, jiggled, run_cli

TINY = ["--density-features", "8", "--density-layers", "1", "--energy-features", "8",
        "--energy-layers", "1", "--radial-hidden", "8", "--lmax-edge", "2", "--no-progress",
        "--val-fraction", "0.2", "--batch-size", "4", "--epochs-density", "3",
        "--epochs-energy", "6", "--threads", "1"]
MIN_SEPARATION_FS = 5.0


def loop_args(select: int = 3) -> list[str]:
    """The loop of the end-to-end tests: committee of 2, 2 replicas × 60 steps, 2 rounds."""
    return ["--committee", "2", "--replicas", "2", "--md-steps", "60", "--stride", "4",
            "--select", str(select), "--min-separation", str(MIN_SEPARATION_FS),
            "--threshold", "0.01", "--cap-factor", "1000", "--max-rounds", "2", *TINY]


@pytest.fixture(autouse=True, scope="module")
def _torch_threads():
    """The loop runs in-process with --threads 1; give the other test modules theirs back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --- selection ------------------------------------------------------------------------------

def test_selection_takes_the_largest_disagreement_at_least_the_separation_apart():
    replica = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    time_fs = np.array([10.0, 20.0, 60.0, 70.0, 10.0, 20.0, 60.0, 70.0])
    u = np.array([0.9, 1.0, 0.5, 0.3, 0.8, np.nan, 0.7, 0.75])
    chosen = select_frames(u, replica, time_fs, n_select=3, min_separation_fs=50.0)
    # 1.0 (r0, 20 fs); 0.9 is 10 fs from it; 0.8 (r1, 10 fs); 0.75 is 60 fs from it
    assert chosen.tolist() == [1, 4, 7]
    # no separation: simply the largest three; NaN is never taken
    assert select_frames(u, replica, time_fs, 3, 0.0).tolist() == [1, 0, 4]
    assert select_frames(u, replica, time_fs, 20, 0.0).tolist() == [1, 0, 4, 7, 6, 2, 3]
    # the separation is within a replica only, and exactly 50 fs apart is allowed
    assert select_frames(np.array([1.0, 0.9, 0.8]), np.array([0, 1, 0]),
                         np.array([0.0, 0.0, 50.0]), 3, 50.0).tolist() == [0, 1, 2]


# --- committee statistics -------------------------------------------------------------------

def test_identical_members_disagree_exactly_zero():
    rng = np.random.default_rng(0)
    e, f, d = rng.normal(size=4), rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 3))
    p = committee_statistics(np.stack([e] * 3), np.stack([f] * 3), np.stack([d] * 3))
    assert np.all(p.force_disagreement == 0.0)
    assert np.all(p.energy_std_per_atom == 0.0) and np.all(p.dipole_std == 0.0)
    np.testing.assert_allclose(p.forces, f, rtol=1e-15)


def test_two_members_disagree_by_half_their_difference():
    rng = np.random.default_rng(1)
    e, f, d = rng.normal(size=(2, 4)), rng.normal(size=(2, 4, 5, 3)), rng.normal(size=(2, 4, 3))
    p = committee_statistics(e, f, d)
    # population std of two values: |a − b| / 2 per component
    np.testing.assert_allclose(p.force_disagreement,
                               np.linalg.norm(f[0] - f[1], axis=-1).max(axis=-1) / 2, rtol=1e-14)
    np.testing.assert_allclose(p.energy_std_per_atom, np.abs(e[0] - e[1]) / 2 / 5, rtol=1e-14)
    np.testing.assert_allclose(p.dipole_std, np.linalg.norm(d[0] - d[1], axis=-1) / 2,
                               rtol=1e-14)
    np.testing.assert_allclose(p.energy, e.mean(axis=0), rtol=1e-14)
    # and it is numpy's population std for more members
    k = rng.normal(size=(5, 3, 2, 3))
    q = committee_statistics(k[:, :, 0, 0], k, k[:, :, 0])
    np.testing.assert_allclose(q.force_disagreement,
                               np.sqrt((k.std(axis=0) ** 2).sum(-1)).max(-1), rtol=1e-12)


# --- exploration with a synthetic committee -------------------------------------------------

SPRINGS = (np.array([8.0, 8.0, 8.0]), np.array([6.0, 12.0, 12.0]))  # eV/Å² per atom, 2 members


class Springs:
    """Two 'members': every atom tethered to its start with member-specific springs."""

    def __init__(self, centre: np.ndarray, fail_at: int | None = None):
        self.centre, self.calls, self.fail_at = centre, 0, fail_at

    def __call__(self, positions: np.ndarray):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        x = positions - self.centre
        forces = np.stack([-k[None, :, None] * x for k in SPRINGS])
        energies = np.stack([0.5 * np.einsum("i,bij,bij->b", k, x, x) for k in SPRINGS])
        return committee_statistics(energies, forces, np.zeros((2, len(positions), 3)))


def _water_starts(n: int) -> np.ndarray:
    return np.stack([a.positions for a in jiggled(WATER, n, amplitude=0.02, seed=3)])


def _log(message: str) -> None:
    pass


def test_md_resumed_from_its_checkpoint_equals_the_uninterrupted_run(tmp_path):
    starts = _water_starts(3)
    settings = ExplorationSettings(replicas=3, steps=90, stride=3, temperature_k=600.0,
                                   max_disagreement=0.3, seed=(4, 0))
    whole = explore(Springs(WATER.positions), WATER.numbers, starts, settings, tmp_path / "a",
                    {}, _log, checkpoint_every=10)
    with pytest.raises(KeyboardInterrupt):
        explore(Springs(WATER.positions, fail_at=50), WATER.numbers, starts, settings,
                tmp_path / "b", {}, _log, checkpoint_every=10)
    assert (tmp_path / "b" / CHECKPOINT).exists()
    resumed = explore(Springs(WATER.positions), WATER.numbers, starts, settings, tmp_path / "b",
                      {}, _log, checkpoint_every=10)
    assert not (tmp_path / "b" / CHECKPOINT).exists()
    for name in ("replica", "step", "positions", "force_disagreement", "stop_step"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name))
    # the stiffer-member disagreement grows with the amplitude: some replica hit the cap, its
    # last frame is the one it stopped on, and nothing of it was stored after that
    stopped = np.flatnonzero(whole.stop_step >= 0)
    assert stopped.size and str(whole.stop_reason[stopped[0]]).startswith("force disagreement")
    for b in stopped:
        mine = whole.replica == b
        assert whole.step[mine].max() == whole.stop_step[b] and whole.at_stop[mine][-1]
        assert whole.force_disagreement[mine][-1] > settings.max_disagreement
    below = ~whole.at_stop
    assert np.all(whole.force_disagreement[below] <= settings.max_disagreement)
    assert np.all(whole.step[below] % settings.stride == 0)
    assert Trajectory.load(tmp_path / "a" / "trajectory.npz").identity == whole.identity


def test_md_stops_a_replica_whose_atoms_collide(tmp_path):
    starts = _water_starts(2)
    starts[1, 1] = starts[1, 0] + [0.0, 0.0, 0.35]  # O–H 0.35 Å: below 0.5 × (0.66 + 0.31)
    settings = ExplorationSettings(replicas=2, steps=8, stride=2, max_disagreement=1e9,
                                   seed=(0,))
    t = explore(Springs(WATER.positions), WATER.numbers, starts, settings, tmp_path, {}, _log)
    assert t.stop_step.tolist() == [-1, 1] and "atoms 0 and 1" in str(t.stop_reason[1])
    assert set(t.replica.tolist()) == {0}  # a colliding geometry is never a candidate


# --- the loop end to end --------------------------------------------------------------------

@pytest.fixture(scope="module")
def initial(tmp_path_factory) -> Path:
    """6 displaced water molecules labelled at PBE/STO-3G (grid level 1)."""
    d = tmp_path_factory.mktemp("initial")
    ase.io.write(d / "water.xyz", jiggled(WATER, 6, amplitude=0.08), format="extxyz")
    code, _, err = run_cli("fit-density", d / "water.xyz", "-o", d / "water.h5", *FAST)
    assert code == 0, err
    return d / "water.h5"


@pytest.fixture(scope="module")
def loop(initial, tmp_path_factory) -> Path:
    """Two rounds of the loop (committee of 2 tiny models), run once for the tests below."""
    work = tmp_path_factory.mktemp("loop") / "work"
    code, out, err = run_cli("active-learn", initial, "--work", work, *loop_args())
    assert code == 0, err
    assert "stopped after 2 rounds" in out
    return work


def _files(work: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(work)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(work.rglob("*")) if p.is_file()}


def test_every_round_leaves_its_files_and_the_report_covers_both(loop):
    for r in ("round_000", "round_001"):
        for name in ("models/member_0.pt", "models/member_1.pt", "md/trajectory.npz",
                     "selected.xyz", "labelled.h5", "stats.json"):
            assert (loop / r / name).is_file(), f"{r}/{name}"
        assert not (loop / r / "md" / CHECKPOINT).exists()
        assert not list((loop / r / "models").glob("*.ckpt"))
    report = json.loads((loop / "report.json").read_text())
    assert [s["round"] for s in report["rounds"]] == [0, 1] and report["status"] == "max-rounds"
    for s in report["rounds"]:
        t = s["true_errors"]
        assert t["n_frames"] == s["labelled"] == 3
        for key in ("energy_mae_meV_per_atom", "force_mae_meV_per_A", "dipole_mae_D"):
            assert np.isfinite(t[key]) and t[key] > 0
        f = s["md"]["force_disagreement_eV_per_A"]
        assert 0 < f["mean"] <= f["p95"] <= f["max"]
    table = (loop / "report.md").read_text()
    assert table.count("\n| 0 |") == 1 and table.count("\n| 1 |") == 1
    assert "round_001/models/member_0.pt" in table and str(loop) not in table  # relocatable
    assert (loop / "report.png").stat().st_size > 10_000


def test_the_training_set_grows_by_the_labelled_frames(loop, initial):
    first, second = (json.loads((loop / r / "stats.json").read_text())
                     for r in ("round_000", "round_001"))
    assert first["n_training_frames"] == 6
    assert second["n_training_frames"] == 6 + first["labelled"] == 9
    _, metadata = load_model(loop / "round_001" / "models" / "member_1.pt")
    training = metadata["training"]
    assert [Path(d["path"]).name for d in training["data"]] == ["water.h5", "labelled.h5"]
    assert training["split"]["n_train"] + training["split"]["n_val"] == 9
    assert training["config"]["seed"] == 1  # member k trains with seed --seed + k
    # the new frames are labelled at the initial dataset's level of theory
    assert (DensityDataset(loop / "round_000" / "labelled.h5").metadata["settings"]
            == DensityDataset(initial).metadata["settings"])


def test_the_labelled_frames_are_those_of_largest_disagreement(loop):
    for r in ("round_000", "round_001"):
        t = Trajectory.load(loop / r / "md" / "trajectory.npz")
        selected = ase.io.read(loop / r / "selected.xyz", ":")
        picked = [a.info["trajectory_frame"] for a in selected]
        labelled = DensityDataset(loop / r / "labelled.h5")
        assert sorted(f.source_index for f in labelled) == list(range(len(selected)))
        for f in labelled:
            np.testing.assert_allclose(f.positions, t.positions[picked[f.source_index]],
                                       atol=1e-7)
        u = t.force_disagreement
        assert len(picked) == 3 and len(u) > 3
        # Greedy optimality: a frame left out either disagrees less than every pick, or is
        # within the minimum separation of a pick of its replica that disagrees at least as much.
        for i in set(range(len(u))) - set(picked):
            shadowed = any(t.replica[j] == t.replica[i] and u[j] >= u[i]
                           and abs(t.time_fs[j] - t.time_fs[i]) < MIN_SEPARATION_FS
                           for j in picked)
            assert shadowed or u[i] <= min(u[picked]), (r, i)


def test_a_rerun_does_nothing_and_a_lost_stats_file_is_rebuilt_alone(loop, initial, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(loop, work)
    before = _files(work)
    code, _, err = run_cli("active-learn", initial, "--work", work, *loop_args())
    assert code == 0, err
    assert _files(work) == before
    assert err.count("already done") == 2

    stats = work / "round_001" / "stats.json"
    old = json.loads(stats.read_text())
    stats.unlink()
    code, _, err = run_cli("active-learn", initial, "--work", work, *loop_args())
    assert code == 0, err
    after = _files(work)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {"round_001/stats.json", "report.json", "report.md", "report.png"}
    new = json.loads(stats.read_text())
    for key in ("md", "true_errors", "labelled", "n_training_frames"):
        assert new[key] == old[key]


def test_a_lost_report_is_rebuilt_with_every_round(loop, initial, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(loop, work)
    before = {name: (work / name).read_text() for name in ("report.json", "report.md")}
    for name in ("report.json", "report.md", "report.png"):
        (work / name).unlink()
    code, _, err = run_cli("active-learn", initial, "--work", work, *loop_args())
    assert code == 0, err
    assert (work / "report.json").read_text() == before["report.json"]
    table = (work / "report.md").read_text().split("Final committee")[0]
    assert table == before["report.md"].split("Final committee")[0]  # paths: the copy's
    assert (work / "report.png").is_file()


def test_frames_whose_scf_fails_are_skipped_and_reported(loop, initial, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(loop, work)
    for name in ("labelled.h5", "stats.json"):
        (work / "round_001" / name).unlink()
    # --max-cycle only affects labelling, so it may change between runs; 1 cycle never converges
    code, _, err = run_cli("active-learn", initial, "--work", work, *loop_args(),
                           "--max-cycle", "1")
    assert code == 0, err
    assert "3 of 3 frames did not converge and are skipped" in err
    stats = json.loads((work / "round_001" / "stats.json").read_text())
    assert stats["labelled"] == 0 and [f["frame"] for f in stats["failed"]] == [0, 1, 2]
    assert stats["true_errors"] == {"n_frames": 0}
    assert "| 1 | 9 |" in (work / "report.md").read_text()
    assert not (work / "round_001" / "labelled.h5.parts").exists()


def test_a_rerun_with_other_settings_is_refused(loop, initial, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(loop, work)
    code, _, err = run_cli("active-learn", initial, "--work", work, *loop_args(select=4))
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("Error:") and "different loop.select" in err
    # what only decides when to stop may change: the finished rounds stay valid
    code, _, err = run_cli("active-learn", initial, "--work", work, *loop_args(), "--stop-on",
                           "max", "--no-progress")
    assert code == 0, err


def test_user_mistakes_are_one_line_errors(initial, tmp_path):
    cases = [
        (["missing.h5"], "initial dataset missing.h5 does not exist"),
        ([initial, "--basis", "def2-SVP"], "--basis def2-SVP differs from the initial dataset's"),
        ([initial, "--dft-grid-level", "3"], "--dft-grid-level 3 differs"),
        ([initial, "--committee", "1"], "--committee must be at least 2"),
        ([initial, "--threshold", "-1"], "--threshold must be > 0"),
    ]
    for args, message in cases:
        code, _, err = run_cli("active-learn", *args, "--work", tmp_path / "w", "--no-progress")
        assert code == 1, (args, err)
        assert err.startswith("Error:") and message in err and err.count("\n") == 1, err
    # the same level, given explicitly (in any case), is accepted
    settings = labelling_settings([initial], {"basis": "STO-3G", "grid_level": 1, "xc": "pbe"})
    assert settings == DensityDataset(initial).metadata["settings"]


def test_committee_of_one_model_twice_has_no_disagreement(loop):
    model = loop / "round_000" / "models" / "member_0.pt"
    committee = Committee([model, model], device="cpu")
    positions = np.stack([a.positions for a in jiggled(WATER, 3, seed=5)])
    p = committee.evaluator(WATER.numbers)(positions)
    assert np.all(p.force_disagreement == 0.0) and np.all(p.energy_std_per_atom == 0.0)
    two = Committee([model, loop / "round_000" / "models" / "member_1.pt"], device="cpu")
    q = two(WATER.numbers, positions)
    a, b = (m(WATER.numbers, positions) for m in two.members)
    np.testing.assert_allclose(q.force_disagreement,
                               np.linalg.norm(a.forces - b.forces, axis=-1).max(-1) / 2)


# --- kill -9 at every stage, then resume --------------------------------------------------------

def _killed_when(args: list[str], ready, timeout: float = 300.0) -> bool:
    """Start ``densnet`` in a subprocess and SIGKILL it once ``ready()``; whether it was killed."""
    exe = Path(sys.executable).with_name("densnet")
    proc = subprocess.Popen([str(exe), *map(str, args)], start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_a_run_killed_in_every_stage_resumes_to_the_uninterrupted_result(initial, tmp_path):
    args = ["--committee", "2", "--replicas", "2", "--md-steps", "300", "--stride", "10",
            "--select", "3", "--min-separation", "20", "--threshold", "0.01", "--cap-factor",
            "1000", "--max-rounds", "2", *TINY, "--dtype", "float64"]
    reference = tmp_path / "reference"
    code, _, err = run_cli("active-learn", initial, "--work", reference, *args)
    assert code == 0, err

    work = tmp_path / "work"
    r0 = work / "round_000"
    stages = {  # a file that exists only while the stage is unfinished
        "training": lambda: any((r0 / "models").glob("member_1.pt.ckpt")),
        "MD": lambda: (r0 / "md" / CHECKPOINT).exists(),
        "labelling": lambda: any((r0 / "labelled.h5.parts").glob("frame_*.npz")),
        "training of round 1": lambda: any((work / "round_001" / "models").glob("*.ckpt")),
    }
    for stage, ready in stages.items():
        assert _killed_when(["active-learn", initial, "--work", work, *args], ready), stage
        assert ready(), f"the kill in {stage} must leave that stage unfinished"
    code, _, err = run_cli("active-learn", initial, "--work", work, *args)
    assert code == 0, err
    for r in ("round_000", "round_001"):
        a, b = (json.loads((w / r / "stats.json").read_text()) for w in (reference, work))
        for key in ("md", "true_errors", "n_training_frames", "labelled"):
            assert a[key] == b[key], (r, key)
