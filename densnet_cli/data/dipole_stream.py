"""The DenSNet dipole stream: a crash-safe text file of dipoles written during MD.

``densnet serve`` writes one while it runs and ``densnet spectrum`` reads it (format described
in ``docs/dipole_stream.md``)::

    # densnet-dipoles 1
    # units: time=fs dipole=e*Angstrom
    # timestep_fs: 0.5
    # step bead time_fs mu_x mu_y mu_z
    0 0 0.0 0.12 -0.03 0.41
    0 1 0.0 0.11 -0.02 0.40
    1 0 0.5 0.13 -0.03 0.40

Every record is one line, flushed as soon as it is written, so a killed run loses nothing it
already wrote; a truncated last line (no newline, or too few columns) is skipped with a warning.
Several beads interleave; the reader returns one series per bead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

import numpy as np

from densnet_cli.errors import InputError

MAGIC = "# densnet-dipoles 1"
UNITS_LINE = "# units: time=fs dipole=e*Angstrom"
COLUMNS_LINE = "# step bead time_fs mu_x mu_y mu_z"
N_COLUMNS = 6


@dataclass(frozen=True)
class DipoleStream:
    """The content of a dipole stream file, split by bead.

    Attributes:
        header: the ``# key: value`` lines (``units`` included), values as strings.
        steps: (n_frames,) int, MD step of each frame (the same for every bead).
        times_fs: (n_frames,) fs, time of each frame; NaN where the writer did not know it.
        dipoles: (n_beads, n_frames, 3) e·Å.
        warnings: problems that did not stop the reading (e.g. a truncated last line).
    """

    header: dict[str, str]
    steps: np.ndarray
    times_fs: np.ndarray
    dipoles: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def timestep_fs(self) -> float | None:
        """The ``timestep_fs`` header value, if the writer gave one."""
        value = self.header.get("timestep_fs")
        return float(value) if value is not None else None


class DipoleStreamWriter:
    """Append-only writer; use as a context manager.

    Args:
        path: file to create (an existing file is replaced).
        metadata: extra ``# key: value`` header lines, e.g. ``{"timestep_fs": 0.5}``.
    """

    def __init__(self, path: str | Path, metadata: dict[str, object] | None = None) -> None:
        self.path = Path(path)
        self._file: TextIO | None = open(self.path, "w", encoding="utf-8")
        lines = [MAGIC, UNITS_LINE]
        for key, value in (metadata or {}).items():
            if not key.isidentifier() or "\n" in str(value):
                raise ValueError(f"header key {key!r} / value {value!r} cannot be written")
            lines.append(f"# {key}: {value}")
        lines.append(COLUMNS_LINE)
        for line in lines:
            self._write_line(line)

    def _write_line(self, line: str) -> None:
        if self._file is None:
            raise ValueError(f"dipole stream {self.path} is closed")
        self._file.write(line + "\n")
        self._file.flush()

    def write(self, step: int, bead: int, time_fs: float, dipole: np.ndarray) -> None:
        """Append one record: MD step, bead index, time (fs, NaN if unknown), dipole (e·Å)."""
        mu = np.asarray(dipole, dtype=float).reshape(3)
        t = "nan" if math.isnan(time_fs) else repr(float(time_fs))
        self._write_line(f"{int(step)} {int(bead)} {t} "
                         f"{mu[0]:.10e} {mu[1]:.10e} {mu[2]:.10e}")

    def close(self) -> None:
        """Flush to disk and close (idempotent)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def __enter__(self) -> DipoleStreamWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def is_dipole_stream(path: str | Path) -> bool:
    """Whether ``path`` starts with the dipole-stream magic line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\r\n") == MAGIC
    except OSError:
        return False


def read_dipole_stream(path: str | Path) -> DipoleStream:
    """Read a dipole stream; a truncated last line is skipped and reported in ``warnings``.

    Raises:
        InputError: if the file is missing, is not a dipole stream, or has a malformed line
            before the last one, beads missing from a step, or non-increasing steps.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"dipole stream {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    complete = text.endswith("\n")
    if not lines or lines[0].rstrip("\r") != MAGIC:
        raise InputError(f"{path}:1: not a dipole stream (first line must be '{MAGIC}')")
    header: dict[str, str] = {}
    records: list[tuple[int, int, float, float, float, float]] = []
    warnings: list[str] = []
    last = len(lines) - 1 if complete else len(lines)  # split leaves '' after a final newline
    for number, raw in enumerate(lines[1:last], start=2):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip().isidentifier():
                header[key.strip()] = value.strip()
            continue
        fields = line.split()
        truncated = number == last and not complete
        try:
            if len(fields) != N_COLUMNS:
                raise ValueError(f"expected {N_COLUMNS} columns, found {len(fields)}")
            step, bead = int(fields[0]), int(fields[1])
            t, x, y, z = (float(v) for v in fields[2:])
        except ValueError as exc:
            if truncated:
                warnings.append(f"{path}:{number}: skipped the truncated last line")
                break
            raise InputError(f"{path}:{number}: malformed record ({exc}): '{line[:60]}'"
                             ) from None
        if truncated:
            warnings.append(f"{path}:{number}: skipped the last line (no newline: the writer "
                            f"may have been killed while writing it)")
            break
        records.append((step, bead, t, x, y, z))
    if header.get("units", "") != UNITS_LINE.partition(":")[2].strip():
        raise InputError(f"{path}: units line missing or different from '{UNITS_LINE}'")
    if not records:
        raise InputError(f"{path}: no dipole records")
    return _split_beads(path, np.array(records, dtype=float), header, warnings)


