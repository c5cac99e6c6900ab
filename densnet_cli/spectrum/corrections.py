"""Quantum correction factors and absolute IR intensities (derivation in docs/spectrum.md).

The gas-phase absorption cross-section of an isotropic molecule (SI units) is

    σ(ω) = π ω (1 − e^{−βħω}) / (3 ε0 ħ c) · C̃_q(ω),   C̃(ω) = (1/2π) ∫ e^{iωt} ⟨μ(0)·μ(t)⟩ dt.

MD gives the classical C̃_cl; a quantum correction factor Q(ω) estimates C̃_q ≈ Q C̃_cl.  With
ω² C̃_cl = C̃ of μ̇ and S(ω) = ∫ e^{iωt} ⟨μ̇(0)·μ̇(t)⟩ dt (:mod:`.lineshape`),

    σ(ω) = F(ω) S(ω) / (6 ε0 c),   F(ω) = (1 − e^{−βħω}) Q(ω) / (ħω).

For the harmonic factor Q = βħω / (1 − e^{−βħω}), F = β exactly: the classical line shape, and
for a harmonic oscillator with a linear dipole ∫ σ dν̃ = |∂μ/∂Q|² / (12 ε0 c²) per molecule,
i.e. N_A π |∂μ/∂Q|² / (3 c²) in Gaussian units, the harmonic intensity in km/mol.
"""

from __future__ import annotations

import numpy as np

from densnet_cli.units import (
    AMU_KG,
    AVOGADRO,
    BOLTZMANN_EV_PER_K,
    E_ANGSTROM_TO_COULOMB_METRE,
    EPSILON0_SI,
    EV_TO_JOULE,
    FS,
    HBAR_EV_FS,
    M2_PER_MOL_TO_KM_PER_MOL_PER_CM1,
    M_PER_MOL_TO_KM_PER_MOL,
    SPEED_OF_LIGHT_SI,
    wavenumber_to_angular_frequency,
)

CORRECTIONS = ("harmonic", "none", "schofield", "kubo")
DEFAULT_CORRECTION = "harmonic"


def _beta_hbar_omega(nu_cm1: np.ndarray, temperature_k: float) -> np.ndarray:
    """The dimensionless βħω at wavenumbers ν̃ (cm⁻¹)."""
    omega = wavenumber_to_angular_frequency(nu_cm1)  # rad/fs
    return HBAR_EV_FS * omega / (BOLTZMANN_EV_PER_K * temperature_k)


def quantum_correction(name: str, nu_cm1: np.ndarray, temperature_k: float) -> np.ndarray:
    """Q(ω) with C̃_quantum ≈ Q C̃_classical, x = βħω.

    - ``none``: 1.
    - ``harmonic``: x / (1 − e^{−x}) (exact for harmonic systems with linear dipoles).
    - ``schofield``: e^{x/2} (the "standard"/Schofield factor; detailed balance only).
    - ``kubo``: 2 / (1 + e^{−x}) (classical C ≈ the symmetrised quantum C).
    """
    x = _beta_hbar_omega(nu_cm1, temperature_k)
    if name == "none":
        return np.ones_like(x)
    if name == "harmonic":
        nonzero = np.where(x == 0, 1.0, x)
        return np.where(x == 0, 1.0, nonzero / -np.expm1(-nonzero))
    if name == "schofield":
        return np.exp(0.5 * x)
    if name == "kubo":
        return 2.0 / (1.0 + np.exp(-x))
    raise ValueError(f"unknown quantum correction {name!r}; choose from {CORRECTIONS}")


def absorption_factor(name: str, nu_cm1: np.ndarray, temperature_k: float) -> np.ndarray:
    """F(ω) = (1 − e^{−βħω}) Q(ω) / ħω in 1/eV; equal to β for every Q as ω → 0."""
    x = _beta_hbar_omega(nu_cm1, temperature_k)
    beta = 1.0 / (BOLTZMANN_EV_PER_K * temperature_k)
    safe = np.maximum(x, 1e-12)
    thermal = np.where(x > 1e-12, -np.expm1(-safe) / safe, 1.0)  # (1 − e^{−x}) / x
    return beta * thermal * quantum_correction(name, nu_cm1, temperature_k)


def absolute_absorption(lineshape: np.ndarray, factor_per_ev: np.ndarray) -> np.ndarray:
    """N_A σ(ν̃) in km mol⁻¹ (cm⁻¹)⁻¹ from S (e·Å/fs)²·fs and F (1/eV): N_A F S / (6 ε0 c).

    Integrating the result over ν̃ in cm⁻¹ gives band intensities in km/mol.
    """
    s_si = lineshape * (E_ANGSTROM_TO_COULOMB_METRE / FS) ** 2 * FS  # (C·m/s)²·s
    f_si = factor_per_ev / EV_TO_JOULE  # 1/J
    sigma = f_si * s_si / (6.0 * EPSILON0_SI * SPEED_OF_LIGHT_SI)  # m² per molecule
    return AVOGADRO * sigma * M2_PER_MOL_TO_KM_PER_MOL_PER_CM1


def harmonic_ir_intensity(dmu_dq: np.ndarray) -> float:
    """Harmonic IR intensity (km/mol) of a mode: N_A |∂μ/∂Q|² / (12 ε0 c²).

    Args:
        dmu_dq: (3,) ∂μ/∂Q in e·Å per (√amu·Å), Q the mass-weighted normal coordinate.
    """
    d_si = np.asarray(dmu_dq, dtype=float) * E_ANGSTROM_TO_COULOMB_METRE / (1e-10
                                                                           * np.sqrt(AMU_KG))
    a_si = AVOGADRO * float(d_si @ d_si) / (12.0 * EPSILON0_SI * SPEED_OF_LIGHT_SI**2)  # m/mol
    return a_si * M_PER_MOL_TO_KM_PER_MOL
