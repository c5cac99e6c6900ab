"""The spectrum against physics: analytic line positions, sum rules, harmonic intensities."""

from __future__ import annotations

import ase.units
import numpy as np
import pytest

from densnet_cli.spectrum.averaging import LineShapeSettings, average_lineshape
from densnet_cli.spectrum.corrections import (
    CORRECTIONS,
    absolute_absorption,
    absorption_factor,
    harmonic_ir_intensity,
    quantum_correction,
)
from densnet_cli.spectrum.lineshape import WINDOWS, autocorrelation
from densnet_cli.spectrum.peaks import find_peaks
from densnet_cli.spectrum.series import DipoleSeries
from densnet_cli.units import (
    AVOGADRO,
    E_ANGSTROM_TO_DEBYE,
    SPEED_OF_LIGHT_CM_PER_FS,
    wavenumber_to_angular_frequency,
)

DT = 0.5  # fs


def _lineshape(series: list[DipoleSeries], **settings) -> tuple[np.ndarray, np.ndarray]:
    avg = average_lineshape(series, LineShapeSettings(**settings))
    return avg.grid.wavenumber_cm1, avg.mean


def _synthetic(bands: list[tuple[float, float]], n: int = 8192) -> DipoleSeries:
    """μ(t) = Σ a_k cos(ω_k t + φ_k) along different axes, e·Å."""
    t = np.arange(n) * DT
    mu = np.zeros((n, 3))
    for k, (nu, amplitude) in enumerate(bands):
        omega = wavenumber_to_angular_frequency(nu)
        mu[:, k % 3] += amplitude * np.cos(omega * t + 0.7 * k)
    return DipoleSeries("synthetic", mu[None], DT)


BANDS = [(1000.0, 0.05), (1650.0, 0.02), (3400.0, 0.01)]


def test_synthetic_peaks_sit_at_the_input_wavenumbers():
    nu, s = _lineshape([_synthetic(BANDS)], max_lag_fs=1000)
    peaks = find_peaks(nu, s / s.max(), 0.01)
    resolution = 1 / (2 * 1000 * SPEED_OF_LIGHT_CM_PER_FS)
    assert len(peaks) == 3
    for peak, (nu0, _) in zip(peaks, BANDS, strict=True):
        assert abs(peak.position_cm1 - nu0) < 0.1 * resolution


def test_synthetic_relative_intensities_follow_amplitude_times_frequency_squared():
    nu, s = _lineshape([_synthetic(BANDS)], max_lag_fs=1000)
    peaks = find_peaks(nu, s, 0.01)
    expected = np.array([(a * nu0) ** 2 for nu0, a in BANDS])  # ⟨|μ̇|²⟩ = a²ω²/2
    measured = np.array([p.integrated for p in peaks])
    np.testing.assert_allclose(measured / measured[0], expected / expected[0], rtol=0.02)


@pytest.mark.parametrize("window", WINDOWS)
def test_window_conserves_the_band_area(window):
    """∫ S dω/2π over ±ω = ⟨|μ̇|²⟩ = Σ a²ω²/2 whatever the window (w(0) = 1)."""
    nu, s = _lineshape([_synthetic(BANDS)], max_lag_fs=1000, window=window)
    area = np.trapezoid(s, nu) * 2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS / np.pi
    expected = sum((a * wavenumber_to_angular_frequency(nu0)) ** 2 / 2 for nu0, a in BANDS)
    assert area == pytest.approx(expected, rel=0.01)


