"""``densnet evaluate``: errors of a model on a labelled dataset, as JSON and parity plots."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from densnet_cli import keys
from densnet_cli.data.atomic import save_figure, write_text
from densnet_cli.data.hdf5 import DensityDataset
from densnet_cli.errors import InputError
from densnet_cli.evaluation.density import (
    coulomb_error,
    l1_error_percent,
    l1_error_vs_dft_percent,
)
from densnet_cli.evaluation.predict import Predictor
from densnet_cli.units import E_ANGSTROM_TO_DEBYE


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of ``densnet evaluate``."""

    model: Path
    dataset: Path
    report: Path
    plot: Path | None = None
    density_frames: int = -1  # frames whose real-space density error is integrated (-1: all)
    dft_frames: int = 0  # frames re-run with DFT for the error vs the true density
    batch_size: int = 16
    progress: bool = True


def energy_trained(metadata: dict) -> bool:
    """Whether the model file's training ran an energy-bearing stage.

    A density-only model (``--epochs-energy 0 --epochs-joint 0``) carries an untrained energy
    network: its energies and forces mean nothing.  Files without a training record (built in
    code) count as trained.
    """
    config = metadata.get("training", {}).get("config")
    if config is None:
        return True
    return bool(config.get("epochs_energy", 0) or config.get("epochs_joint", 0))


def evaluate(cfg: EvaluateConfig) -> dict:
    """Predict every frame and compare; writes the JSON report (and the plot).

    For a density-only model the energy and force entries are null (``energy_trained``
    false) and the plot has the dipole panel only.
    """
    predictor = Predictor(cfg.model)
    with_energy = energy_trained(predictor.metadata)
    ds = DensityDataset(cfg.dataset)
    if ds.metadata["settings"]["density_basis"] != predictor.basis.name:
        raise InputError(f"{cfg.dataset} uses density basis "
                         f"'{ds.metadata['settings']['density_basis']}', the model "
                         f"'{predictor.basis.name}'")
    missing = {b.symbol for f in ds for b in ds.basis.for_numbers(f.numbers)} - set(
        predictor.metadata["elements"])
    if missing:
        raise InputError(f"{cfg.dataset} contains elements {sorted(missing)} the model lacks")
    frames = list(ds)
    start = time.perf_counter()
    preds = list(tqdm(predictor.predict_frames(frames, cfg.batch_size), total=len(frames),
                      desc="predict", unit="frame", disable=not cfg.progress))
    seconds_per_frame = (time.perf_counter() - start) / len(frames)
    e_err = np.array([p["energy"] - f.energy for p, f in zip(preds, frames, strict=True)])
    n_atoms = np.array([len(f.numbers) for f in frames])
    f_err = np.concatenate([p["forces"] - f.forces for p, f in zip(preds, frames, strict=True)])
    d_err = np.stack([p["dipole"] - f.dipole for p, f in zip(preds, frames, strict=True)])
    n_density = len(frames) if cfg.density_frames < 0 else min(cfg.density_frames,
                                                                 len(frames))
    flexible = "exponent_scales" in preds[0]
    l1, coulomb = [], []
    for p, f in tqdm(list(zip(preds, frames, strict=True))[:n_density], desc="density",
                     unit="frame", disable=not cfg.progress):
        l1.append(l1_error_percent(ds.basis, f.numbers, f.positions, p["coefficients"],
                                   f.coefficients, p.get("exponent_scales")))
        if not flexible:  # the Coulomb norm here is that of the fixed basis
            coulomb.append(coulomb_error(ds.basis, f.numbers, f.positions, p["coefficients"],
                                         f.coefficients))
    n_dft = min(cfg.dft_frames, len(frames))
    l1_dft = [l1_error_vs_dft_percent(
        ds.basis, f.numbers, f.positions, p["coefficients"], ds.metadata["settings"],
        p.get("exponent_scales"), ds.density_matrix(i) if ds.has_density_matrices else None)
        for i, (p, f) in enumerate(tqdm(list(zip(preds, frames, strict=True))[:n_dft],
                                        desc="density vs DFT", unit="frame",
                                        disable=not cfg.progress))]
    energy_errors = {
        "energy_mae_meV": 1e3 * float(np.abs(e_err).mean()),
        "energy_rmse_meV": 1e3 * float(np.sqrt((e_err**2).mean())),
        "energy_mean_error_meV": 1e3 * float(e_err.mean()),  # signed: model − reference
        "energy_mae_meV_per_atom": 1e3 * float(np.abs(e_err / n_atoms).mean()),
        "force_mae_meV_per_A": 1e3 * float(np.abs(f_err).mean()),
        "force_rmse_meV_per_A": 1e3 * float(np.sqrt((f_err**2).mean())),
    }
    report = {
        "n_frames": len(frames),
        "energy_trained": with_energy,
        **{k: v if with_energy else None for k, v in energy_errors.items()},
        "dipole_mae_D": E_ANGSTROM_TO_DEBYE * float(np.abs(d_err).mean()),
        "dipole_norm_mae_D": E_ANGSTROM_TO_DEBYE * float(np.linalg.norm(d_err, axis=1).mean()),
        "density_l1_percent": float(np.mean(l1)) if l1 else None,
        "density_l1_frames": n_density,
        "density_l1_vs_dft_percent": float(np.mean(l1_dft)) if l1_dft else None,
        "density_l1_vs_dft_frames": len(l1_dft),
        "fit_l1_vs_dft_percent": float(ds.per_frame(keys.FIT_L1_PERCENT).mean()),
        "fit_l1_vs_dft_percent_same_frames": (
            float(ds.per_frame(keys.FIT_L1_PERCENT)[:n_dft].mean()) if n_dft else None),
        "flexible_basis": flexible,
        "coulomb_error_mHa": 1e3 * float(np.mean(coulomb)) if coulomb else None,
        "seconds_per_frame": seconds_per_frame,
        "model": str(cfg.model), "dataset": str(cfg.dataset),
        "units": {"energy": "meV per molecule", "forces": "meV/Å per component",
                  "dipole": "Debye per component", "density_l1": "percent of N"},
    }
    write_text(cfg.report, json.dumps(report, indent=1))
    if cfg.plot is not None:
        _parity_plot(cfg.plot, frames, preds, with_energy)
    return report


def _parity_plot(path: Path, frames, preds, with_energy: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e_ref = np.array([f.energy for f in frames])
    e_pred = np.array([p["energy"] for p in preds])
    shift = e_ref.mean()
    panels = [
        ("energy − mean (eV)", e_ref - shift, e_pred - shift),
        ("force component (eV/Å)", np.concatenate([f.forces.ravel() for f in frames]),
         np.concatenate([p["forces"].ravel() for p in preds])),
        ("dipole component (D)",
         E_ANGSTROM_TO_DEBYE * np.concatenate([f.dipole for f in frames]),
         E_ANGSTROM_TO_DEBYE * np.concatenate([p["dipole"] for p in preds])),
    ]
    if not with_energy:  # an untrained energy network: only the dipole means anything
        panels = panels[2:]
    fig, axes = plt.subplots(1, len(panels), figsize=(13 * len(panels) / 3, 4.2), dpi=110,
                             squeeze=False)
    axes = axes[0]
    for ax, (label, ref, pred) in zip(axes, panels, strict=True):
        ax.plot(ref, pred, ".", ms=3)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.5)
        ax.set(xlabel=f"reference {label}", ylabel=f"DenSNet {label}",
               title=f"MAE {np.abs(pred - ref).mean():.3g}")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
