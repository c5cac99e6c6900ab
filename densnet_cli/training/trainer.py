"""Staged training of a DenSNet model (``densnet train``).

Stages, as in the paper: **density** (the density network against the fitted coefficients and
the DFT dipole), an optional **refine** (the density network against the true DFT density in
real space, ``∫|ρ − ρ_DFT|``; the only stage in which a flexible basis learns its exponents,
since the fitted coefficients know nothing beyond the fixed basis), then **energy** (the
energy network against energies and forces, the density network frozen — forces still flow
through it), then an optional **joint** fine-tune of both with every loss.  Each stage: Adam,
ReduceLROnPlateau on the validation loss, early stopping, gradient clipping, an EMA of the
weights (used for validation and kept as the stage's best).

Data-parallel under ``torchrun``: each process takes its share of every epoch's batches and
gradients are averaged with ``all_reduce`` before each step — what DDP does — using gloo on
CPU and NCCL on GPUs.  Rank 0 writes checkpoints, the log and the model.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.model.densnet import DenSNet, ModelConfig
from densnet_cli.model.io import read_model_file, resolve_device, save_model
from densnet_cli.training.config import TrainConfig
from densnet_cli.training.data import (
    Statistics,
    TrainingData,
    composition,
    split,
    statistics,
)
from densnet_cli.training.losses import loss_terms, weighted_total
from densnet_cli.training.report import plot_learning_curve, write_log
from densnet_cli.training.state import (
    EMA,
    load_checkpoint,
    save_checkpoint,
    swapped_in,
    without_bookkeeping,
)


@dataclass(frozen=True)
class Stage:
    """One training stage: which losses, which parameters, which outputs."""

    name: str
    epochs: int
    weights: dict[str, float]
    trains_density: bool
    trains_energy: bool

    @property
    def needs_energy(self) -> bool:
        """Whether the energy network must run (energy or force losses)."""
        return bool(self.weights.get("energy") or self.weights.get("forces"))

    @property
    def needs_grid(self) -> bool:
        """Whether the real-space density loss is part of this stage."""
        return bool(self.weights.get("grid"))


def stages(cfg: TrainConfig) -> list[Stage]:
    """The four stages with this configuration's epochs and loss weights.

    After a refine stage the joint stage keeps the real-space loss, and a flexible basis drops
    the coefficient loss there (its coefficients belong to scaled functions).
    """
    density = {"density": cfg.w_density, "dipole": cfg.w_dipole}
    refine = {"grid": cfg.w_grid, "dipole": cfg.w_dipole}
    energy = {"energy": cfg.w_energy, "forces": cfg.w_forces}
    joint = {**(refine if cfg.epochs_refine else {}), **energy,
             **(density if cfg.max_exponent_factor == 1.0 else {"dipole": cfg.w_dipole})}
    return [Stage("density", cfg.epochs_density, density, True, False),
            Stage("refine", cfg.epochs_refine, refine, True, False),
            Stage("energy", cfg.epochs_energy, energy, False, True),
            Stage("joint", cfg.epochs_joint, joint, True, True)]


def apply_statistics(model: DenSNet, stats: Statistics) -> None:
    """Put the training-set normalisation into the model's buffers."""
    with torch.no_grad():
        for s in model.density.symbols:
            getattr(model.density, f"scale_{s}").copy_(torch.as_tensor(stats.shell_rms[s]))
            getattr(model.energy, f"input_scale_{s}").copy_(torch.as_tensor(stats.delta_rms[s]))
        model.energy.reference_energy.copy_(torch.as_tensor(
            [stats.reference_energy[s] for s in model.energy.symbols]))
        model.energy.energy_scale.fill_(stats.force_rms)


# The ModelConfig fields that shape the density network (and the edge embedding it reads).
DENSITY_ARCHITECTURE = ("cutoff", "n_radial", "lmax_edge", "density_features", "density_layers",
                        "radial_hidden", "avg_num_neighbors", "delta", "max_exponent_factor",
                        "charge_flow")


