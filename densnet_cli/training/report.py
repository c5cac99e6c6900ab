"""The training log (JSON lines, one per epoch) and the learning-curve plot."""

from __future__ import annotations

import json
from pathlib import Path

from densnet_cli.data.atomic import save_figure, write_text


def write_log(history: list[dict], path: Path) -> None:
    """Rewrite the whole log from the history (atomically; the checkpoint is the truth)."""
    write_text(path, "".join(json.dumps(entry) + "\n" for entry in history))


def plot_learning_curve(history: list[dict], path: Path) -> None:
    """Training and validation loss terms per epoch, one panel per stage (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(entry["stage"] for entry in history))
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.8), squeeze=False,
                             dpi=110)
    for ax, stage in zip(axes[0], names, strict=True):
        rows = [e for e in history if e["stage"] == stage]
        epochs = [e["epoch"] for e in rows]
        for term in rows[0]["val"]:
            line, = ax.semilogy(epochs, [e["val"][term] for e in rows], label=f"val {term}")
            ax.semilogy(epochs, [e["train"].get(term, float("nan")) for e in rows], ":",
                        color=line.get_color())
        ax.set(title=f"stage: {stage} (dotted: train)", xlabel="epoch",
               ylabel="loss term (Ha, (e·Å)², (eV/atom)², (eV/Å)²)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
