"""A committee of DenSNet models: training K members, their mean and their disagreement.

The members differ only in ``seed`` (initial weights, data order and validation split), so
their spread measures how much the data leave the model undetermined — the quantity active
learning uses as a stand-in for the unknown error.

Disagreement (population statistics over the K members, ``1/K Σ_k``):

- **force disagreement** of a geometry: ``max_i sqrt(Σ_x Var_k F_ix)`` — the largest, over
  atoms, committee standard deviation of the force vector (eV/Å);
- **energy** ``sqrt(Var_k E) / n_atoms`` (eV/atom);
- **dipole** ``sqrt(Σ_x Var_k μ_x)`` (e·Å).

Variances are computed from pairwise differences, ``Var = Σ_kl (x_k − x_l)² / (2K²)``, so that
identical members give exactly zero and two members exactly ``|x₁ − x₂| / 2``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from densnet_cli.calculator import ModelEvaluator
from densnet_cli.dynamics.replicas import Evaluation
from densnet_cli.errors import InputError
from densnet_cli.training.config import TrainConfig

Log = Callable[[str], None]


@dataclass(frozen=True)
class CommitteePrediction(Evaluation):
    """The committee mean (``energy``, ``forces``, ``dipole``) and its spread, B geometries."""

    force_disagreement: np.ndarray  # (B,) eV/Å, max over atoms of the force-vector std
    energy_std_per_atom: np.ndarray  # (B,) eV/atom
    dipole_std: np.ndarray  # (B,) e·Å, norm of the per-component std


def _variance(x: np.ndarray) -> np.ndarray:
    """Population variance over axis 0 from pairwise differences (exactly 0 if all equal)."""
    k = len(x)
    d = x[:, None] - x[None, :]
    return (d * d).sum(axis=(0, 1)) / (2.0 * k * k)


def committee_statistics(energies: np.ndarray, forces: np.ndarray,
                         dipoles: np.ndarray) -> CommitteePrediction:
    """Mean and disagreement of K members' predictions.

    Args:
        energies: (K, B) eV.
        forces: (K, B, n, 3) eV/Å.
        dipoles: (K, B, 3) e·Å.
    """
    energies, forces, dipoles = (np.asarray(a, dtype=float) for a in (energies, forces, dipoles))
    n_atoms = forces.shape[2]
    return CommitteePrediction(
        energy=energies.mean(axis=0), forces=forces.mean(axis=0), dipole=dipoles.mean(axis=0),
        force_disagreement=np.sqrt(_variance(forces).sum(axis=-1)).max(axis=-1),
        energy_std_per_atom=np.sqrt(_variance(energies)) / n_atoms,
        dipole_std=np.sqrt(_variance(dipoles).sum(axis=-1)))


class Committee:
    """K model files evaluated together on stacks of geometries of the same atoms.

    Args:
        paths: the members' model files (at least 2).
        device, dtype, charge: as for :class:`~densnet_cli.calculator.ModelEvaluator`.
    """

    def __init__(self, paths: Sequence[Path], device: str = "auto", dtype: str = "float64",
                 charge: float = 0.0) -> None:
        if len(paths) < 2:
            raise InputError(f"a committee needs at least 2 members, got {len(paths)}")
        self.paths = list(paths)
        self.members = [ModelEvaluator(p, device=device, dtype=dtype, charge=charge)
                        for p in self.paths]

    def __call__(self, numbers: np.ndarray, positions: np.ndarray) -> CommitteePrediction:
        """Mean and disagreement for positions (B, n, 3) Å of the atoms ``numbers``."""
        predictions = [member(numbers, positions) for member in self.members]
        return committee_statistics(np.stack([p.energy for p in predictions]),
                                    np.stack([p.forces for p in predictions]),
                                    np.stack([p.dipole for p in predictions]))

    def evaluator(self, numbers: np.ndarray) -> Callable[[np.ndarray], CommitteePrediction]:
        """``positions (B, n, 3) → CommitteePrediction`` for MD (an ``Evaluate`` callable)."""
        for member, path in zip(self.members, self.paths, strict=True):
            member.check_species(numbers, f"the molecule (model {path})")
        return partial(self, np.asarray(numbers))


def member_paths(models_dir: Path, size: int) -> list[Path]:
    """``models_dir/member_{k}.pt`` for k = 0 … size − 1."""
    return [models_dir / f"member_{k}.pt" for k in range(size)]


def train_committee(cfg: TrainConfig, datasets: Sequence[Path], models_dir: Path, size: int,
                    log: Log) -> list[Path]:
    """Train the members still missing from ``models_dir`` (member k with seed ``cfg.seed + k``).

    A member whose model file exists is kept; one interrupted mid-training continues from its
    checkpoint (``member_k.pt.ckpt``) exactly.
    """
    from densnet_cli.training.data import load_training_data
    from densnet_cli.training.trainer import Trainer

    paths = member_paths(models_dir, size)
    todo = [k for k, p in enumerate(paths) if not p.exists()]
    if not todo:
        log(f"committee of {size} already trained")
        return paths
    models_dir.mkdir(parents=True, exist_ok=True)
    data = load_training_data(list(datasets),
                              grid_level=cfg.grid_level if cfg.epochs_refine else None)
    start = time.perf_counter()
    for done, k in enumerate(todo):
        eta = ""
        if done:
            left = (time.perf_counter() - start) / done * (len(todo) - done)
            eta = f", ~{left / 60:.1f} min left for the committee"
        resumed = " (resuming its checkpoint)" if paths[k].with_name(
            paths[k].name + ".ckpt").exists() else ""
        log(f"training member {k + 1}/{size} (seed {cfg.seed + k}) on {len(data.frames)} "
            f"frames{resumed}{eta}")
        final = Trainer(replace(cfg, seed=cfg.seed + k), data, paths[k], resume=True).run()
        if "forces" in final:
            log(f"member {k + 1}/{size}: validation force RMSE "
                f"{1e3 * final['forces'] ** 0.5:.0f} meV/Å")
    return paths
