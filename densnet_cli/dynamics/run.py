"""Thermalise-then-NVE runs of replicas, resumable, with the records a report needs.

:func:`run_replicas` integrates B replicas of one molecule: ``thermalise_steps`` of Langevin at
the target temperature (not recorded), then ``nve_steps`` of velocity Verlet, recording at every
step the potential and kinetic energy and the dipole, and the positions every
``position_stride`` steps.  Every ``checkpoint_every`` steps the whole state (positions,
velocities, records so far, the thermostat's random state) is written atomically to
``<out>/checkpoint.npz``; a rerun with the same settings continues from it, and the final
records go to ``<out>/records.npz`` (plus one ``replica_K.dipole.npy`` per replica in the
``time_fs mu_x mu_y mu_z`` layout ``densnet spectrum`` reads).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from densnet_cli.data.atomic import save_npz
from densnet_cli.dynamics.replicas import (
    Evaluate,
    ReplicaDynamics,
    maxwell_boltzmann,
    remove_com_velocity,
    temperature,
)
from densnet_cli.errors import InputError


@dataclass(frozen=True)
class ReplicaRunSettings:
    """What defines a run (a checkpoint is only resumed with identical settings)."""

    timestep_fs: float = 0.5
    temperature_k: float = 300.0
    friction_per_ps: float = 10.0
    thermalise_steps: int = 4000
    nve_steps: int = 20000
    position_stride: int = 20
    seed: int = 2026


class _Records:
    """Per-step energies and dipoles, strided positions of the NVE part."""

    def __init__(self, n_replicas: int, n_atoms: int, settings: ReplicaRunSettings) -> None:
        n = settings.nve_steps + 1
        self.epot = np.full((n_replicas, n), np.nan)
        self.ekin = np.full((n_replicas, n), np.nan)
        self.dipole = np.full((n_replicas, n, 3), np.nan)
        m = settings.nve_steps // settings.position_stride + 1
        self.positions = np.full((n_replicas, m, n_atoms, 3), np.nan, dtype=np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"epot": self.epot, "ekin": self.ekin, "dipole": self.dipole,
                "positions": self.positions}


def run_replicas(evaluate: Evaluate, numbers: np.ndarray, masses: np.ndarray,
                 starts: np.ndarray, out: Path, settings: ReplicaRunSettings,
                 checkpoint_every: int = 1000,
                 progress: bool = True,
                 start_velocities: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run (or resume) the thermalise-then-NVE protocol; returns the records (see module doc).

    Args:
        evaluate: model call on positions (B, n, 3) Å (a ModelEvaluator bound to ``numbers``).
        numbers: (n,) atomic numbers of the molecule.
        masses: (n,) masses (amu).
        starts: (B, n, 3) Å starting geometries, one per replica.
        out: directory for the checkpoint and the records.
        settings: the protocol; a checkpoint is resumed only under identical settings.
        checkpoint_every: steps between checkpoints.
        progress: print a progress line to stderr at every checkpoint.
        start_velocities: (B, n, 3) velocities (ASE units) to start from instead of a
            Maxwell-Boltzmann draw, e.g. the final state of another run continued at another
            time step.
    """
    if start_velocities is not None and np.shape(start_velocities) != np.shape(starts):
        raise InputError(f"start velocities of shape {np.shape(start_velocities)} do not match "
                         f"the starting positions' {np.shape(starts)}")
    out.mkdir(parents=True, exist_ok=True)
    key = json.dumps({"settings": asdict(settings), "numbers": [int(z) for z in numbers],
                      "starts": np.round(starts, 8).tolist(),
                      **({} if start_velocities is None else
                         {"start_velocities": np.round(start_velocities, 10).tolist()})},
                     sort_keys=True)
    checkpoint = out / "checkpoint.npz"
    n_replicas, n_atoms = starts.shape[:2]
    records = _Records(n_replicas, n_atoms, settings)
    rng = np.random.default_rng(settings.seed)
    total_steps = settings.thermalise_steps + settings.nve_steps
    step = 0
    if checkpoint.exists():
        saved = np.load(checkpoint, allow_pickle=False)
        if str(saved["key"]) != key:
            raise InputError(f"{checkpoint} belongs to a run with other settings or starts; "
                             "remove it or choose another output directory")
        step = int(saved["step"])
        positions, velocities = saved["state_positions"], saved["state_velocities"]
        for name, array in records.arrays().items():
            array[...] = saved[name]
        rng.bit_generator.state = json.loads(str(saved["rng"]))
    else:
        positions = np.array(starts, dtype=float)
        velocities = (maxwell_boltzmann(masses, settings.temperature_k, n_replicas, rng)
                      if start_velocities is None else np.array(start_velocities, dtype=float))

    def dynamics(thermostat: bool) -> ReplicaDynamics:
        return ReplicaDynamics(evaluate, masses, positions, velocities, settings.timestep_fs,
                               settings.temperature_k if thermostat else None,
                               settings.friction_per_ps if thermostat else None,
                               rng=rng)

    def record(md: ReplicaDynamics, nve_step: int) -> None:
        records.epot[:, nve_step] = md.current.energy
        records.ekin[:, nve_step] = md.kinetic
        records.dipole[:, nve_step] = md.current.dipole
        if nve_step % settings.position_stride == 0:
            records.positions[:, nve_step // settings.position_stride] = md.positions

    def fresh() -> ReplicaDynamics:  # NVE from the end of thermalisation on
        nonlocal velocities
        if step == settings.thermalise_steps:
            # Langevin noise also moves the centre of mass; NVE keeps whatever drift it has,
            # so remove it: the 3n − 3 internal degrees of freedom then hold k_B T each.
            velocities = remove_com_velocity(velocities, masses)
        md = dynamics(step < settings.thermalise_steps)
        if step == settings.thermalise_steps:
            record(md, 0)
        return md

    md = fresh()
    started, started_step = time.perf_counter(), step
    while step < total_steps:
        if step == settings.thermalise_steps and md.friction is not None:
            positions, velocities = md.positions, md.velocities
            md = fresh()  # thermostat off
        md.step()
        step += 1
        if step > settings.thermalise_steps:
            record(md, step - settings.thermalise_steps)
        if step % checkpoint_every == 0 or step == total_steps:
            positions, velocities = md.positions, md.velocities
            save_npz(checkpoint, dict(key=np.array(key), step=np.array(step),
                         state_positions=positions, state_velocities=velocities,
                         rng=np.array(json.dumps(rng.bit_generator.state)),
                         **records.arrays()))
            md = fresh()
            if progress:
                rate = (time.perf_counter() - started) / max(step - started_step, 1)
                phase = "thermalising" if step <= settings.thermalise_steps else "NVE"
                print(f"step {step}/{total_steps} ({phase}), T = "
                      f"{temperature(md.velocities, masses).mean():.0f} K, "
                      f"{1e3 * rate:.1f} ms/step, ~{rate * (total_steps - step) / 60:.0f} min "
                      "left", file=sys.stderr, flush=True)
    arrays = records.arrays()
    time_fs = np.arange(settings.nve_steps + 1) * settings.timestep_fs
    for k in range(n_replicas):
        np.save(out / f"replica_{k}.dipole.npy",
                np.column_stack([time_fs, arrays["dipole"][k]]))
    save_npz(out / "records.npz", dict(time_fs=time_fs, numbers=np.asarray(numbers),
                                       masses=np.asarray(masses), **arrays))
    return arrays


def final_state(out: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The end state of the finished run in ``out``, read from its checkpoint.

    Returns atomic numbers (n,), positions and velocities (B, n, 3), to continue the run with
    ``start_velocities``, e.g. at a shorter time step.
    """
    checkpoint = out / "checkpoint.npz"
    if not (out / "records.npz").exists() or not checkpoint.exists():
        raise InputError(f"{out}: no finished run to continue (records.npz and "
                         "checkpoint.npz are written at its end)")
    saved = np.load(checkpoint, allow_pickle=False)
    numbers = np.array(json.loads(str(saved["key"]))["numbers"])
    return numbers, saved["state_positions"], saved["state_velocities"]
