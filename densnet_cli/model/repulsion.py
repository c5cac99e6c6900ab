"""Short-range nuclear repulsion (ZBL), switched off at (a multiple of) bonding distances.

A network trained on thermal geometries has never seen two nuclei 0.5 Å apart, and nothing in it
forbids an attractive "hole" there: MD that strays into it collapses (seen with the 24-frame demo
model, an O–H bond shrinking to 0.4 Å).  As in MACE's ``ZBLBasis`` and NequIP's ``ZBL`` pair
potential, the model adds the Ziegler–Biersack–Littmark universal screened Coulomb repulsion

    E_ij = Z_i Z_j e² / (4πε₀ r) · φ(r / a_ij) · f(r / r_ij)
    a_ij = 0.8854 a₀ / (Z_i^0.23 + Z_j^0.23)     (0.8854 a₀ = 0.46853 Å)

    φ(x) = 0.18175 e^(−3.19980 x) + 0.50986 e^(−0.94229 x) + 0.28022 e^(−0.40290 x)
           + 0.02817 e^(−0.20162 x)

for every pair of atoms, with the polynomial envelope (p = 6)
f(x) = 1 − 28 x⁶ + 48 x⁷ − 21 x⁸ for x < 1, else 0, which with its first and second derivatives
vanishes at r_ij = s · (r_cov,i + r_cov,j) (ASE's covalent radii; the sum is about a bond
length).  With s = 1 (MACE's choice, the default) the term still acts inside thermal bond
stretches: O–H r_max 0.97 Å is the equilibrium length, aromatic C–C 1.52 Å and C–S 1.81 Å lie
beyond theirs.  Resorcinol's energy network retrained on a fixed density with s = 0.7
(``--repulsion-radius-scale``) moved its O–H stretches from 3394/3361 to 3699/3688 cm⁻¹ (DFT
3703/3705) and the mean harmonic error from 32.1 to 14.7 cm⁻¹ (bench/results/
harmonic_resorcinol_zbl07.md); the wall at 0.4 Å O–H is still ~40 eV.
At thermal geometries the term is a fraction of an eV that the energy network learns around;
below it grows to tens of eV.  Reference: J. F. Ziegler, J. P. Biersack, U. Littmark, The
Stopping and Range of Ions in Solids (Pergamon, 1985).

Units: Å, eV.
"""

from __future__ import annotations

import torch
from ase.data import covalent_radii

from densnet_cli.units import BOHR_TO_ANGSTROM

COULOMB_EV_ANGSTROM = 14.399645  # e² / (4πε₀) in eV·Å
ZBL_LENGTH = 0.8854 * BOHR_TO_ANGSTROM  # Å, the universal screening length
ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)


def envelope(x: torch.Tensor) -> torch.Tensor:
    """1 − 28x⁶ + 48x⁷ − 21x⁸ on [0, 1), 0 beyond: f(1) = f′(1) = f″(1) = 0.

    Evaluated as (1 − x)³ (1 + 3x + 6x² + 10x³ + 15x⁴ + 21x⁵), the same polynomial without the
    cancellation of terms of size ~20 near x = 1 (in float32 that cost 1e-4 eV/Å in forces).
    """
    u = (1.0 - x).clamp(min=0.0)
    return u**3 * (1.0 + x * (3.0 + x * (6.0 + x * (10.0 + x * (15.0 + x * 21.0)))))


def zbl_pair_energy(z_i: torch.Tensor, z_j: torch.Tensor, r: torch.Tensor,
                    r_max: torch.Tensor) -> torch.Tensor:
    """ZBL energy (eV) of pairs with nuclear charges ``z_i``, ``z_j`` at distance ``r`` (Å)."""
    a = ZBL_LENGTH / (z_i**0.23 + z_j**0.23)
    x = r / a
    phi = sum(c * torch.exp(-d * x) for c, d in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS,
                                                      strict=True))
    return COULOMB_EV_ANGSTROM * z_i * z_j / r * phi * envelope(r / r_max)


class ZBLRepulsion(torch.nn.Module):
    """Sum of :func:`zbl_pair_energy` over the pairs of the radius graph, per molecule."""

    radii: torch.Tensor  # (119,) Å, covalent radius by atomic number (a buffer)

    def __init__(self, cutoff: float, radius_scale: float = 1.0, max_atomic_number: int = 118):
        """``cutoff``: the radius graph's (Å); no pair's envelope reaches beyond it.

        ``radius_scale``: the envelope ends at ``radius_scale × (r_cov,i + r_cov,j)``.
        """
        super().__init__()
        self.cutoff = cutoff
        self.radius_scale = radius_scale
        # torch.tensor copies: torch.as_tensor would share ASE's global array, and
        # load_state_dict would then write a saved (say float32-rounded) copy into it.
        self.register_buffer("radii", torch.tensor(covalent_radii[:max_atomic_number + 1],
                                                   dtype=torch.float64))

    def forward(self, numbers: torch.Tensor, positions: torch.Tensor, molecule: torch.Tensor,
                src: torch.Tensor, dst: torch.Tensor, n_molecules: int) -> torch.Tensor:
        """(M,) repulsion energies; ``src``, ``dst``: directed edges (each pair twice)."""
        z = numbers.to(positions.dtype)
        r = (positions[dst] - positions[src]).norm(dim=-1)
        radii = self.radii.to(positions.dtype)
        r_max = (self.radius_scale * (radii[numbers[src]] + radii[numbers[dst]])
                 ).clamp(max=self.cutoff)
        pair = 0.5 * zbl_pair_energy(z[src], z[dst], r, r_max)  # each pair appears twice
        return torch.zeros(n_molecules, dtype=positions.dtype, device=positions.device
                           ).index_add(0, molecule[src], pair)
