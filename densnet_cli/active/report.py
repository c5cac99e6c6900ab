"""What each round measured, and the report over all rounds (JSON, Markdown table, PNG).

Per round (``stats.json``): the training set size; the committee's force disagreement over its
ML-MD trajectory (mean, 95th percentile, max, share of frames above the threshold) and how many
replicas had to be stopped; and, on the frames it then labelled with DFT, the committee mean's
*true* errors (energy meV/atom, forces meV/Å, dipole D) next to its predicted disagreement there,
with their correlation — whether the uncertainty ranks the errors.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from densnet_cli.active.committee import CommitteePrediction
from densnet_cli.active.exploration import Trajectory
from densnet_cli.data.atomic import save_figure, write_text
from densnet_cli.data.hdf5 import Frame
from densnet_cli.units import E_ANGSTROM_TO_DEBYE


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"mean": None, "p95": None, "max": None}
    return {"mean": float(np.mean(values)), "p95": float(np.percentile(values, 95)),
            "max": float(np.max(values))}


def trajectory_statistics(trajectory: Trajectory, threshold: float) -> dict:
    """Disagreement statistics over every stored frame of a round's ML-MD."""
    f = trajectory.force_disagreement
    stopped = trajectory.stop_step >= 0
    return {
        "frames": len(f),
        "replicas": trajectory.n_replicas,
        "replicas_stopped": int(stopped.sum()),
        "stops": [{"replica": int(b), "step": int(trajectory.stop_step[b]),
                   "reason": str(trajectory.stop_reason[b])} for b in np.flatnonzero(stopped)],
        "force_disagreement_eV_per_A": {
            **_summary(f), "fraction_above_threshold": float(np.mean(f > threshold))
            if len(f) else None},
        "energy_std_meV_per_atom": _summary(1e3 * trajectory.energy_std_per_atom),
        "dipole_std_D": _summary(E_ANGSTROM_TO_DEBYE * trajectory.dipole_std),
    }


def _correlation(x: np.ndarray, y: np.ndarray) -> tuple[float | None, float | None]:
    """Pearson and Spearman coefficients (None when undefined: < 3 points or constant)."""
    from scipy.stats import pearsonr, spearmanr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    return float(pearsonr(x, y)[0]), float(spearmanr(x, y)[0])


def true_errors(prediction: CommitteePrediction, frames: list[Frame],
                selected_info: list[dict]) -> dict:
    """Errors of the committee mean against DFT on the labelled frames of a round.

    Args:
        prediction: the committee on the labelled frames' positions, in ``frames`` order.
        frames: the labelled frames (DFT energy, forces, dipole).
        selected_info: per labelled frame, its info from the selection file.
    """
    if not frames:
        return {"n_frames": 0}
    n_atoms = np.array([len(f.numbers) for f in frames])
    e_err = (prediction.energy - np.array([f.energy for f in frames])) / n_atoms
    f_err = prediction.forces - np.stack([f.forces for f in frames])
    d_err = prediction.dipole - np.stack([f.dipole for f in frames])
    max_force_error = np.linalg.norm(f_err, axis=-1).max(axis=-1)  # eV/Å, per frame
    pearson, spearman = _correlation(prediction.force_disagreement, max_force_error)
    return {
        "n_frames": len(frames),
        "energy_mae_meV_per_atom": float(1e3 * np.abs(e_err).mean()),
        "force_mae_meV_per_A": float(1e3 * np.abs(f_err).mean()),
        "dipole_mae_D": float(E_ANGSTROM_TO_DEBYE * np.abs(d_err).mean()),
        "max_force_error_eV_per_A": _summary(max_force_error),
        "uncertainty_error_pearson": pearson,
        "uncertainty_error_spearman": spearman,
        "frames": [{**info,
                    "predicted_force_disagreement": float(prediction.force_disagreement[k]),
                    "max_force_error": float(max_force_error[k]),
                    "energy_error_meV_per_atom": float(1e3 * e_err[k])}
                   for k, info in enumerate(selected_info)],
    }


def _fmt(value, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * scale:.3g}"


def _correlation_text(errors: dict) -> str:
    r = errors.get("uncertainty_error_pearson")
    return "–" if r is None else f"{r:.2f}"


