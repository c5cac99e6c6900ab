"""Every input ``densnet spectrum`` reads, turned into :class:`DipoleSeries` (e·Å, fs).

Formats (``--format auto`` picks one from the file's content and name):

- ``stream``: the DenSNet dipole stream (:mod:`densnet_cli.data.dipole_stream`), all beads.
- ``ipi``: i-PI ``extra_type='dipole'`` extras output, e·Bohr, one file per bead
  (``PREFIX.dipole_0``, ``PREFIX.dipole_1``, ...); files that differ only in that bead suffix are
  joined into one path-integral trajectory.  The files carry step numbers, not times: ``--dt``
  is the MD time step.
- ``ase``: anything ``ase.io.read`` reads (``.traj``, extended XYZ) with a dipole per frame
  (calculator results or ``info['dipole']``), e·Å; ``--dt`` is the time between frames.
- ``text``: whitespace- or comma-separated columns ``mu_x mu_y mu_z`` (``--dt`` needed) or
  ``time_fs mu_x mu_y mu_z``; ``#`` comments and one header line allowed.
- ``npy``: a NumPy array of shape (n_frames, 3) or (n_frames, 4) with the time first.

``text`` and ``npy`` dipoles are in ``--dipole-unit``; the other formats state their own units.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from densnet_cli.data.dipole_stream import is_dipole_stream, read_dipole_stream
from densnet_cli.errors import InputError
from densnet_cli.spectrum.series import DipoleSeries, make_series
from densnet_cli.units import BOHR_TO_ANGSTROM, DEBYE_TO_E_ANGSTROM

FORMATS = ("auto", "stream", "ipi", "ase", "text", "npy")
DIPOLE_UNITS = {"e*angstrom": 1.0, "debye": DEBYE_TO_E_ANGSTROM, "e*bohr": BOHR_TO_ANGSTROM}
IPI_HEADER = re.compile(r"^\s*#EXTRAS[A-Z_]*\(([^)]*)\)#\s*Step:\s*(-?\d+)")
IPI_BEAD_SUFFIX = re.compile(r"^(.*)_(\d+)$")
TEXT_SUFFIXES = {".txt", ".dat", ".csv", ".tsv"}


def detect_format(path: Path) -> str:
    """The input format of ``path`` from its first lines and its name."""
    if path.suffix == ".npy":
        return "npy"
    if is_dipole_stream(path):
        return "stream"
    with open(path, encoding="utf-8", errors="replace") as f:
        head = [f.readline() for _ in range(3)]
    if any(IPI_HEADER.match(line) for line in head):
        return "ipi"
    return "text" if path.suffix.lower() in TEXT_SUFFIXES else "ase"


def read_inputs(paths: Sequence[Path], *, dt_fs: float | None, fmt: str = "auto",
                dipole_unit: str = "e*angstrom") -> list[DipoleSeries]:
    """One :class:`DipoleSeries` per trajectory; i-PI bead files are joined into one.

    Raises:
        InputError: missing or unreadable files, and every check of :func:`make_series`.
    """
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"input {path} does not exist")
    formats = [detect_format(Path(p)) if fmt == "auto" else fmt for p in paths]
    series: list[DipoleSeries] = []
    ipi_groups: dict[str, list[Path]] = {}
    for path, kind in zip(paths, formats, strict=True):
        path = Path(path)
        if kind == "ipi":
            match = IPI_BEAD_SUFFIX.match(str(path))
            ipi_groups.setdefault(match.group(1) if match else str(path), []).append(path)
        elif kind == "stream":
            series.append(_read_stream(path, dt_fs))
        elif kind == "ase":
            series.append(_read_ase(path, dt_fs))
        else:
            series.append(_read_array(path, dt_fs, kind, DIPOLE_UNITS[dipole_unit]))
    series += [_read_ipi_beads(group, dt_fs) for group in ipi_groups.values()]
    return series


def _read_stream(path: Path, dt_fs: float | None) -> DipoleSeries:
    stream = read_dipole_stream(path)
    if dt_fs is None and not np.all(np.isfinite(stream.times_fs)):
        dt_fs = stream.timestep_fs
    return make_series(str(path), stream.dipoles, dt_fs=dt_fs, times_fs=stream.times_fs,
                       steps=stream.steps, where=lambda i: f"step {stream.steps[i]}",
                       warnings=tuple(stream.warnings))


def read_ipi_extras(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Steps (n,), dipoles (n, 3) e·Å and warnings from one i-PI dipole extras file.

    Raises:
        InputError: an extras type other than ``dipole`` or a malformed record before the last.
    """
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    steps: list[int] = []
    values: list[list[float]] = []
    warnings: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        header = IPI_HEADER.match(lines[i])
        if header is None:
            raise InputError(f"{path}:{i + 1}: expected an i-PI '#EXTRAS(dipole)# Step: N' line")
        if header.group(1).strip() != "dipole":
            raise InputError(f"{path}:{i + 1}: extras of type '{header.group(1)}', not "
                             f"'dipole' (use extra_type='dipole' in the i-PI input)")
        fields = lines[i + 1].split() if i + 1 < len(lines) else []
        try:
            if len(fields) != 3:
                raise ValueError(f"{len(fields)} numbers instead of 3")
            values.append([float(v) for v in fields])
        except ValueError as exc:
            if i + 2 >= len(lines):  # the run stopped while writing the last record
                warnings.append(f"{path}:{i + 1}: skipped an incomplete last record")
                break
            raise InputError(f"{path}:{i + 2}: bad dipole record ({exc})") from None
        steps.append(int(header.group(2)))
        i += 2
    if not values:
        raise InputError(f"{path}: no dipole records")
    return np.array(steps), np.array(values) * BOHR_TO_ANGSTROM, warnings


