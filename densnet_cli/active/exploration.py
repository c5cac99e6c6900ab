"""ML-MD with a committee: Langevin replicas driven by the committee mean, disagreement recorded.

B replicas of one molecule run BAOAB Langevin (:class:`~densnet_cli.dynamics.replicas.
ReplicaDynamics`) on the committee's mean energy and forces.  Every ``stride`` steps each
running replica stores a frame (positions and the committee's disagreement there).  A replica
is stopped — it is what the committee must still learn — as soon as

- its force disagreement exceeds ``max_disagreement`` (the frame it stops on is stored too,
  flagged ``at_stop``: the geometry is sound, only the models disagree), or
- two atoms come closer than ``min_distance_factor`` × the sum of their covalent radii (or
  0.5 Å, which ``fit-density`` refuses), or the prediction is not finite (that frame is not
  stored: DFT on it would be wasted).

The state (positions, velocities, the thermostat's random stream, frames so far) is saved
atomically every ``checkpoint_every`` steps to ``checkpoint.npz``; a rerun continues from it
exactly.  The result goes to ``trajectory.npz`` (:class:`Trajectory`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
from ase.data import atomic_masses, covalent_radii

from densnet_cli.active.committee import CommitteePrediction, Log
from densnet_cli.data.atomic import save_npz
from densnet_cli.data.geometries import MIN_DISTANCE
from densnet_cli.dynamics.replicas import ReplicaDynamics, maxwell_boltzmann
from densnet_cli.errors import DenSNetError
from densnet_cli.sampling.thermal import MIN_DISTANCE_FACTOR

TRAJECTORY = "trajectory.npz"
CHECKPOINT = "checkpoint.npz"


@dataclass(frozen=True)
class ExplorationSettings:
    """What defines an exploration run (a checkpoint resumes only under identical settings)."""

    replicas: int = 4
    steps: int = 2000
    timestep_fs: float = 0.5
    temperature_k: float = 300.0
    friction_per_ps: float = 10.0
    stride: int = 10  # steps between stored frames
    max_disagreement: float = 1.0  # eV/Å; a replica stops above this
    min_distance_factor: float = MIN_DISTANCE_FACTOR  # × (r_cov,i + r_cov,j)
    seed: tuple[int, ...] = (0,)  # of the velocities and the thermostat


@dataclass(frozen=True)
class Trajectory:
    """The stored frames of all replicas (F frames, in the order they were recorded)."""

    numbers: np.ndarray  # (n,) atomic numbers
    replica: np.ndarray  # (F,) int
    step: np.ndarray  # (F,) int, MD step of the frame
    time_fs: np.ndarray  # (F,) fs
    positions: np.ndarray  # (F, n, 3) Å
    energy: np.ndarray  # (F,) eV, committee mean
    force_disagreement: np.ndarray  # (F,) eV/Å
    energy_std_per_atom: np.ndarray  # (F,) eV/atom
    dipole_std: np.ndarray  # (F,) e·Å
    at_stop: np.ndarray  # (F,) bool, the frame its replica was stopped on
    stop_step: np.ndarray  # (B,) int, step a replica was stopped at (−1: ran to the end)
    stop_reason: np.ndarray  # (B,) str ('' for none)
    identity: str  # JSON: settings, starts, models

    def save(self, path: Path) -> None:
        """Write atomically as ``.npz`` (no pickles)."""
        save_npz(path, {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Trajectory:
        """Read a file written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            values = {f.name: z[f.name] for f in fields(cls)}
        values["identity"] = str(values["identity"])
        return cls(**values)

    @property
    def n_replicas(self) -> int:
        """B."""
        return len(self.stop_step)


def _pairs(numbers: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(numbers), 1)
    limit = np.maximum(factor * (covalent_radii[numbers[i]] + covalent_radii[numbers[j]]),
                       MIN_DISTANCE)
    return i, j, limit


class Stop(NamedTuple):
    """Why a replica stops, and whether the frame it stops on is a labelling candidate."""

    reason: str
    candidate: bool


def guard(prediction: CommitteePrediction, positions: np.ndarray, numbers: np.ndarray,
          settings: ExplorationSettings) -> list[Stop | None]:
    """Per replica, why it must stop now (None: it goes on); positions (B, n, 3) Å."""
    i, j, limit = _pairs(numbers, settings.min_distance_factor)
    out: list[Stop | None] = []
    for b in range(len(positions)):
        finite = (np.isfinite(prediction.energy[b]) and np.isfinite(prediction.forces[b]).all()
                  and np.isfinite(positions[b]).all())
        d = np.linalg.norm(positions[b, i] - positions[b, j], axis=-1)
        close = np.flatnonzero(d < limit)
        if not finite:
            out.append(Stop("non-finite prediction", candidate=False))
        elif close.size:
            p = close[np.argmin(d[close] / limit[close])]
            out.append(Stop(f"atoms {i[p]} and {j[p]} {d[p]:.2f} Å apart (< {limit[p]:.2f} Å)",
                            candidate=False))
        elif prediction.force_disagreement[b] > settings.max_disagreement:
            out.append(Stop(f"force disagreement {prediction.force_disagreement[b]:.3g} eV/Å "
                            f"> {settings.max_disagreement:g}", candidate=True))
        else:
            out.append(None)
    return out


