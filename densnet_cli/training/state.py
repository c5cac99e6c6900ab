"""Training state that survives a kill: EMA weights and atomic checkpoints.

A checkpoint is a plain dict of tensors and numbers (``torch.load(weights_only=True)``),
written to a temporary file and renamed, once per epoch: ``kill -9`` loses at most the epoch in
flight, and ``--resume`` continues exactly (the data order of each epoch is a function of the
seed and the epoch number, not of a random-number state).
"""

from __future__ import annotations

from pathlib import Path

import torch

from densnet_cli.data.atomic import atomic_output
from densnet_cli.errors import InputError


class EMA:
    """Exponential moving average of a model's trainable weights.

    The decay warms up as ``min(decay, (1 + t) / (10 + t))`` after ``t`` updates, so that the
    average follows the early, fast-changing weights instead of remembering the random start.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        """Start the average at the model's current trainable weights.

        Only parameters with ``requires_grad`` are averaged: ``d·w + (1 − d)·w`` is ``w`` only
        up to rounding, so averaging a frozen network (the density side in the energy stage)
        would move it by an ulp per step.
        """
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.named_parameters()
                       if v.requires_grad and v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """``shadow ← d · shadow + (1 − d) · weights`` with the warmed-up decay ``d``."""
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        self.updates += 1
        for k, v in model.named_parameters():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1.0 - d)

    def state(self) -> dict[str, torch.Tensor]:
        """A copy of the averaged weights (with the update count, for resuming)."""
        return {**{k: v.clone() for k, v in self.shadow.items()},
                "__updates__": torch.tensor(self.updates)}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the averaged weights and the update count."""
        self.updates = int(state.get("__updates__", torch.tensor(0)))
        for k, v in state.items():
            if k in self.shadow:  # checkpoints before 2026-12 also averaged buffers
                self.shadow[k].copy_(v)


class swapped_in:
    """Context manager: evaluate ``model`` with other weights, then restore its own."""

    def __init__(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]):
        """Prepare to swap ``weights`` (a subset of the state dict) into ``model``."""
        self.model, self.weights = model, weights

    def __enter__(self) -> torch.nn.Module:
        """Swap in."""
        self.saved = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(without_bookkeeping(self.weights), strict=False)
        return self.model

    def __exit__(self, *exc) -> None:
        """Restore."""
        self.model.load_state_dict(self.saved)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` atomically."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (no code is unpickled)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"cannot read checkpoint {path} ({type(exc).__name__}); delete it to "
                         f"start over") from None


def without_bookkeeping(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An EMA state reduced to model weights (drops the ``__updates__`` counter)."""
    return {k: v for k, v in state.items() if not k.startswith("__")}