def _read_ipi_beads(paths: list[Path], dt_fs: float | None) -> DipoleSeries:
    """Join the per-bead i-PI files of one run (sorted by bead index)."""
    def bead(path: Path) -> int:
        match = IPI_BEAD_SUFFIX.match(str(path))
        return int(match.group(2)) if match else 0

    paths = sorted(paths, key=bead)
    indices = [bead(p) for p in paths]
    if indices != list(range(len(paths))):
        raise InputError(f"i-PI bead files {', '.join(map(str, paths))}: bead suffixes must "
                         f"be _0 .. _{len(paths) - 1}, found {indices}")
    read = [read_ipi_extras(p) for p in paths]
    steps = read[0][0]
    for path, (other, _, _) in zip(paths[1:], read[1:], strict=True):
        if not np.array_equal(other, steps):
            raise InputError(f"mismatched bead files: {paths[0]} has {len(steps)} records "
                             f"(steps {steps[0]}..{steps[-1]}), {path} has {len(other)} "
                             f"(steps {other[0]}..{other[-1]})")
    return make_series(", ".join(map(str, paths)), np.stack([r[1] for r in read]), dt_fs=dt_fs,
                       steps=steps, where=lambda i: f"step {steps[i]}",
                       warnings=tuple(w for r in read for w in r[2]))


def _read_ase(path: Path, dt_fs: float | None) -> DipoleSeries:
    import ase.io

    try:
        frames = ase.io.read(path, index=":")
    except Exception as exc:  # ASE raises many types for unreadable input
        raise InputError(f"cannot read {path} with ASE: {exc}".splitlines()[0]) from exc
    if not isinstance(frames, list):
        frames = [frames]
    dipoles = []
    for i, atoms in enumerate(frames):
        mu = atoms.calc.results.get("dipole") if atoms.calc is not None else None
        if mu is None:
            mu = atoms.info.get("dipole")
        if mu is None:
            raise InputError(f"{path}: frame {i} has no dipole (expected calculator results "
                             f"or info['dipole'] in e·Å)")
        dipoles.append(np.asarray(mu, dtype=float).reshape(3))
    return make_series(str(path), np.array(dipoles), dt_fs=dt_fs)


def _read_array(path: Path, dt_fs: float | None, kind: str, unit: float) -> DipoleSeries:
    if kind == "npy":
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {path} as a NumPy .npy file: {exc}") from None
        rows = np.arange(len(table))
        label = "row"
    else:
        table, rows = _read_text_table(path)
        label = "line"
    if table.ndim != 2 or table.shape[1] not in (3, 4):
        raise InputError(f"{path}: expected columns 'mu_x mu_y mu_z' or 'time_fs mu_x mu_y "
                         f"mu_z', got shape {table.shape}")
    times = table[:, 0] if table.shape[1] == 4 else None
    if times is not None and not np.all(np.isfinite(times)):
        k = int(np.flatnonzero(~np.isfinite(times))[0])
        raise InputError(f"{path}: {label} {rows[k]} has a non-finite time")
    return make_series(str(path), table[:, -3:] * unit, dt_fs=dt_fs, times_fs=times,
                       where=lambda i: f"{label} {rows[i]}")


def _read_text_table(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Numeric rows and their 1-based line numbers; one leading non-numeric header allowed."""
    rows: list[list[float]] = []
    numbers: list[int] = []
    header_seen = False
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                 .splitlines(), start=1):
        line = raw.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            if rows or header_seen:
                raise InputError(f"{path}:{number}: not a row of numbers: '{raw[:60]}'"
                                 ) from None
            header_seen = True
            continue
        if len(rows[-1]) != len(rows[0]):
            raise InputError(f"{path}:{number}: {len(rows[-1])} columns, the first data line "
                             f"has {len(rows[0])}")
        numbers.append(number)
    if not rows:
        raise InputError(f"{path}: no numeric data")
    return np.array(rows), np.array(numbers)