def take_density_network(model: DenSNet, path: Path) -> None:
    """Copy the density network of the model file ``path`` into ``model`` (``--init-density``).

    The energy network keeps its fresh weights: with ``--epochs-density 0`` a run retrains only
    the energy side on a fixed density, an ablation of energy-side settings that costs one stage.

    Raises:
        InputError: if the file's basis or density architecture differs from ``model``'s.
    """
    metadata, state = read_model_file(path)
    if metadata["basis"] != json.loads(model.basis.to_json()):
        raise InputError(f"init_density: {path} has another basis than these datasets")
    ours = model.config.as_dict()
    theirs = {**ModelConfig().as_dict(), **metadata["config"]}
    differ = [k for k in DENSITY_ARCHITECTURE
              if not (math.isclose(ours[k], theirs[k], rel_tol=1e-9)
                      if isinstance(ours[k], float) else ours[k] == theirs[k])]
    if differ:
        raise InputError(f"init_density: {path} differs in " + ", ".join(
            f"{k} ({theirs[k]} vs {ours[k]} here)" for k in differ))
    taken = {k: v for k, v in state.items() if not k.startswith(("energy.", "repulsion."))}
    missing = model.load_state_dict(taken, strict=False).missing_keys
    unexpected = [k for k in missing if not k.startswith(("energy.", "repulsion."))]
    if unexpected:
        raise InputError(f"init_density: {path} lacks weights {', '.join(unexpected[:3])}")


