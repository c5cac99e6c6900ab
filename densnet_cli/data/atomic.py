"""Output files that exist only when complete: write to a temporary name, then rename.

Every file DenSNet writes (datasets, models, checkpoints, logs, reports, plots, spectra) goes
through :func:`atomic_output`, so a killed process never leaves a half-written file under the
real name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    ``suffix`` keeps an extension some writers need (e.g. ``".png"`` for matplotlib).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure as PNG (at the figure's dpi) atomically."""
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, format="png")


def save_npz(path: str | Path, arrays: dict) -> None:
    """Save named arrays as an uncompressed ``.npz`` (no pickles) atomically."""
    with atomic_output(path, ".npz") as tmp:
        np.savez(tmp, **arrays)