class _Frames:
    """Frames recorded so far (lists of per-frame values)."""

    NAMES = ("replica", "step", "positions", "energy", "force_disagreement",
             "energy_std_per_atom", "dipole_std", "at_stop")

    def __init__(self) -> None:
        self.values: dict[str, list] = {k: [] for k in self.NAMES}

    def add(self, replica: int, step: int, positions: np.ndarray, p: CommitteePrediction,
            b: int, at_stop: bool) -> None:
        for k, v in (("replica", replica), ("step", step), ("positions", positions.copy()),
                     ("energy", p.energy[b]), ("force_disagreement", p.force_disagreement[b]),
                     ("energy_std_per_atom", p.energy_std_per_atom[b]),
                     ("dipole_std", p.dipole_std[b]), ("at_stop", at_stop)):
            self.values[k].append(v)

    def arrays(self, n_atoms: int) -> dict[str, np.ndarray]:
        out = {k: np.array(v) for k, v in self.values.items()}
        out["positions"] = out["positions"].reshape(-1, n_atoms, 3)
        out["replica"] = out["replica"].astype(int)
        out["step"] = out["step"].astype(int)
        out["at_stop"] = out["at_stop"].astype(bool)
        return out

    def load(self, saved) -> None:
        for k in self.NAMES:
            self.values[k] = list(saved[k])


def explore(evaluate: Callable[[np.ndarray], CommitteePrediction], numbers: np.ndarray,
            starts: np.ndarray, settings: ExplorationSettings, out: Path, identity: dict,
            log: Log, checkpoint_every: int = 100) -> Trajectory:
    """Run (or resume, or just read) the exploration of ``out``; see the module doc.

    Args:
        evaluate: committee on positions (B', n, 3) Å, for any number B' of replicas.
        numbers: (n,) atomic numbers.
        starts: (B, n, 3) Å, one starting geometry per replica.
        settings: the protocol.
        out: directory for ``checkpoint.npz`` and ``trajectory.npz``.
        identity: what else the run depends on (e.g. the models' hashes), JSON-able.
        log: where progress lines go.
        checkpoint_every: steps between checkpoints.
    """
    numbers = np.asarray(numbers, dtype=int)
    key = json.dumps({"settings": asdict(settings), "numbers": numbers.tolist(),
                      "starts": np.round(starts, 8).tolist(), **identity}, sort_keys=True)
    final = out / TRAJECTORY
    if final.exists():
        trajectory = Trajectory.load(final)
        if trajectory.identity != key:
            raise DenSNetError(f"{final} was run with other models or settings than this "
                               f"round's: delete {out} (and the later stages of the round)")
        log(f"MD already done ({len(trajectory.step)} frames)")
        return trajectory
    out.mkdir(parents=True, exist_ok=True)
    masses = atomic_masses[numbers]
    rng = np.random.default_rng(list(settings.seed))
    n_rep = len(starts)
    frames = _Frames()
    stop_step = np.full(n_rep, -1)
    stop_reason = np.array([""] * n_rep, dtype="U200")
    checkpoint = out / CHECKPOINT
    step = 0
    if checkpoint.exists():
        with np.load(checkpoint, allow_pickle=False) as saved:
            if str(saved["key"]) == key:
                step = int(saved["md_step"])
                positions, velocities = saved["state_positions"], saved["state_velocities"]
                stop_step, stop_reason = saved["stop_step"], saved["stop_reason"].astype("U200")
                frames.load(saved)
                rng.bit_generator.state = json.loads(str(saved["rng"]))
                log(f"MD resumes at step {step}")
            else:
                log(f"{checkpoint} belongs to other models or settings: MD starts over")
    if step == 0:
        positions = np.array(starts, dtype=float)
        velocities = maxwell_boltzmann(masses, settings.temperature_k, n_rep, rng)

    def dynamics() -> tuple[np.ndarray, ReplicaDynamics]:
        running = np.flatnonzero(stop_step < 0)
        return running, ReplicaDynamics(evaluate, masses, positions[running],
                                        velocities[running], settings.timestep_fs,
                                        settings.temperature_k, settings.friction_per_ps, rng)

    def save_checkpoint() -> None:
        save_npz(checkpoint, {
            "key": np.array(key), "md_step": np.array(step), "state_positions": positions,
            "state_velocities": velocities, "stop_step": stop_step, "stop_reason": stop_reason,
            "rng": np.array(json.dumps(rng.bit_generator.state)),
            **frames.arrays(len(numbers))})

    running, md = dynamics() if (stop_step < 0).any() else (np.zeros(0, int), None)
    started, first_step = time.perf_counter(), step
    while step < settings.steps and md is not None:
        prediction = cast(CommitteePrediction, md.step())
        step += 1
        positions[running], velocities[running] = md.positions, md.velocities
        stops = guard(prediction, md.positions, numbers, settings)
        for b, (k, stop) in enumerate(zip(running, stops, strict=True)):
            if stop is not None:
                stop_step[k], stop_reason[k] = step, stop.reason
                log(f"replica {k} stopped at step {step}: {stop.reason}")
            if (stop is None and step % settings.stride == 0) or (stop and stop.candidate):
                frames.add(int(k), step, md.positions[b], prediction, b,
                           at_stop=stop is not None)
        if any(stop is not None for stop in stops):
            running, md = dynamics() if (stop_step < 0).any() else (running[:0], None)
        if step % checkpoint_every == 0 and step < settings.steps and md is not None:
            save_checkpoint()
            rate = (time.perf_counter() - started) / (step - first_step)
            disagreement = max(frames.values["force_disagreement"], default=float("nan"))
            log(f"MD step {step}/{settings.steps}, {len(running)}/{n_rep} replicas running, "
                f"largest disagreement so far {disagreement:.3g} eV/Å, "
                f"{1e3 * rate:.0f} ms/step, ~{rate * (settings.steps - step) / 60:.1f} min left")
    arrays = frames.arrays(len(numbers))
    trajectory = Trajectory(numbers=numbers, time_fs=arrays["step"] * settings.timestep_fs,
                            stop_step=stop_step, stop_reason=stop_reason, identity=key,
                            **arrays)
    trajectory.save(final)
    checkpoint.unlink(missing_ok=True)
    return trajectory