def markdown(rounds: list[dict], summary: dict, work: Path) -> str:
    """The report (written into ``work``) as a Markdown table, one row per round."""
    lines = [
        "# Active learning report", "",
        f"Threshold on the force disagreement ({summary['stop_on']}): "
        f"{summary['threshold']:g} eV/Å.  Status: **{summary['status']}**.", "",
        "Disagreement σ_F = max over atoms of the committee std of the force vector, over the "
        "round's ML-MD frames (eV/Å).  True errors: committee mean vs DFT on the frames "
        "labelled that round.  r: Pearson correlation of σ_F and the largest atomic force "
        "error on those frames.", "",
        "| round | training frames | MD frames | stopped replicas | σ_F mean eV/Å | σ_F p95 "
        "| σ_F max | > threshold | labelled | E MAE meV/atom | F MAE meV/Å | μ MAE D | r |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in rounds:
        f = s["md"]["force_disagreement_eV_per_A"]
        t = s["true_errors"]
        lines.append(
            f"| {s['round']} | {s['n_training_frames']} | {s['md']['frames']} | "
            f"{s['md']['replicas_stopped']}/{s['md']['replicas']} | {_fmt(f['mean'])} | "
            f"{_fmt(f['p95'])} | {_fmt(f['max'])} | "
            f"{_fmt(f['fraction_above_threshold'], 100)} % | {t['n_frames']} | "
            f"{_fmt(t.get('energy_mae_meV_per_atom'))} | {_fmt(t.get('force_mae_meV_per_A'))} | "
            f"{_fmt(t.get('dipole_mae_D'))} | {_correlation_text(t)} |")
    models = [os.path.relpath(m, work) for m in summary["final_models"]]
    lines += ["", f"Final committee (paths relative to this report): {', '.join(models)}", ""]
    return "\n".join(lines)


def plot(rounds: list[dict], threshold: float, path: Path) -> None:
    """Disagreement and true force error vs round; predicted vs true error per frame (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    r = [s["round"] for s in rounds]

    def series(get) -> list[float]:
        return [np.nan if (v := get(s)) is None else v for s in rounds]

    for key, style in (("mean", "o-"), ("p95", "s-"), ("max", "^:")):
        left.semilogy(r, series(lambda s, k=key: s["md"]["force_disagreement_eV_per_A"][k]),
                      style, label=f"σ_F {key} (ML-MD)")
    left.semilogy(r, series(lambda s: s["true_errors"].get("max_force_error_eV_per_A",
                                                           {}).get("mean")),
                  "kD--", label="true max atomic force error (labelled)")
    left.semilogy(r, series(lambda s: None if s["true_errors"].get("force_mae_meV_per_A") is None
                            else 1e-3 * s["true_errors"]["force_mae_meV_per_A"]),
                  "kx--", label="true force MAE (labelled)")
    left.axhline(threshold, color="r", lw=0.8, label="threshold")
    left.set(xlabel="round", ylabel="eV/Å", title="uncertainty and true error vs round")
    left.set_xticks(r)
    left.legend(fontsize=7)
    values = [threshold]
    for s in rounds:
        frames = s["true_errors"].get("frames", [])
        x = [f["predicted_force_disagreement"] for f in frames]
        y = [f["max_force_error"] for f in frames]
        right.loglog(x, y, "o", ms=4, label=f"round {s['round']}")
        values += [v for v in x + y if v > 0]
    line = [0.5 * min(values), 2.0 * max(values)]
    right.loglog(line, line, "k:", lw=0.8, label="error = σ_F")
    right.set(xlabel="predicted σ_F (eV/Å)", ylabel="true max atomic force error (eV/Å)",
              title="labelled frames: error vs uncertainty")
    right.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(work: Path, rounds: list[dict], summary: dict) -> None:
    """``report.json``, ``report.md`` and ``report.png`` in ``work`` (each atomically)."""
    write_text(work / "report.json", json.dumps({**summary, "rounds": rounds}, indent=1))
    write_text(work / "report.md", markdown(rounds, summary, work))
    plot(rounds, summary["threshold"], work / "report.png")
