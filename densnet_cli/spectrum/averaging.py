"""Averaging line shapes over beads, time blocks and trajectories, with a standard error.

Path integrals (``beads``):

- ``mean``: the spectrum of the bead-averaged dipole μ̄ = (1/P) Σ_k μ_k, the centroid-like
  estimator of RPMD/TRPMD (for a dipole linear in the positions it is the dipole of the centroid).
- ``each``: the average of the P single-bead spectra (shows the ring-polymer internal modes;
  a diagnostic, not an estimator of the quantum spectrum).

Every trajectory is cut into ``blocks`` equal consecutive blocks (the remainder at the end is
dropped); each block gives one line shape, and the mean over all blocks of all trajectories is
reported with its standard error, std / √M over the M blocks (NaN when M = 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from densnet_cli.errors import InputError
from densnet_cli.spectrum.lineshape import FrequencyGrid, block_lineshape
from densnet_cli.spectrum.series import TIME_TOLERANCE, DipoleSeries

BEAD_MODES = ("mean", "each")
DEFAULT_MAX_LAG_FS = 2000.0  # cap of the automatic correlation length: ~8 cm⁻¹ resolution
MAX_LAG_FRACTION = 0.5  # a lag longer than this fraction of a block has too few samples


@dataclass(frozen=True)
class LineShapeSettings:
    """How the line shape is estimated (the numeric options of ``densnet spectrum``)."""

    max_lag_fs: float | None = None
    window: str = "hann"
    zero_pad: int = 4
    blocks: int = 1
    beads: str = "mean"


@dataclass(frozen=True)
class AveragedLineShape:
    """Mean and standard error of S(ω) over M blocks, on the full FFT grid.

    Attributes:
        grid: the frequency grid (wavenumbers, resolution, Nyquist).
        mean: S(ω) in (e·Å/fs)²·fs.
        stderr: its standard error (NaN when ``n_samples`` is 1).
        n_samples: M, the number of blocks averaged.
    """

    grid: FrequencyGrid
    mean: np.ndarray
    stderr: np.ndarray
    n_samples: int


def common_timestep(series: Sequence[DipoleSeries]) -> float:
    """The time step all series share.

    Raises:
        InputError: if the inputs have different time steps or bead counts.
    """
    first = series[0]
    for other in series[1:]:
        if abs(other.dt_fs - first.dt_fs) > TIME_TOLERANCE * first.dt_fs:
            raise InputError(f"mismatched files: {first.source} has frames {first.dt_fs:g} fs "
                             f"apart, {other.source} {other.dt_fs:g} fs")
        if other.n_beads != first.n_beads:
            raise InputError(f"mismatched files: {first.source} has {first.n_beads} beads, "
                             f"{other.source} has {other.n_beads}")
    return first.dt_fs


def choose_max_lag(series: Sequence[DipoleSeries], settings: LineShapeSettings) -> float:
    """The correlation length (fs): the user's, checked, or the longest the data allow.

    Raises:
        InputError: if a block is too short for the requested correlation length.
    """
    dt = series[0].dt_fs
    shortest = min(series, key=lambda s: s.n_frames)
    block_fs = (shortest.n_frames // settings.blocks - 1) * dt
    allowed = MAX_LAG_FRACTION * block_fs
    if settings.max_lag_fs is None:
        if allowed < 8 * dt:
            raise InputError(f"{shortest.source}: {shortest.n_frames} frames in "
                             f"{settings.blocks} blocks are too short for a spectrum")
        return min(DEFAULT_MAX_LAG_FS, allowed)
    if not settings.max_lag_fs >= 2 * dt:
        raise InputError(f"--max-lag {settings.max_lag_fs:g} fs must be at least 2 time steps "
                         f"({2 * dt:g} fs)")
    if settings.max_lag_fs > allowed * (1 + 1e-9):
        need = settings.max_lag_fs / MAX_LAG_FRACTION * settings.blocks
        raise InputError(f"{shortest.source} is too short for the requested resolution: "
                         f"--max-lag {settings.max_lag_fs:g} fs with --blocks {settings.blocks} "
                         f"needs ≥ {need:g} fs of data, it has {shortest.duration_fs:g} fs; "
                         f"use a shorter --max-lag (coarser resolution) or fewer blocks")
    return settings.max_lag_fs


def average_lineshape(series: Sequence[DipoleSeries],
                      settings: LineShapeSettings) -> AveragedLineShape:
    """Line shape averaged over beads (as ``settings.beads`` says), blocks and trajectories."""
    if not series:
        raise InputError("no input trajectories")
    if settings.beads not in BEAD_MODES:
        raise InputError(f"--beads {settings.beads!r}: choose from {BEAD_MODES}")
    if settings.blocks < 1:
        raise InputError(f"--blocks must be ≥ 1, got {settings.blocks}")
    dt = common_timestep(series)
    grid = FrequencyGrid.create(dt, choose_max_lag(series, settings), settings.zero_pad)
    samples = []
    for s in series:
        dipoles = s.dipoles.mean(axis=0, keepdims=True) if settings.beads == "mean" else s.dipoles
        length = s.n_frames // settings.blocks
        for b in range(settings.blocks):
            block = dipoles[:, b * length:(b + 1) * length]
            samples.append(block_lineshape(block, grid, settings.window))
    stack = np.array(samples)
    m = len(stack)
    stderr = (stack.std(axis=0, ddof=1) / np.sqrt(m) if m > 1
              else np.full(stack.shape[1], np.nan))
    return AveragedLineShape(grid=grid, mean=stack.mean(axis=0), stderr=stderr, n_samples=m)
