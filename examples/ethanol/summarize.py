"""Compare a fit-density dataset of rMD17 frames with the published rMD17 labels.

    python summarize.py DATASET.h5 REFERENCE.xyz [--plot SUMMARY.png]

Prints the energy offset (one constant, expected: same level of theory), force errors,
the density-fit diagnostics and the time per frame; optionally plots force parity and the
per-frame density errors of the fit and of the SAD prior.
"""

import argparse

import ase.io
import numpy as np

from densnet_cli import keys, units
from densnet_cli.data.hdf5 import DensityDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("reference")
    parser.add_argument("--plot")
    args = parser.parse_args()

    ds = DensityDataset(args.dataset)
    reference = ase.io.read(args.reference, index=":")
    idx = [f.source_index for f in ds]
    kcal = units.EV_TO_KCAL_PER_MOL
    e = np.array([f.energy for f in ds]) * kcal
    e_ref = np.array([reference[i].get_potential_energy() for i in idx])
    f = np.concatenate([fr.forces for fr in ds]) * kcal
    f_ref = np.concatenate([reference[i].get_forces() for i in idx])
    offset = e - e_ref
    fit_l1 = ds.per_frame(keys.FIT_L1_PERCENT)
    sad_l1 = ds.per_frame(keys.SAD_L1_PERCENT)
    dip_err = np.abs(ds.per_frame(keys.FIT_DIPOLE) - ds.per_frame(keys.DIPOLE)).max()
    print(f"frames: {len(ds)} (source indices {idx[0]}..{idx[-1]})")
    print(f"energy offset vs rMD17: {offset.mean():+.4f} kcal/mol, spread "
          f"(max-min) {np.ptp(offset):.4f} kcal/mol")
    print(f"forces vs rMD17: MAE {np.abs(f - f_ref).mean():.5f}, max "
          f"{np.abs(f - f_ref).max():.4f} kcal/mol/Å")
    print(f"density fit L1: mean {fit_l1.mean():.3f} %, max {fit_l1.max():.3f} % of N;"
          f" SAD prior L1: mean {sad_l1.mean():.2f} %")
    print(f"relative Coulomb error: mean {ds.per_frame(keys.FIT_RELATIVE_ERROR).mean():.2e}")
    print(f"max |dipole(fit) - dipole(DFT)|: {dip_err * units.E_ANGSTROM_TO_DEBYE:.1e} D")
    print(f"seconds per frame (DFT + fit): {ds.per_frame(keys.WALL_TIME).mean():.1f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
        ax1.plot(f_ref.ravel(), f.ravel(), ".", ms=3)
        lim = np.abs(f_ref).max() * 1.05
        ax1.plot([-lim, lim], [-lim, lim], "k-", lw=0.5)
        ax1.set(xlabel="rMD17 force (kcal/mol/Å)", ylabel="fit-density force (kcal/mol/Å)",
                title=f"forces, max |Δ| = {np.abs(f - f_ref).max():.3f} kcal/mol/Å")
        ax2.semilogy(idx, sad_l1, "o", label="SAD prior")
        ax2.semilogy(idx, fit_l1, "s", label=f"fit ({ds.basis.name})")
        ax2.set(xlabel="rMD17 frame", ylabel="∫|ρ − ρ_DFT| / N  (%)",
                title="density error on the DFT grid")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
