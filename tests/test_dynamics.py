"""Replica MD (densnet_cli.dynamics): integrators against analytic harmonic results, resumption,
and energy conservation with a real trained model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
import pytest

from densnet_cli.calculator import ModelEvaluator
from densnet_cli.dynamics.replicas import (
    FS,
    Evaluation,
    ReplicaDynamics,
    maxwell_boltzmann,
    temperature,
)
from densnet_cli.dynamics.run import ReplicaRunSettings, final_state, run_replicas
from densnet_cli.units import BOLTZMANN_EV_PER_K

ROOT = Path(__file__).resolve().parents[1]
K_SPRING = 5.0  # eV/Å², every atom tethered to the origin
MASSES = np.array([1.0, 12.0, 16.0])


def harmonic(positions: np.ndarray) -> Evaluation:
    """Independent isotropic oscillators; the 'dipole' is a fixed-charge sum."""
    energy = 0.5 * K_SPRING * np.einsum("bij,bij->b", positions, positions)
    charges = np.array([0.3, -0.1, -0.2])
    return Evaluation(energy, -K_SPRING * positions, np.einsum("i,bij->bj", charges, positions))


def test_velocity_verlet_follows_the_analytic_oscillator():
    x0 = np.array([[[0.1, 0.0, 0.0], [0.0, -0.05, 0.0], [0.0, 0.0, 0.02]]])
    md = ReplicaDynamics(harmonic, MASSES, x0, np.zeros_like(x0), timestep_fs=0.1)
    for _ in range(500):
        md.step()
    # Velocity Verlet started at rest is exactly x0 cos(ω' t), ω' = (2/Δt) asin(ωΔt/2).
    dt = 0.1 * FS
    omega = 2.0 / dt * np.arcsin(np.sqrt(K_SPRING / MASSES) * dt / 2.0)
    exact = x0 * np.cos(omega * md.time_fs * FS)[None, :, None]
    assert np.abs(md.positions - exact).max() < 1e-10
    # the shadow Hamiltonian: the total is exact to O((ωΔt)²) ≈ 5e-4 here
    assert abs(md.total[0] - harmonic(x0).energy[0]) < 1e-3 * harmonic(x0).energy[0]


def test_nve_conserves_energy_to_second_order_in_the_time_step():
    rng = np.random.default_rng(0)
    x0 = 0.05 * rng.standard_normal((4, 3, 3))
    v0 = maxwell_boltzmann(MASSES, 300.0, 4, rng)
    spreads = []
    for dt in (0.5, 0.25):
        md = ReplicaDynamics(harmonic, MASSES, x0, v0, timestep_fs=dt)
        totals = [md.total.copy()]
        for _ in range(round(200 / dt)):
            md.step()
            totals.append(md.total.copy())
        spreads.append(np.ptp(np.array(totals), axis=0).max())
    assert spreads[0] / spreads[1] == pytest.approx(4.0, rel=0.05)


def test_langevin_holds_the_target_temperature():
    rng = np.random.default_rng(1)
    n_rep = 64
    x0 = np.zeros((n_rep, 3, 3))
    md = ReplicaDynamics(harmonic, MASSES, x0, maxwell_boltzmann(MASSES, 50.0, n_rep, rng),
                         timestep_fs=0.5, temperature_k=300.0, friction_per_ps=20.0, rng=2)
    for _ in range(1000):
        md.step()
    kinetic, potential = [], []
    for _ in range(2000):
        md.step()
        kinetic.append(md.kinetic.mean())
        potential.append(md.current.energy.mean())
    kt = BOLTZMANN_EV_PER_K * 300.0
    # 9 momenta per replica (the thermostat does not conserve the centre of mass) and 9
    # harmonic coordinates: <K> = <U> = 9 kT/2.
    assert np.mean(kinetic) == pytest.approx(4.5 * kt, rel=0.03)
    assert np.mean(potential) == pytest.approx(4.5 * kt, rel=0.03)


def test_maxwell_boltzmann_starts_at_the_temperature_without_drift():
    v = maxwell_boltzmann(MASSES, 300.0, 5, np.random.default_rng(3))
    assert np.allclose(temperature(v, MASSES), 300.0)
    assert np.allclose(np.einsum("i,bij->bj", MASSES, v), 0.0, atol=1e-12)


class _Crash(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_trajectory(tmp_path):
    settings = ReplicaRunSettings(thermalise_steps=30, nve_steps=50, position_stride=10,
                                  temperature_k=300.0, friction_per_ps=10.0)
    x0 = 0.05 * np.random.default_rng(4).standard_normal((2, 3, 3))
    numbers = np.array([1, 6, 8])
    straight = run_replicas(harmonic, numbers, MASSES, x0, tmp_path / "a", settings,
                            checkpoint_every=20, progress=False)
    calls = {"n": 0}

    def crashing(positions: np.ndarray) -> Evaluation:
        calls["n"] += 1
        if calls["n"] == 60:
            raise _Crash
        return harmonic(positions)

    with pytest.raises(_Crash):
        run_replicas(crashing, numbers, MASSES, x0, tmp_path / "b", settings,
                     checkpoint_every=20, progress=False)
    assert not (tmp_path / "b" / "records.npz").exists()
    resumed = run_replicas(harmonic, numbers, MASSES, x0, tmp_path / "b", settings,
                           checkpoint_every=20, progress=False)
    for key in ("epot", "ekin", "dipole", "positions"):
        assert np.isfinite(straight[key]).all()
        np.testing.assert_array_equal(straight[key], resumed[key])
    spectrum_input = np.load(tmp_path / "b" / "replica_1.dipole.npy")
    assert spectrum_input.shape == (51, 4)
    with pytest.raises(Exception, match="other settings"):
        run_replicas(harmonic, numbers, MASSES, x0 + 0.01, tmp_path / "b", settings,
                     progress=False)


def test_nve_with_the_shipped_model_conserves_energy():
    """The example model (F = −∇E through both networks) in NVE at 0.25 fs for 50 fs."""
    evaluator = ModelEvaluator(ROOT / "examples/ethanol/model/ethanol_100.pt", device="cpu")
    frames = ase.io.read(ROOT / "examples/ethanol/ethanol_rmd17_100.xyz", index=":2")
    numbers = frames[0].numbers

    def evaluate(positions: np.ndarray) -> Evaluation:
        p = evaluator(numbers, positions)
        return Evaluation(p.energy, p.forces, p.dipole)

    masses = frames[0].get_masses()
    x0 = np.stack([f.positions for f in frames])
    md = ReplicaDynamics(evaluate, masses, x0,
                         maxwell_boltzmann(masses, 300.0, 2, np.random.default_rng(5)),
                         timestep_fs=0.25)
    start = md.total.copy()
    totals, kinetic = [], []
    for _ in range(200):
        md.step()
        totals.append(md.total - start)
        kinetic.append(md.kinetic)
    # The kinetic energy swings by ~0.1 eV; the total stays within a few meV.
    assert np.ptp(np.array(kinetic), axis=0).min() > 0.05
    assert np.abs(np.array(totals)).max() < 0.005


def springs(positions: np.ndarray) -> Evaluation:
    """Harmonic springs between every pair (translation invariant), rest length 1.2 Å."""
    d = positions[:, :, None] - positions[:, None]
    r = np.linalg.norm(d, axis=-1) + np.eye(positions.shape[1])
    stretch = (r - 1.2) * (1 - np.eye(positions.shape[1]))
    energy = 0.25 * K_SPRING * np.sum(stretch**2, axis=(1, 2))
    forces = -K_SPRING * np.sum((stretch / r)[..., None] * d, axis=2)
    return Evaluation(energy, forces, positions.sum(axis=1))


def test_nve_starts_without_centre_of_mass_drift(tmp_path):
    """Langevin noise moves the centre of mass; the NVE part must not carry that drift along
    (it would count as heat in the 3n − 3 degree-of-freedom temperature)."""
    x0 = np.array([[[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [0.0, 1.2, 0.0]]] * 3)
    settings = ReplicaRunSettings(thermalise_steps=200, nve_steps=100, position_stride=10,
                                  temperature_k=300.0, friction_per_ps=50.0)
    records = run_replicas(springs, np.array([1, 6, 8]), MASSES, x0, tmp_path, settings,
                           progress=False)
    com = np.einsum("i,bfij->bfj", MASSES, records["positions"].astype(float)) / MASSES.sum()
    assert np.abs(com - com[:, :1]).max() < 1e-5  # float32 positions


def test_a_run_continued_from_its_final_state_follows_the_longer_run(tmp_path):
    """``start_velocities`` (bench/md_nve.py --continue-from): 40 + 20 NVE steps continued from
    the first run's checkpoint are the last 20 steps of one 60-step run."""
    x0 = np.array([[[0.0, 0.0, 0.0], [1.25, 0.0, 0.0], [0.0, 1.15, 0.1]]] * 2)
    numbers = np.array([1, 6, 8])
    settings = ReplicaRunSettings(thermalise_steps=30, nve_steps=40, position_stride=10,
                                  temperature_k=300.0, friction_per_ps=10.0)
    run_replicas(springs, numbers, MASSES, x0, tmp_path / "first", settings, progress=False)
    longer = run_replicas(springs, numbers, MASSES, x0, tmp_path / "longer",
                          replace(settings, nve_steps=60),
                          progress=False)
    saved_numbers, positions, velocities = final_state(tmp_path / "first")
    np.testing.assert_array_equal(saved_numbers, numbers)
    continued = run_replicas(
        springs, numbers, MASSES, positions, tmp_path / "continued",
        ReplicaRunSettings(thermalise_steps=0, nve_steps=20, position_stride=10),
        progress=False, start_velocities=velocities)
    for key in ("epot", "ekin", "dipole"):
        np.testing.assert_allclose(continued[key], longer[key][:, 40:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(continued["positions"], longer["positions"][:, 4:], atol=1e-6)
    with pytest.raises(Exception, match="do not match"):
        run_replicas(springs, numbers, MASSES, x0, tmp_path / "bad", settings, progress=False,
                     start_velocities=velocities[:1])