def _split_beads(path: Path, table: np.ndarray, header: dict[str, str],
                 warnings: list[str]) -> DipoleStream:
    """Group interleaved records by bead and check every step has every bead once."""
    steps_all = table[:, 0].astype(np.int64)
    beads_all = table[:, 1].astype(np.int64)
    bead_ids = np.unique(beads_all)
    if bead_ids[0] != 0 or bead_ids[-1] != len(bead_ids) - 1:
        raise InputError(f"{path}: bead indices must be 0..P-1, found {bead_ids.tolist()}")
    n_beads = len(bead_ids)
    if len(table) % n_beads:
        # a run killed between the beads of one step: drop that incomplete step
        keep = len(table) - len(table) % n_beads
        warnings.append(f"{path}: dropped the last, incomplete step {steps_all[keep]} "
                        f"({len(table) - keep} of {n_beads} beads)")
        table, steps_all, beads_all = table[:keep], steps_all[:keep], beads_all[:keep]
    steps = steps_all.reshape(-1, n_beads)
    beads = beads_all.reshape(-1, n_beads)
    bad = np.flatnonzero(np.any(steps != steps[:, :1], axis=1)
                         | np.any(np.sort(beads, axis=1) != np.arange(n_beads), axis=1))
    if bad.size:
        raise InputError(f"{path}: step {steps[bad[0], 0]} does not have each of the "
                         f"{n_beads} beads exactly once")
    if np.any(np.diff(steps[:, 0]) <= 0):
        k = int(np.flatnonzero(np.diff(steps[:, 0]) <= 0)[0]) + 1
        raise InputError(f"{path}: steps must increase; step {steps[k, 0]} follows "
                         f"step {steps[k - 1, 0]}")
    order = np.argsort(beads, axis=1, kind="stable")
    rows = np.arange(len(steps))[:, None] * n_beads + order  # (n_frames, n_beads) table rows
    dipoles = table[rows.T, 3:6]  # (n_beads, n_frames, 3)
    times = table[rows[:, 0], 2]
    return DipoleStream(header=header, steps=steps[:, 0].copy(), times_fs=times,
                        dipoles=dipoles, warnings=warnings)