def test_autocorrelation_is_unbiased():
    """For white noise with variance σ² per component, C(k) = 3σ² δ_k0 at every lag."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 2.0, (20000, 3))
    c = autocorrelation(x, 50)
    assert c[0] == pytest.approx(12.0, rel=0.02)
    assert np.all(np.abs(c[1:]) < 0.15)


def test_finite_difference_damping_is_undone_near_half_nyquist():
    """A line at 0.4 × Nyquist keeps the intensity a²ω²/2 of the true derivative."""
    dt = 2.0  # fs: Nyquist 8340 cm⁻¹, so 3336 cm⁻¹ is where central differences lose 40 %
    nu0 = 0.4 / (2 * dt * SPEED_OF_LIGHT_CM_PER_FS)
    t = np.arange(8192) * dt
    omega = wavenumber_to_angular_frequency(nu0)
    mu = np.zeros((len(t), 3))
    mu[:, 2] = 0.1 * np.cos(omega * t)
    nu, s = _lineshape([DipoleSeries("hf", mu[None], dt)], max_lag_fs=2000)
    area = np.trapezoid(s, nu) * 2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS / np.pi  # ∫ S dω/π
    assert area == pytest.approx(0.1**2 * omega**2 / 2, rel=0.01)


def _harmonic_ensemble(nu0: float, temperature: float, n_runs: int, n_steps: int,
                       seed: int) -> np.ndarray:
    """Classical 3D isotropic oscillators in mass-weighted coordinates Q (√amu·Å).

    Initial conditions are drawn from the canonical distribution at ``temperature`` (what a
    perfect thermostat gives); each run is then integrated in NVE with velocity Verlet.
    Returns Q of shape (n_runs, n_steps, 3).
    """
    rng = np.random.default_rng(seed)
    dt = DT * ase.units.fs
    omega = wavenumber_to_angular_frequency(nu0) / ase.units.fs  # rad per ASE time unit
    kt = ase.units.kB * temperature
    q = rng.normal(0.0, np.sqrt(kt) / omega, (n_runs, 3))
    p = rng.normal(0.0, np.sqrt(kt), (n_runs, 3))
    out = np.empty((n_runs, n_steps, 3))
    force = -(omega**2) * q
    for n in range(n_steps):
        out[:, n] = q
        p += 0.5 * dt * force
        q += dt * p
        force = -(omega**2) * q
        p += 0.5 * dt * force
    return out


NU0, TEMPERATURE, DMU_DQ = 1600.0, 300.0, 0.4  # cm⁻¹, K, e/√amu


@pytest.fixture(scope="module")
def harmonic_spectrum() -> tuple[np.ndarray, np.ndarray]:
    q = _harmonic_ensemble(NU0, TEMPERATURE, n_runs=3000, n_steps=1024, seed=7)
    series = [DipoleSeries(f"run {i}", DMU_DQ * q[i][None], DT) for i in range(len(q))]
    nu, s = _lineshape(series, max_lag_fs=200)
    factor = absorption_factor("harmonic", nu, TEMPERATURE)
    return nu, absolute_absorption(s, factor)


def test_harmonic_oscillator_peak_at_the_analytic_frequency(harmonic_spectrum):
    nu, absorption = harmonic_spectrum
    (peak,) = find_peaks(nu, absorption)
    x = wavenumber_to_angular_frequency(NU0) * DT  # velocity Verlet's own frequency:
    verlet = NU0 * 2 * np.arcsin(x / 2) / x  # (2/Δt) arcsin(ωΔt/2)
    assert abs(peak.position_cm1 - NU0) < 3.0
    assert abs(peak.position_cm1 - verlet) < 1.0


def test_harmonic_oscillator_band_integral_is_the_harmonic_intensity(harmonic_spectrum):
    """Three degenerate modes with |∂μ/∂Q| = DMU_DQ: A = 3 N_A π |∂μ/∂Q|² / (3 c²)."""
    nu, absorption = harmonic_spectrum
    (peak,) = find_peaks(nu, absorption)
    expected = 3 * harmonic_ir_intensity(np.array([DMU_DQ, 0.0, 0.0]))
    assert peak.integrated == pytest.approx(expected, rel=0.03)


def test_harmonic_intensity_formula_in_gaussian_and_ase_units():
    """N_A/(12 ε0 c²)|∂μ/∂Q|² (SI) = N_A π/(3c²)|∂μ/∂Q|² (Gaussian) = ASE's 42.255 km/mol."""
    d = np.array([0.1, 0.0, 0.0])  # e·Å/(√amu·Å)
    e_esu, amu_g, c_cgs = 4.80320471e-10, 1.66053907e-24, 2.99792458e10
    d_cgs = 0.1 * e_esu * 1e-8 / (np.sqrt(amu_g) * 1e-8)  # statC·cm/(√g·cm)
    gaussian_km_per_mol = AVOGADRO * np.pi / (3 * c_cgs**2) * d_cgs**2 * 1e-5
    assert harmonic_ir_intensity(d) == pytest.approx(gaussian_km_per_mol, rel=1e-6)
    ase_factor = 42.255  # km/mol per (D/Å)²/amu, ase.vibrations.Infrared
    assert harmonic_ir_intensity(d) == pytest.approx(
        ase_factor * (0.1 * E_ANGSTROM_TO_DEBYE) ** 2, rel=1e-3)


