"""The spectrum figure: line, standard-error band, peak markers, optional reference overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densnet_cli.data.atomic import save_figure
from densnet_cli.spectrum.peaks import Peak


def plot_spectrum(path: Path, nu: np.ndarray, intensity: np.ndarray, stderr: np.ndarray,
                  peaks: list[Peak], ylabel: str, title: str,
                  reference: tuple[np.ndarray, np.ndarray, str] | None = None) -> None:
    """Write a PNG of the spectrum to ``path`` atomically (temporary file + rename).

    Args:
        path: PNG to write.
        nu: wavenumbers (cm⁻¹).
        intensity: spectrum on ``nu``.
        stderr: standard error band (NaN: not drawn).
        peaks: peaks to mark.
        ylabel: y-axis label with units.
        title: figure title.
        reference: (wavenumbers, intensities, label) drawn scaled to the computed maximum.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.6), dpi=110)
    try:
        ax.plot(nu, intensity, color="C0", lw=1.2, label="MD")
        if np.any(np.isfinite(stderr)):
            ax.fill_between(nu, intensity - stderr, intensity + stderr, color="C0", alpha=0.3,
                            lw=0, label="± block standard error")
        if reference is not None:
            ref_nu, ref_y, label = reference
            inside = (ref_nu >= nu[0]) & (ref_nu <= nu[-1])
            scale = np.max(intensity) / np.max(np.abs(ref_y[inside])) if inside.any() else 1.0
            ax.plot(ref_nu[inside], ref_y[inside] * scale, color="C3", lw=1.0, alpha=0.8,
                    label=f"{label} (scaled)")
        for p in peaks:
            ax.annotate(f"{p.position_cm1:.0f}", (p.position_cm1, p.height),
                        textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
        ax.set_xlim(nu[0], nu[-1])
        ax.set_xlabel("wavenumber (cm$^{-1}$)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, frameon=False)
        fig.tight_layout()
        save_figure(fig, path)
    finally:
        plt.close(fig)
