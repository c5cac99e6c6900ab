"""Comparing two harmonic analyses of one molecule: mode matching, tables, spectra.

:func:`compare_modes` matches the modes of two :class:`~densnet_cli.analysis.harmonic.
HarmonicResult` objects by the largest overlap of their normal-mode vectors (Hungarian
assignment, after rotating one geometry onto the other) and tabulates frequency differences and
intensity ratios; :func:`write_comparison` writes them as Markdown, JSON and a stick-spectrum
plot next to experimental bands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from densnet_cli.analysis.harmonic import HarmonicResult
from densnet_cli.data.atomic import save_figure, write_text
from densnet_cli.errors import InputError

INTENSE_KM_MOL = 1.0  # intensity ratios are summarised over reference modes at least this strong
LINE_FWHM_CM1 = 10.0  # Lorentzian full width of each line in the plot


def _alignment(mobile: np.ndarray, target: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """The rotation R (3, 3) that best maps centred ``mobile`` onto ``target`` (Kabsch)."""
    p = mobile - masses @ mobile / masses.sum()
    q = target - masses @ target / masses.sum()
    u, _, vt = np.linalg.svd(p.T @ (masses[:, None] * q))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def compare_modes(model: HarmonicResult, reference: HarmonicResult) -> list[dict]:
    """Match the model's normal modes to the reference's and tabulate the differences.

    The model geometry is first rotated onto the reference one (mass-weighted Kabsch), then
    modes are paired by the Hungarian assignment that maximises the summed |overlap| of their
    mass-weighted normal-mode vectors.

    Returns:
        One row per reference mode, ascending in frequency: ``mode`` (1-based),
        ``reference_cm1``, ``model_cm1``, ``difference_cm1`` (model − reference),
        ``reference_km_mol``, ``model_km_mol``, ``intensity_ratio`` (model / reference; NaN
        if the reference intensity is 0) and ``overlap`` (|⟨reference|model⟩|, 1 = identical).

    Raises:
        InputError: if the two analyses are not of the same atoms in the same order.
    """
    if not np.array_equal(model.numbers, reference.numbers):
        raise InputError("the two harmonic analyses are of different molecules (or of the "
                         "same atoms in a different order)")
    if len(model.modes) != len(reference.modes):
        raise InputError(f"the model has {len(model.modes)} vibrations, the reference "
                         f"{len(reference.modes)}: one geometry is linear, the other not")
    rotation = _alignment(model.positions, reference.positions, reference.masses)
    model_modes = (model.modes @ rotation.T).reshape(len(model.modes), -1)
    overlap = np.abs(reference.modes.reshape(len(reference.modes), -1) @ model_modes.T)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    table = []
    for i, j in zip(rows, cols, strict=True):
        ref_i, model_i = reference.intensities_km_mol[i], model.intensities_km_mol[j]
        table.append({
            "mode": int(i) + 1,
            "reference_cm1": float(reference.frequencies_cm1[i]),
            "model_cm1": float(model.frequencies_cm1[j]),
            "difference_cm1": float(model.frequencies_cm1[j] - reference.frequencies_cm1[i]),
            "reference_km_mol": float(ref_i), "model_km_mol": float(model_i),
            "intensity_ratio": float(model_i / ref_i) if ref_i > 0 else math.nan,
            "overlap": float(overlap[i, j]),
        })
    return table


def lorentzian_spectrum(nu_cm1: np.ndarray, frequencies_cm1: np.ndarray,
                        intensities_km_mol: np.ndarray, fwhm_cm1: float = LINE_FWHM_CM1
                        ) -> np.ndarray:
    """Σ_k I_k L(ν̃ − ν̃_k) in km mol⁻¹ (cm⁻¹)⁻¹, L a unit-area Lorentzian of full width fwhm."""
    gamma = 0.5 * fwhm_cm1
    offset = nu_cm1[:, None] - frequencies_cm1[None, :]
    return (intensities_km_mol * (gamma / np.pi) / (offset**2 + gamma**2)).sum(axis=1)


def summarise(rows: list[dict]) -> dict:
    """Frequency errors (cm⁻¹) and intensity ratios over the rows of :func:`compare_modes`."""
    diff = np.array([r["difference_cm1"] for r in rows])
    ratios = np.array([r["intensity_ratio"] for r in rows
                       if r["reference_km_mol"] >= INTENSE_KM_MOL])
    worst = int(np.argmax(np.abs(diff)))
    return {
        "modes": len(rows),
        "mean_difference_cm1": float(diff.mean()),
        "mean_absolute_difference_cm1": float(np.abs(diff).mean()),
        "rms_difference_cm1": float(np.sqrt((diff**2).mean())),
        "max_absolute_difference_cm1": float(abs(diff[worst])),
        "max_difference_mode": rows[worst]["mode"],
        "intense_modes": len(ratios),
        "median_intensity_ratio": float(np.median(ratios)) if len(ratios) else math.nan,
        "geometric_mean_intensity_ratio": (float(np.exp(np.log(ratios).mean()))
                                           if len(ratios) and np.all(ratios > 0) else math.nan),
        "min_overlap": float(min(r["overlap"] for r in rows)),
    }


@dataclass(frozen=True)
class Band:
    """An experimental band to show next to the computed modes."""

    wavenumber_cm1: float
    label: str
    note: str = ""


@dataclass(frozen=True)
class ComparisonReport:
    """Everything :func:`write_comparison` writes; ``names`` are (model, reference)."""

    model: HarmonicResult
    reference: HarmonicResult
    names: tuple[str, str] = ("DenSNet", "PySCF")
    experiment: Sequence[Band] = ()
    experiment_source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _markdown(report: ComparisonReport, rows: list[dict], summary: dict) -> str:
    model_name, ref_name = report.names
    lines = [f"# Harmonic frequencies and IR intensities: {model_name} vs {ref_name}", ""]
    lines += [f"- {key}: {value}" for key, value in report.metadata.items()]
    for name, result in ((model_name, report.model), (ref_name, report.reference)):
        lines.append(f"- {name}: largest residual force {result.residual_force:.1e} eV/Å; "
                     f"rigid-motion block {np.abs(result.rigid_cm1).max():.1f} cm⁻¹ at most "
                     f"(removed before diagonalising)")
    lines += ["", f"Over {summary['modes']} modes, {model_name} − {ref_name}: mean "
              f"{summary['mean_difference_cm1']:+.1f} cm⁻¹, mean absolute "
              f"{summary['mean_absolute_difference_cm1']:.1f} cm⁻¹, RMS "
              f"{summary['rms_difference_cm1']:.1f} cm⁻¹, largest "
              f"{summary['max_absolute_difference_cm1']:.1f} cm⁻¹ (mode "
              f"{summary['max_difference_mode']}). Intensity ratio {model_name}/{ref_name} over "
              f"the {summary['intense_modes']} modes ≥ {INTENSE_KM_MOL:g} km/mol: median "
              f"{summary['median_intensity_ratio']:.2f}, geometric mean "
              f"{summary['geometric_mean_intensity_ratio']:.2f}. Smallest mode overlap "
              f"{summary['min_overlap']:.2f}.", "",
              f"| mode | {ref_name} cm⁻¹ | {model_name} cm⁻¹ | Δ cm⁻¹ | {ref_name} km/mol | "
              f"{model_name} km/mol | ratio | overlap |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['reference_cm1']:.1f} | {r['model_cm1']:.1f} | "
                     f"{r['difference_cm1']:+.1f} | {r['reference_km_mol']:.2f} | "
                     f"{r['model_km_mol']:.2f} | {r['intensity_ratio']:.2f} | "
                     f"{r['overlap']:.2f} |")
    if report.experiment:
        lines += ["", "## Experimental fundamentals (anharmonic; harmonic frequencies lie "
                  "higher, by a few % for X–H stretches)", "",
                  f"Source: {report.experiment_source}", "", "| cm⁻¹ | band | note |",
                  "|---|---|---|"]
        lines += [f"| {b.wavenumber_cm1:g} | {b.label} | {b.note} |" for b in report.experiment]
    return "\n".join(lines) + "\n"


def _plot(path: Path, report: ComparisonReport) -> None:
    """Mirror plot: the model's broadened spectrum up, the reference's down, sticks in both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(report.model.frequencies_cm1.max(), report.reference.frequencies_cm1.max())
    nu = np.linspace(0.0, 100.0 * math.ceil(1.08 * top / 100.0), 4000)
    stick_scale = 2.0 / (math.pi * LINE_FWHM_CM1)  # stick height = an isolated line's peak
    fig, ax = plt.subplots(figsize=(8.0, 4.0), dpi=110)
    try:
        for sign, result, name, colour in ((1, report.model, report.names[0], "C0"),
                                           (-1, report.reference, report.names[1], "C3")):
            ax.plot(nu, sign * lorentzian_spectrum(nu, result.frequencies_cm1,
                                                   result.intensities_km_mol),
                    color=colour, lw=1.0, label=name)
            ax.vlines(result.frequencies_cm1, 0.0,
                      sign * stick_scale * result.intensities_km_mol, color=colour, lw=0.8)
        for i, band in enumerate(report.experiment):
            ax.axvline(band.wavenumber_cm1, color="0.5", lw=0.6, ls=":",
                       label="experiment (fundamentals)" if i == 0 else None)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xlim(nu[0], nu[-1])
        ax.set_xlabel("wavenumber (cm$^{-1}$)")
        ax.set_ylabel(f"km mol$^{{-1}}$ (cm$^{{-1}}$)$^{{-1}}$, FWHM {LINE_FWHM_CM1:g} cm$^{{-1}}$")
        ax.set_title(f"harmonic IR: {report.names[0]} (up) vs {report.names[1]} (down)",
                     fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)


