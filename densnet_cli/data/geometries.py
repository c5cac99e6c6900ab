"""Reading and checking input geometries (any format ASE reads)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from ase import Atoms
from scipy.spatial.distance import pdist

from densnet_cli.errors import InputError

MIN_DISTANCE = 0.5  # Å; closer atoms are almost certainly a broken geometry


def parse_index(text: str) -> slice | int:
    """ASE/Python style frame selection: ``"5"``, ``"-1"``, ``"0:100"``, ``"::10"``, ``":"``."""
    text = text.strip()
    try:
        if ":" not in text:
            return int(text)
        parts = text.split(":")
        if len(parts) > 3:
            raise ValueError
        start, stop, step = ([int(p) if p else None for p in parts] + [None])[:3]
        if step == 0:
            raise ValueError
        return slice(start, stop, step)
    except ValueError:
        raise InputError(f"--index '{text}' is not a frame number or a slice like 0:100 or ::10"
                         ) from None


def read_geometries(path: str | Path, index: str = ":") -> list[tuple[int, Atoms]]:
    """Frames selected by ``index`` from ``path``, each with its position in the file.

    Raises:
        InputError: if the file is missing or unreadable, or the selection is empty.
    """
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise InputError(f"geometry file {path} does not exist")
    selection = parse_index(index)
    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # ASE raises many types for unreadable input
        raise InputError(f"cannot read geometries from {path}: {exc}".splitlines()[0]) from exc
    if not isinstance(frames, list):
        frames = [frames]
    positions = list(range(len(frames)))
    try:
        chosen = [positions[selection]] if isinstance(selection, int) else positions[selection]
    except IndexError:
        raise InputError(f"--index {index} is out of range: {path} has {len(frames)} frames"
                         ) from None
    if not chosen:
        raise InputError(f"--index {index} selects no frames of the {len(frames)} in {path}")
    return [(i, frames[i]) for i in chosen]


def check_geometry(source_index: int, atoms: Atoms) -> None:
    """Reject empty frames, non-finite coordinates and overlapping atoms (naming them)."""
    if len(atoms) == 0:
        raise InputError(f"frame {source_index} has no atoms")
    positions = atoms.get_positions()
    if not np.all(np.isfinite(positions)):
        raise InputError(f"frame {source_index} has non-finite coordinates")
    if len(atoms) > 1:
        d = pdist(positions)
        k = int(np.argmin(d))
        if d[k] < MIN_DISTANCE:
            rows, cols = np.triu_indices(len(atoms), 1)  # pdist's pair order
            i, j = int(rows[k]), int(cols[k])
            sym = atoms.get_chemical_symbols()
            raise InputError(f"frame {source_index}: atoms {i} ({sym[i]}) and {j} ({sym[j]}) "
                             f"are {d[k]:.3f} Å apart (< {MIN_DISTANCE} Å): overlapping atoms")


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (identifies the geometry source in dataset metadata)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
