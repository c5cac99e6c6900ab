"""A dipole time series that has passed every check the spectrum needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from densnet_cli.errors import InputError

MIN_FRAMES = 16  # fewer frames cannot give a meaningful autocorrelation
TIME_TOLERANCE = 1e-3  # relative deviation of a time step from the median that counts as a gap


@dataclass(frozen=True)
class DipoleSeries:
    """Dipoles of one trajectory on a uniform time grid.

    Attributes:
        source: where it came from (file names), for messages.
        dipoles: (n_beads, n_frames, 3) e·Å; one bead for classical MD.
        dt_fs: fs, time between consecutive frames.
        warnings: problems met while reading that did not stop it.
    """

    source: str
    dipoles: np.ndarray
    dt_fs: float
    warnings: tuple[str, ...] = ()

    @property
    def n_beads(self) -> int:
        """Number of path-integral beads (1 for classical MD)."""
        return int(self.dipoles.shape[0])

    @property
    def n_frames(self) -> int:
        """Number of time steps."""
        return int(self.dipoles.shape[1])

    @property
    def duration_fs(self) -> float:
        """Time spanned by the series (fs)."""
        return (self.n_frames - 1) * self.dt_fs


def _frame(i: int) -> str:
    return f"frame {i}"


def make_series(source: str, dipoles: np.ndarray, *, dt_fs: float | None,
                times_fs: np.ndarray | None = None, steps: np.ndarray | None = None,
                where: Callable[[int], str] = _frame,
                warnings: tuple[str, ...] = ()) -> DipoleSeries:
    """Check a raw series and fix its time step.

    The time step comes from ``times_fs`` when every time is known (and must then agree with
    ``dt_fs`` if that is given too); otherwise from ``steps`` × ``dt_fs`` (``dt_fs`` is the MD
    time step) or, with neither, ``dt_fs`` is the time between consecutive frames.

    Args:
        source: file name(s) for messages.
        dipoles: (n_frames, 3) or (n_beads, n_frames, 3) e·Å.
        dt_fs: the user's ``--dt`` (fs) or None.
        times_fs: (n_frames,) fs or None; NaN entries mean "unknown".
        steps: (n_frames,) MD step numbers or None.
        where: frame index → location text for messages (e.g. "line 12").
        warnings: reader warnings to carry along.

    Raises:
        InputError: non-finite dipoles, too few frames, missing, non-positive or non-uniform
            time step, or a ``--dt`` that contradicts the file's own times.
    """
    mu = np.asarray(dipoles, dtype=float)
    if mu.ndim == 2:
        mu = mu[None]
    if mu.ndim != 3 or mu.shape[-1] != 3:
        raise InputError(f"{source}: expected 3 dipole components per frame, got an array of "
                         f"shape {mu.shape}")
    bad = np.flatnonzero(~np.all(np.isfinite(mu), axis=(0, 2)))
    if bad.size:
        raise InputError(f"{source}: {where(int(bad[0]))} has a non-finite dipole (NaN or inf)"
                         f"{f'; {bad.size} such frames' if bad.size > 1 else ''}")
    if mu.shape[1] < MIN_FRAMES:
        raise InputError(f"{source}: only {mu.shape[1]} frames; a spectrum needs at least "
                         f"{MIN_FRAMES} (in practice thousands)")
    if dt_fs is not None and not dt_fs > 0:
        raise InputError(f"--dt must be positive, got {dt_fs}")
    if times_fs is not None and np.all(np.isfinite(times_fs)):
        dt = _uniform_spacing(source, np.asarray(times_fs, dtype=float), "time", where)
        if dt_fs is not None and abs(dt - dt_fs) > TIME_TOLERANCE * dt:
            raise InputError(f"{source}: the file's frames are {dt:g} fs apart but --dt is "
                             f"{dt_fs:g} fs; leave out --dt or fix it")
    elif steps is not None:
        stride = _uniform_spacing(source, np.asarray(steps, dtype=float), "step", where)
        if dt_fs is None:
            raise InputError(f"{source} gives MD steps but no times: pass --dt (the MD time "
                             f"step in fs)")
        dt = stride * dt_fs
    elif dt_fs is None:
        raise InputError(f"{source} has no time information: pass --dt (fs between frames)")
    else:
        dt = dt_fs
    return DipoleSeries(source=source, dipoles=mu, dt_fs=float(dt), warnings=warnings)


def _uniform_spacing(source: str, t: np.ndarray, what: str,
                     where: Callable[[int], str]) -> float:
    """The common spacing of ``t``; an error naming the first frame that breaks it."""
    d = np.diff(t)
    spacing = float(np.median(d))
    if not spacing > 0:
        raise InputError(f"{source}: {what}s do not increase (median spacing {spacing:g})")
    off = np.flatnonzero(np.abs(d - spacing) > TIME_TOLERANCE * spacing)
    if off.size:
        k = int(off[0]) + 1
        raise InputError(f"{source}: non-uniform {what} step: {where(k)} is {d[k - 1]:g} after "
                         f"the previous one, the usual spacing is {spacing:g} (missing or "
                         f"repeated frames?)")
    return spacing
