"""The classical line shape of one block of dipoles: S(ω) = ∫ e^{iωt} ⟨μ̇(0)·μ̇(t)⟩ dt.

Steps (each a function below):

1. μ̇ by central differences, (μ[n+1] − μ[n−1]) / 2Δt, and its mean removed.
2. The unbiased autocorrelation C(kΔt) = Σ_n μ̇[n]·μ̇[n+k] / (N − k) for k ≤ K = max lag, by FFT
   (Wiener–Khinchin) with the series zero-padded to ≥ 2N so that the correlation is not
   circular.
3. A lag window w(k) with w(0) = 1 (Hann, Gaussian or none), so that the area under the
   spectrum, ∫ S dω / 2π = C(0), is unchanged by the window.
4. S(ω_j) = Δt [C(0) + 2 Σ_{k=1..K} w(k) C(k) cos(ω_j kΔt)], evaluated by a real FFT of
   length ``zero_pad`` × 2K (zero padding: a finer frequency grid, not a finer resolution).
5. The exact gain of the central difference, (sin ωΔt / ωΔt)², divided out, so that the result
   is the spectrum of the true derivative.  The grid stops at half the Nyquist frequency, where
   that gain is still 0.41; above it the correction would amplify noise.

Units: μ in e·Å, t in fs, so S is in (e·Å/fs)²·fs; the frequency axis is in cm⁻¹.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from densnet_cli.units import SPEED_OF_LIGHT_CM_PER_FS, wavenumber_to_angular_frequency

WINDOWS = ("hann", "gaussian", "none")
GAUSSIAN_WIDTHS = 3.0  # the Gaussian window's σ is max_lag / 3, i.e. w(max_lag) = e^{-4.5}


@dataclass(frozen=True)
class FrequencyGrid:
    """The FFT frequency grid shared by every block of a run.

    Attributes:
        dt_fs: fs between frames.
        n_lag: K, the largest lag in frames.
        n_fft: length of the real FFT (≥ 2K, × zero padding).
    """

    dt_fs: float
    n_lag: int
    n_fft: int

    @classmethod
    def create(cls, dt_fs: float, max_lag_fs: float, zero_pad: int) -> FrequencyGrid:
        """Grid for a correlation length ``max_lag_fs`` (rounded to whole frames)."""
        n_lag = max(1, round(max_lag_fs / dt_fs))
        return cls(dt_fs=dt_fs, n_lag=n_lag,
                   n_fft=scipy.fft.next_fast_len(2 * n_lag * max(1, zero_pad)))

    @property
    def n_frequencies(self) -> int:
        """Grid points up to half the Nyquist frequency, where the derivative is trusted."""
        return self.n_fft // 4 + 1

    @property
    def wavenumber_cm1(self) -> np.ndarray:
        """ν̃_j = j / (n_fft Δt c) cm⁻¹, from 0 to half the Nyquist frequency."""
        return np.arange(self.n_frequencies) / (self.n_fft * self.dt_fs
                                                * SPEED_OF_LIGHT_CM_PER_FS)

    @property
    def nyquist_cm1(self) -> float:
        """Highest frequency the sampling represents, 1 / (2 Δt c) cm⁻¹."""
        return 1.0 / (2.0 * self.dt_fs * SPEED_OF_LIGHT_CM_PER_FS)

    @property
    def resolution_cm1(self) -> float:
        """Nominal resolution 1 / (2 K Δt c) cm⁻¹ (the window widens lines by about this)."""
        return 1.0 / (2.0 * self.n_lag * self.dt_fs * SPEED_OF_LIGHT_CM_PER_FS)


def dipole_derivative(dipoles: np.ndarray, dt_fs: float) -> np.ndarray:
    """Central-difference μ̇ (e·Å/fs) of (..., n, 3) dipoles, time mean removed: (..., n−2, 3)."""
    rate = (dipoles[..., 2:, :] - dipoles[..., :-2, :]) / (2.0 * dt_fs)
    return rate - rate.mean(axis=-2, keepdims=True)


def autocorrelation(x: np.ndarray, n_lag: int) -> np.ndarray:
    """Unbiased ⟨x(0)·x(kΔt)⟩, k = 0..n_lag, of (..., n, 3) series: shape (n_lag + 1,).

    The Cartesian components are summed and the leading axes (beads) averaged.
    """
    n = x.shape[-2]
    n_fft = scipy.fft.next_fast_len(2 * n)
    spectrum = scipy.fft.rfft(x, n=n_fft, axis=-2)
    power = (spectrum * spectrum.conj()).real.sum(axis=-1)  # Σ over x, y, z
    power = power.reshape(-1, power.shape[-1]).mean(axis=0)
    raw = scipy.fft.irfft(power, n=n_fft)[: n_lag + 1]
    return raw / (n - np.arange(n_lag + 1))


def lag_window(name: str, n_lag: int) -> np.ndarray:
    """Window w(k), k = 0..n_lag, with w(0) = 1: Hann cos²(πk/2K), Gaussian, or none."""
    k = np.arange(n_lag + 1) / n_lag
    if name == "hann":
        return np.cos(0.5 * np.pi * k) ** 2
    if name == "gaussian":
        return np.exp(-0.5 * (GAUSSIAN_WIDTHS * k) ** 2)
    if name == "none":
        return np.ones_like(k)
    raise ValueError(f"unknown window {name!r}; choose from {WINDOWS}")


def correlation_spectrum(correlation: np.ndarray, grid: FrequencyGrid,
                         window: str) -> np.ndarray:
    """∫ e^{iωt} w(t) C(t) dt over [−KΔt, KΔt] on the grid, for an even C(t) given at t ≥ 0."""
    weighted = correlation[: grid.n_lag + 1] * lag_window(window, grid.n_lag)
    cosine_sum = 2.0 * scipy.fft.rfft(weighted, n=grid.n_fft).real - weighted[0]
    return grid.dt_fs * cosine_sum[: grid.n_frequencies]


def finite_difference_gain(grid: FrequencyGrid) -> np.ndarray:
    """(sin ωΔt / ωΔt)²: how much the central difference damps |μ̇|² at each frequency."""
    x = wavenumber_to_angular_frequency(grid.wavenumber_cm1) * grid.dt_fs
    return np.sinc(x / np.pi) ** 2  # numpy's sinc is sin(πx)/(πx)


def block_lineshape(dipoles: np.ndarray, grid: FrequencyGrid, window: str) -> np.ndarray:
    """S(ω) in (e·Å/fs)²·fs of one block of (n_beads, n, 3) dipoles (beads averaged in C(t))."""
    correlation = autocorrelation(dipole_derivative(dipoles, grid.dt_fs), grid.n_lag)
    return correlation_spectrum(correlation, grid, window) / finite_difference_gain(grid)