class Trainer:
    """Trains one model from one configuration; ``run()`` writes the model file."""

    def __init__(self, cfg: TrainConfig, data: TrainingData, output: Path, resume: bool):
        """Set up model, split and (when resuming) the saved state."""
        self.cfg, self.data, self.output = cfg, data, output
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.device = _device(cfg.device)
        self.checkpoint_path = output.with_name(output.name + ".ckpt")
        self.log_path = output.with_name(output.name + ".log.jsonl")
        self.train_idx, self.val_idx = split(len(data.frames), cfg.val_fraction, cfg.seed)
        self.identity = {"config": cfg.as_dict(), "data": data.files,
                         "val": self.val_idx.tolist()}
        self.saved: dict | None = None
        if self.checkpoint_path.exists():
            if not resume:
                raise InputError(f"{self.checkpoint_path} exists from an earlier run: pass "
                                 f"--resume to continue it, or delete it to start over")
            self.saved = load_checkpoint(self.checkpoint_path)
            if self.saved["identity"] != self.identity:
                raise InputError(f"{self.checkpoint_path} belongs to a run with other data or "
                                 f"settings; delete it to start over")
        self.stats = statistics(data, self.train_idx, cfg.cutoff, cfg.delta)
        torch.manual_seed(cfg.seed)
        model = DenSNet(data.basis, data.sad, cfg.model_config(self.stats.avg_num_neighbors))
        apply_statistics(model, self.stats)
        if cfg.init_density:
            take_density_network(model, Path(cfg.init_density))
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.history: list[dict] = self.saved["history"] if self.saved else []
        # per energy-bearing stage: the least-squares shift of each element's reference energy
        self.refits: dict[str, dict[str, float]] = (
            self.saved.get("refits", {}) if self.saved else {})

    def run(self) -> dict:
        """Train every stage (resuming where the checkpoint left off); write the model."""
        start = time.perf_counter()
        for index, stage in enumerate(stages(self.cfg)):
            if stage.epochs == 0 or (self.saved and index < self.saved["stage"]):
                continue
            self._run_stage(index, stage)
            if stage.needs_energy:
                self._refit_reference_energy(stage)
        final = self._validate(stages(self.cfg)[-1]) if self.val_idx.size else {}
        if self.rank == 0:
            save_model(self.model.to(torch.float64).cpu(), self.output, extra={"training": {
                "config": self.cfg.as_dict(), "data": self.data.files,
                "split": {"seed": self.cfg.seed, "n_train": int(self.train_idx.size),
                          "n_val": int(self.val_idx.size)},
                "statistics": self.stats.as_dict(), "final_validation": final,
                "reference_energy_refit_eV": self.refits,
                "wall_time_s": time.perf_counter() - start}})
            plot_learning_curve(self.history, self.output.with_name(self.output.name
                                                                    + ".curve.png"))
            self.checkpoint_path.unlink(missing_ok=True)
        return final

    def _run_stage(self, index: int, stage: Stage) -> None:
        for name, module in (("density", self.model.density), ("energy", self.model.energy)):
            module.requires_grad_(getattr(stage, f"trains_{name}"))
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.cfg.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=self.cfg.lr_factor, patience=self.cfg.lr_patience)
        ema = EMA(self.model, self.cfg.ema_decay)
        best_loss, best, bad, first_epoch = math.inf, ema.state(), 0, 0
        if self.saved and self.saved["stage"] == index:
            self.model.load_state_dict(self.saved["model"])
            optimizer.load_state_dict(self.saved["optimizer"])
            scheduler.load_state_dict(self.saved["scheduler"])
            ema.load(self.saved["ema"])
            best_loss, best = self.saved["best_loss"], self.saved["best"]
            bad, first_epoch = self.saved["bad_epochs"], self.saved["epoch"]
        self.saved = None  # run() resumes at the checkpoint's stage; later stages start fresh
        for epoch in range(first_epoch, stage.epochs):
            if bad >= self.cfg.early_stopping:
                break
            t0 = time.perf_counter()
            train_terms = self._train_epoch(index, stage, epoch, optimizer, ema, params)
            with swapped_in(self.model, ema.state()):
                val_terms = self._validate(stage)
            val_loss = sum(stage.weights[k] * v for k, v in val_terms.items()
                           if k in stage.weights)
            scheduler.step(val_loss)
            if val_loss < best_loss:
                best_loss, best, bad = val_loss, ema.state(), 0
            else:
                bad += 1
            self.history.append({"stage": stage.name, "epoch": epoch + 1,
                                 "lr": optimizer.param_groups[0]["lr"], "train": train_terms,
                                 "val": val_terms, "val_loss": val_loss,
                                 "time_s": time.perf_counter() - t0})
            if self.rank == 0:
                save_checkpoint(self.checkpoint_path, {
                    "identity": self.identity, "stage": index, "epoch": epoch + 1,
                    "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "ema": ema.state(), "best": best,
                    "best_loss": best_loss, "bad_epochs": bad, "history": self.history,
                    "refits": self.refits})
                write_log(self.history, self.log_path)
        # The stage ends at its best EMA weights.
        self.model.load_state_dict(without_bookkeeping(best), strict=False)

    def _refit_reference_energy(self, stage: Stage) -> None:
        """Shift the reference energies by the least-squares fit of residuals to compositions.

        The residuals are ``E_DFT − E_model`` of the training frames.  The energy loss is per
        atom and, at the default weights, far below the force loss, so the network's atomic
        energies can keep a per-element mean that the gradient steps have little reason to
        remove; it shows as a constant energy offset per composition (a model of 1- and 2-ring
        thiophene chains had −77 and +188 meV per molecule on its own training frames).  The
        reference energies enter the energy linearly, so the best shift is one least-squares
        solve (minimum norm where the compositions leave some combination of elements
        undetermined).  Forces do not change.
        """
        energy = self.model.energy
        symbols = list(energy.symbols)
        self.model.eval()
        predicted = []
        with torch.no_grad():
            for i in range(0, len(self.train_idx), self.cfg.batch_size):
                batch, _, _ = self.data.batch(self.train_idx[i:i + self.cfg.batch_size].tolist(),
                                              self.dtype)
                pred = self.model(batch.to(self.device), forces=False, energy=True)
                predicted.append(pred["energy"].double().cpu().numpy())
        frames = [self.data.frames[i] for i in self.train_idx]
        residual = np.array([f.energy for f in frames]) - np.concatenate(predicted)
        shift, *_ = np.linalg.lstsq(composition([f.numbers for f in frames], symbols),
                                    residual, rcond=None)
        with torch.no_grad():
            energy.reference_energy.add_(torch.as_tensor(shift).to(energy.reference_energy))
        self.refits[stage.name] = {s: float(x) for s, x in zip(symbols, shift, strict=True)}
        if self.rank == 0 and self.cfg.progress:
            moved = ", ".join(f"{s} {1000 * x:+.1f}" for s, x in zip(symbols, shift,
                                                                      strict=True))
            print(f"{stage.name}: reference energies re-fitted to the training frames "
                  f"(meV per atom: {moved}; mean |residual| {1000 * np.abs(residual).mean():.1f}"
                  f" meV per molecule before)", file=sys.stderr)

    def _train_epoch(self, index: int, stage: Stage, epoch: int, optimizer, ema: EMA,
                     params: list) -> dict[str, float]:
        self.model.train()
        order = np.random.default_rng([self.cfg.seed, index, epoch]).permutation(self.train_idx)
        share = len(order) // self.world
        # Interleaved shares: step k of N processes with batch b sees exactly the frames of
        # step k of one process with batch N·b, so the averaged gradients are the same.
        mine = order[self.rank::self.world][:share]
        batches = [mine[i:i + self.cfg.batch_size] for i in range(0, share, self.cfg.batch_size)]
        sums: dict[str, float] = {}
        bar = tqdm(batches, desc=f"{stage.name} {epoch + 1}/{stage.epochs}", unit="batch",
                   leave=False, file=sys.stderr,
                   disable=not self.cfg.progress or self.rank != 0)
        for number, indices in enumerate(bar):
            batch, coulomb, grids = self._batch(indices, stage)
            pred = self.model(batch, forces=stage.needs_energy, energy=stage.needs_energy)
            terms = loss_terms(pred, batch, coulomb, grids)
            loss = weighted_total(terms, stage.weights)
            if not torch.isfinite(loss):
                kept = (f"the last good state is in {self.checkpoint_path}: lower --lr and "
                        f"continue with --resume" if self.checkpoint_path.exists()
                        else "no epoch had completed, nothing was written: lower --lr")
                raise DenSNetError(f"the {stage.name} loss became {loss.item()} in epoch "
                                   f"{epoch + 1}, batch {number + 1}; {kept}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.world > 1:
                for p in params:
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= self.world
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_grad)
            optimizer.step()
            ema.update(self.model)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(indices)
            bar.set_postfix(loss=f"{loss.item():.3g}", refresh=False)
        return {k: v / max(1, len(mine)) for k, v in sums.items()}

    def _validate(self, stage: Stage) -> dict[str, float]:
        self.model.eval()
        sums: dict[str, float] = {}
        for i in range(0, len(self.val_idx), self.cfg.batch_size):
            indices = self.val_idx[i:i + self.cfg.batch_size]
            batch, coulomb, grids = self._batch(indices, stage)
            with torch.set_grad_enabled(stage.needs_energy):  # forces need autograd
                pred = self.model(batch, forces=stage.needs_energy, energy=stage.needs_energy)
            with torch.no_grad():
                terms = loss_terms({k: v.detach() for k, v in pred.items()}, batch, coulomb,
                                   grids)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(indices)
        return {k: v / len(self.val_idx) for k, v in sums.items()}

    def _batch(self, indices, stage: Stage):
        batch, coulomb, grids = self.data.batch(indices, self.dtype)
        grids = [g.to(self.device, self.dtype) for g in grids] if stage.needs_grid else []
        return batch.to(self.device), [j.to(self.device) for j in coulomb], grids


def _device(name: str) -> torch.device:
    """The training device; under torchrun each process takes its own GPU."""
    device = resolve_device(name)
    if device.type == "cuda" and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device
