"""The learning-curve PNG of a run: return and success against environment steps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from metaxm.run.logger import read_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_learning_curve(rundir: str | Path, out: str | Path | None = None) -> Path | None:
    """Plot ``RUNDIR/metrics.jsonl`` into ``RUNDIR/curve.png`` (or ``out``).

    Returns:
        the PNG's path, or None when the run has no records with a return yet.
    """
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it was

    records = [r for r in read_metrics(rundir) if "return" in r]
    if not records:
        return None
    steps = [r["step"] for r in records]
    panels = [("return", "mean episode return")]
    if any("success" in r for r in records):
        panels.append(("success", "success rate"))
    fig = Figure(figsize=(5 * len(panels), 3.5))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        ax.plot(steps, [r.get(key, float("nan")) for r in records], lw=1.5)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    return save_run_figure(fig, rundir, out)


def save_run_figure(fig: Figure, rundir: str | Path, out: str | Path | None = None) -> Path:
    """Title ``fig`` with the run's name, save it to ``out`` (default ``RUNDIR/curve.png``)
    (a :class:`~matplotlib.figure.Figure`, never registered with pyplot)."""
    fig.suptitle(Path(rundir).name)
    fig.tight_layout()
    path = Path(out) if out is not None else Path(rundir) / "curve.png"
    fig.savefig(path, dpi=100)
    return path
