"""Choosing which MD frames to label: the largest disagreement, not two from one moment.

Frames of one replica a few femtoseconds apart are nearly the same geometry; labelling both
wastes DFT.  :func:`select_frames` therefore works greedily down the list of frames sorted by
force disagreement and skips a frame within ``min_separation_fs`` of one already chosen from
the same replica.  The chosen frames go to an extended XYZ file for ``fit-density``, each with
its round, replica, step, time and disagreement in the comment line.
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from densnet_cli.active.exploration import Trajectory
from densnet_cli.data.atomic import atomic_output
from densnet_cli.errors import InputError


def select_frames(disagreement: np.ndarray, replica: np.ndarray, time_fs: np.ndarray,
                  n_select: int, min_separation_fs: float) -> np.ndarray:
    """Indices of up to ``n_select`` frames, largest disagreement first.

    A frame is taken if no frame already taken from the same replica lies within
    ``min_separation_fs`` (strictly closer in time); ties keep the input order.  Non-finite
    disagreements are never taken.

    Args:
        disagreement: (F,) the quantity to maximise (e.g. force disagreement, eV/Å).
        replica: (F,) which replica each frame belongs to.
        time_fs: (F,) time of each frame within its replica (fs).
        n_select: how many frames at most.
        min_separation_fs: smallest time between two chosen frames of one replica (fs).
    """
    if n_select < 0 or min_separation_fs < 0:
        raise InputError("the number of frames and their separation must be ≥ 0")
    disagreement = np.asarray(disagreement, dtype=float)
    chosen: list[int] = []
    for i in np.argsort(-disagreement, kind="stable"):
        if len(chosen) == n_select:
            break
        if not np.isfinite(disagreement[i]):
            continue
        if any(replica[j] == replica[i] and abs(time_fs[j] - time_fs[i]) < min_separation_fs
               for j in chosen):
            continue
        chosen.append(int(i))
    return np.array(chosen, dtype=int)


def write_selected(path: Path, trajectory: Trajectory, chosen: np.ndarray,
                   round_index: int) -> None:
    """Write the chosen frames of ``trajectory`` as extended XYZ (Å), atomically.

    Each frame's info: ``round``, ``trajectory_frame`` (index into the trajectory file),
    ``replica``, ``step``, ``time_fs``, ``force_disagreement`` (eV/Å),
    ``energy_std_per_atom`` (eV/atom) and ``dipole_std`` (e·Å).
    """
    frames = []
    for i in chosen:
        atoms = Atoms(numbers=trajectory.numbers, positions=trajectory.positions[i])
        atoms.info.update({
            "round": round_index, "trajectory_frame": int(i),
            "replica": int(trajectory.replica[i]), "step": int(trajectory.step[i]),
            "time_fs": float(trajectory.time_fs[i]),
            "force_disagreement": float(trajectory.force_disagreement[i]),
            "energy_std_per_atom": float(trajectory.energy_std_per_atom[i]),
            "dipole_std": float(trajectory.dipole_std[i])})
        frames.append(atoms)
    with atomic_output(path, ".xyz") as tmp:
        ase.io.write(tmp, frames, format="extxyz")