def write_comparison(prefix: str | Path, report: ComparisonReport) -> dict:
    """Write ``prefix.md`` (table), ``prefix.json`` (everything) and ``prefix.png`` (spectra).

    Returns:
        The summary of :func:`summarise`.
    """
    prefix = Path(prefix)
    rows = compare_modes(report.model, report.reference)
    summary = summarise(rows)
    document = {
        "names": {"model": report.names[0], "reference": report.names[1]},
        "metadata": report.metadata,
        "units": {"frequency": "cm^-1 (imaginary as negative)", "intensity": "km/mol",
                  "positions": "angstrom", "hessian": "eV/angstrom^2", "masses": "amu",
                  "dipole_derivatives": "e", "dmu_dq": "e/sqrt(amu)"},
        "summary": summary,
        "modes": rows,
        "model": report.model.to_dict(),
        "reference": report.reference.to_dict(),
        "experiment": {"source": report.experiment_source,
                       "bands": [b.__dict__ for b in report.experiment]},
    }
    write_text(prefix.with_name(prefix.name + ".md"), _markdown(report, rows, summary))
    write_text(prefix.with_name(prefix.name + ".json"),
               json.dumps(_json_safe(document), indent=1) + "\n")
    _plot(prefix.with_name(prefix.name + ".png"), report)
    return summary
