"""Normal-mode sampling: Boltzmann-distributed harmonic displacements at a temperature.

In mass-weighted normal coordinates Q_k (amu^½ Å) the harmonic energy is ½ Σ ω_k² Q_k², so the
canonical distribution of each coordinate is a Gaussian of zero mean and variance θ_k / ω_k²:

- classical: θ_k = k_B T, so every mode holds ½ k_B T of potential energy (equipartition);
- quantum (the Wigner distribution of the harmonic oscillator's thermal state):
  θ_k = (ħω_k / 2) coth(ħω_k / 2k_B T), which is ħω_k / 2 (zero-point motion) at 0 K and tends
  to k_B T at high temperature.

A sample is x = x₀ + M^(-1/2) Σ_k Q_k e_k.  Modes below ``min_frequency`` (including imaginary
ones) are not displaced at all: a harmonic amplitude for a soft torsion or a saddle direction is
meaningless (it diverges as ω → 0), and conformers are sampled by starting from each of them.
A sample with two atoms closer than ``min_distance_factor`` × the sum of their covalent radii is
rejected and drawn again; the number of redraws is reported (rejection cuts the far tail of the
Gaussian, so a large count means the sample is no longer the harmonic distribution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase.data import covalent_radii

from densnet_cli.errors import DenSNetError, InputError
from densnet_cli.sampling.normal_modes import NormalModes
from densnet_cli.units import BOLTZMANN_EV_PER_K, HBAR_EV_FS, wavenumber_to_angular_frequency

MIN_FREQUENCY_CM1 = 50.0  # modes below this (and imaginary ones) are not displaced
MIN_DISTANCE_FACTOR = 0.5  # reject a sample with a pair closer than this × (r_cov,i + r_cov,j)
MAX_DRAWS_PER_SAMPLE = 100  # give up when this many draws per requested sample are not enough


def mode_energies(frequencies_cm1: np.ndarray, temperature: float,
                  quantum: bool = False) -> np.ndarray:
    """θ_k (eV): twice the mean potential energy of each harmonic mode at ``temperature`` (K).

    Classical: k_B T for every mode.  Quantum: (ħω/2) coth(ħω/2k_B T), ħω/2 at 0 K.
    """
    frequencies = np.asarray(frequencies_cm1, dtype=float)
    kt = BOLTZMANN_EV_PER_K * temperature
    if not quantum:
        return np.full(frequencies.shape, kt)
    half_hbar_omega = 0.5 * HBAR_EV_FS * wavenumber_to_angular_frequency(frequencies)
    if kt == 0:
        return half_hbar_omega
    return half_hbar_omega / np.tanh(half_hbar_omega / kt)


@dataclass(frozen=True)
class Samples:
    """Geometries drawn from the harmonic distribution of one set of normal modes."""

    positions: np.ndarray  # (s, n, 3) Å
    harmonic_energy: np.ndarray  # (s,) eV, ½ Σ_k ω_k² Q_k² over the displaced modes
    n_rejected: int  # draws rejected (and redrawn) for overlapping atoms
    displaced: np.ndarray  # (m,) bool, which modes were displaced (frequency ≥ min_frequency)


def _pair_thresholds(numbers: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Atom pairs (i < j) and their shortest allowed distance (Å)."""
    pairs = np.triu_indices(len(numbers), 1)
    radii = covalent_radii[numbers]
    return np.stack(pairs), factor * (radii[pairs[0]] + radii[pairs[1]])


def draw_samples(modes: NormalModes, n_samples: int, temperature: float,
                 rng: np.random.Generator, quantum: bool = False,
                 min_frequency: float = MIN_FREQUENCY_CM1,
                 min_distance_factor: float = MIN_DISTANCE_FACTOR) -> Samples:
    """Draw ``n_samples`` geometries around ``modes.positions`` at ``temperature`` (K).

    Raises:
        InputError: for a negative temperature or sample count, or ``min_frequency`` ≤ 0.
        DenSNetError: if more than :data:`MAX_DRAWS_PER_SAMPLE` draws per sample are needed to
            avoid overlapping atoms (the temperature is too high for harmonic sampling).
    """
    if not temperature >= 0:
        raise InputError(f"the temperature must be ≥ 0 K, not {temperature}")
    if n_samples < 0:
        raise InputError(f"the number of samples must be ≥ 0, not {n_samples}")
    if not min_frequency > 0:
        raise InputError(f"the lowest frequency sampled must be > 0 cm⁻¹, not {min_frequency}")
    displaced = modes.frequencies_cm1 >= min_frequency
    omega2 = modes.eigenvalues[displaced]
    sigma = np.sqrt(mode_energies(modes.frequencies_cm1[displaced], temperature, quantum)
                    / omega2)  # amu^½ Å
    cartesian = modes.modes[displaced] / np.sqrt(modes.masses)[None, :, None]  # (k, n, 3)
    (i, j), shortest = _pair_thresholds(modes.numbers, min_distance_factor)

    xs, qs = [np.zeros((0, *modes.positions.shape))], [np.zeros((0, len(sigma)))]
    n_accepted = n_rejected = 0
    while n_accepted < n_samples:
        if n_accepted + n_rejected >= MAX_DRAWS_PER_SAMPLE * n_samples:
            raise DenSNetError(
                f"after {n_accepted + n_rejected} draws only {n_accepted} of {n_samples} samples "
                f"at {temperature:g} K keep every pair of atoms apart (≥ {min_distance_factor:g}"
                f" × the sum of their covalent radii): lower the temperature")
        q = rng.standard_normal((n_samples - n_accepted, len(sigma))) * sigma
        x = modes.positions + np.einsum("bk,kna->bna", q, cartesian)
        ok = np.all(np.linalg.norm(x[:, j] - x[:, i], axis=-1) >= shortest, axis=1)
        xs.append(x[ok])
        qs.append(q[ok])
        n_accepted += int(ok.sum())
        n_rejected += int((~ok).sum())
    q_all = np.concatenate(qs)
    return Samples(positions=np.concatenate(xs),
                   harmonic_energy=0.5 * (omega2 * q_all**2).sum(axis=1),
                   n_rejected=n_rejected, displaced=displaced)
