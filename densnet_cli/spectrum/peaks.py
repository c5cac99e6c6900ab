"""The peak table: position, height and integrated intensity of each band.

A peak is a local maximum whose height and prominence both exceed ``threshold`` × the largest
intensity.  Its position comes from a parabola through the three highest grid points (accurate
to a small fraction of the grid spacing for a smooth band), and its integrated intensity is the
trapezoidal integral between the nearest local minima on either side (or the ends of the range),
so neighbouring bands split at the valley between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import trapezoid
from scipy.signal import find_peaks as _scipy_find_peaks

DEFAULT_THRESHOLD = 0.05


@dataclass(frozen=True)
class Peak:
    """One band: position (cm⁻¹), height and integral over [lower, upper] (cm⁻¹)."""

    position_cm1: float
    height: float
    integrated: float
    lower_cm1: float
    upper_cm1: float


def _valley(y: np.ndarray, start: int, step: int) -> int:
    """Index of the first local minimum walking from ``start`` in direction ``step``."""
    i = start
    while 0 <= i + step < len(y) and y[i + step] <= y[i]:
        i += step
    return i


def find_peaks(nu_cm1: np.ndarray, intensity: np.ndarray,
               threshold: float = DEFAULT_THRESHOLD) -> list[Peak]:
    """Peaks of a spectrum on a uniform grid, ordered by position."""
    top = float(np.max(intensity)) if len(intensity) else 0.0
    if not top > 0:
        return []
    found, _ = _scipy_find_peaks(intensity, height=threshold * top, prominence=threshold * top)
    spacing = float(nu_cm1[1] - nu_cm1[0])
    peaks = []
    for i in found:
        y0, y1, y2 = intensity[i - 1], intensity[i], intensity[i + 1]
        curvature = y0 - 2 * y1 + y2
        shift = 0.5 * (y0 - y2) / curvature if curvature < 0 else 0.0
        lo, hi = _valley(intensity, i, -1), _valley(intensity, i, +1)
        area = float(trapezoid(intensity[lo:hi + 1], nu_cm1[lo:hi + 1]))
        peaks.append(Peak(position_cm1=float(nu_cm1[i] + shift * spacing),
                          height=float(y1 - 0.25 * (y0 - y2) * shift),
                          integrated=area, lower_cm1=float(nu_cm1[lo]),
                          upper_cm1=float(nu_cm1[hi])))
    return peaks