@pytest.mark.parametrize("name", ["harmonic", "schofield", "kubo"])
def test_quantum_corrections_satisfy_detailed_balance(name):
    """Q(ω) C_cl(ω) must obey C(−ω) = e^{−βħω} C(ω); C_cl is even, so Q(−ω)/Q(ω) = e^{−βħω}."""
    nu = np.array([100.0, 1000.0, 3000.0])
    x = 1.438777 * nu / 300.0  # βħω = hcν̃/kT, hc/k = 1.438777 cm·K
    ratio = quantum_correction(name, -nu, 300.0) / quantum_correction(name, nu, 300.0)
    np.testing.assert_allclose(ratio, np.exp(-x), rtol=1e-5)


@pytest.mark.parametrize("name", CORRECTIONS)
def test_every_correction_is_classical_at_low_frequency(name):
    beta = 1 / (ase.units.kB * 300.0)
    assert absorption_factor(name, np.array([1e-3]), 300.0)[0] == pytest.approx(beta, rel=1e-4)


def test_harmonic_correction_gives_the_classical_line_shape():
    nu = np.linspace(0.0, 4000.0, 9)
    beta = 1 / (ase.units.kB * 300.0)
    np.testing.assert_allclose(absorption_factor("harmonic", nu, 300.0), beta, rtol=1e-12)


def test_block_standard_error_matches_the_scatter_of_a_random_walk():
    """μ = Δt Σ r (r white, σ² per component): the central difference is (r_n + r_{n+1})/2,
    so S = 3σ²Δt cos²(ωΔt/2) / sinc²(ωΔt); the block mean lies within its error band.
    """
    rng = np.random.default_rng(3)
    sigma = 1e-3  # e·Å/fs
    mu = np.cumsum(rng.normal(0.0, sigma, (65536, 3)), axis=0) * DT
    avg = average_lineshape([DipoleSeries("walk", mu[None], DT)],
                            LineShapeSettings(max_lag_fs=50, blocks=16))
    x = wavenumber_to_angular_frequency(avg.grid.wavenumber_cm1) * DT
    expected = 3 * sigma**2 * DT * np.cos(x / 2) ** 2 / np.sinc(x / np.pi) ** 2
    sel = avg.grid.wavenumber_cm1 > 500  # the window's leakage of the zero-frequency mean
    z = (avg.mean[sel] - expected[sel]) / avg.stderr[sel]
    assert avg.n_samples == 16
    assert np.mean(np.abs(z) < 3) > 0.95
    # a white spectrum estimated from 16 blocks scatters by ~1/√(16 × blocks' worth of lags)
    assert np.median(avg.stderr[sel] / expected[sel]) < 0.1


def test_bead_mean_removes_ring_polymer_internal_modes():
    """Two beads = centroid motion (1000 cm⁻¹) ± an internal mode (3000 cm⁻¹) in antiphase."""
    t = np.arange(8192) * DT
    centroid = 0.05 * np.cos(wavenumber_to_angular_frequency(1000.0) * t)
    internal = 0.05 * np.cos(wavenumber_to_angular_frequency(3000.0) * t)
    mu = np.zeros((2, len(t), 3))
    mu[0, :, 0], mu[1, :, 0] = centroid + internal, centroid - internal
    series = [DipoleSeries("pimd", mu, DT)]
    for beads, expected in (("mean", [1000.0]), ("each", [1000.0, 3000.0])):
        nu, s = _lineshape(series, max_lag_fs=1000, beads=beads)
        positions = [p.position_cm1 for p in find_peaks(nu, s, 0.01)]
        np.testing.assert_allclose(positions, expected, atol=2.0)
