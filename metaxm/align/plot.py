"""Figures of alignment: a 2-D PCA of the shared latent, and the pretraining curve.

:func:`plot_latent_pca` renders a few states in several modalities, encodes them, and projects
all latents onto their first two principal components (scikit-learn's PCA): one colour per
state, one marker per modality, a thin line joining the renders of one state. Aligned
modalities put the markers of one colour on top of each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metaxm.align.losses import encode
from metaxm.align.pairs import render_pairs, select_rows
from metaxm.envs import make_world
from metaxm.envs.base import Scene
from metaxm.nn.agent import Agent
from metaxm.run.curve import save_run_figure
from metaxm.run.logger import read_metrics

MARKERS = "osD^vP*Xh<>"


def distinct_states(world: Any, n: int, seed: int = 0, device: torch.device | str = "cpu") -> Scene:
    """A scene of ``n`` distinct random states of the world (drawn from a larger batch)."""
    w = make_world(world, max(8 * n, 64), device=device, seed=seed)
    g = torch.Generator(w.device).manual_seed(seed)
    w.set_tasks(w.sample_tasks(w.num_envs, g))
    w.reset()
    scene = w.scene()
    _, first = _first_unique(scene.features)
    return select_rows(scene, first[:n])


def _first_unique(x: Tensor) -> tuple[Tensor, Tensor]:
    """Unique rows of ``x`` and the index of each one's first occurrence, in order of it."""
    _, inverse = torch.unique(x, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), x.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse.cpu(), torch.arange(x.shape[0]), reduce="amin")
    return inverse, first.sort().values


def plot_latent_pca(
    agent: Agent,
    world: Any,
    modalities: Sequence[tuple[str, int]],
    out: str | Path,
    n_states: int = 16,
    seed: int = 0,
    params: Mapping[str, Tensor] | Sequence[Mapping[str, Tensor] | None] | None = None,
    title: str | None = None,
) -> Path:
    """Plot a 2-D PCA of the latents of ``n_states`` states in each of ``modalities``.

    Args:
        agent: the agent whose latent is shown.
        world: the world's config (``spec.world``).
        modalities: two or more ``(family, variant seed)``.
        out: the PNG's path.
        n_states: how many distinct states (one colour each; at most 20 colours are distinct).
        seed: seeds the states and the render noise.
        params: parameters by name to encode with instead of the agent's (e.g. a few-shot
            fit): one mapping for all modalities, or one (or None) per modality.
        title: the figure's title.
    """
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it was
    from sklearn.decomposition import PCA

    device = next(agent.parameters()).device
    scene = distinct_states(world, n_states, seed, device)
    info = make_world(world, 1).scene_info
    g = torch.Generator(device).manual_seed(seed)
    batch = render_pairs(scene, list(modalities), info, g)
    per = list(params) if isinstance(params, Sequence) else [params] * len(modalities)
    with torch.no_grad():
        z = [encode(agent, o, f, p) for o, f, p in zip(batch.obs, batch.families, per)]
    flat = torch.cat(z).double().cpu().numpy()
    xy = PCA(n_components=2, random_state=seed).fit_transform(flat)
    n = scene.batch_size
    xy = xy.reshape(len(modalities), n, 2)
    colours = matplotlib.colormaps["tab20"]
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    for s in range(n):
        ax.plot(xy[:, s, 0], xy[:, s, 1], color=colours(s % 20), lw=0.6, alpha=0.5)
    for m, (family, variant) in enumerate(modalities):
        ax.scatter(
            xy[m, :, 0], xy[m, :, 1], c=[colours(s % 20) for s in range(n)],
            marker=MARKERS[m % len(MARKERS)], s=46, edgecolors="k", linewidths=0.4,
            label=f"{family}:{variant}",
        )  # fmt: skip
    names = info.feature_names or tuple(f"s{i}" for i in range(scene.features.shape[1]))
    ax.set_xlabel(f"PC 1        (a colour is one state: {', '.join(names)})", fontsize=9)
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8, title="modality (marker)", title_fontsize=8, loc="best")
    ax.set_title(title or f"latent PCA: {n} states (colour) x {len(modalities)} modalities")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out)
    fig.savefig(path, dpi=110)
    return path


def plot_pretrain_curve(rundir: str | Path, out: str | Path | None = None) -> Path | None:
    """Plot a pretraining run's loss and retrieval against paired states into ``curve.png``."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it was

    records = [r for r in read_metrics(rundir) if "align_loss" in r]
    if not records:
        return None
    fig = Figure(figsize=(10, 3.5))
    axes = fig.subplots(1, 2)
    axes[0].plot([r["step"] for r in records], [r["align_loss"] for r in records], lw=1.2)
    axes[0].set_ylabel("alignment loss")
    evals = [r for r in records if "top1_min" in r]
    final = Path(rundir) / "representation.json"
    if final.is_file():  # the end-of-run report, at the last step
        evals.append({"step": records[-1]["step"], **json.loads(final.read_text())})
    for key, label in (("top1_min", "top-1, worst pair"), ("top1_mean", "top-1, mean")):
        axes[1].plot([r["step"] for r in evals], [r[key] for r in evals], marker="o", label=label)
    if evals:
        axes[1].plot(
            [r["step"] for r in evals], [r["probe_r2_min"] for r in evals], marker="s",
            label="probe R^2, worst family",
        )  # fmt: skip
    axes[1].set_ylim(0, 1.02)
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("paired states")
        ax.grid(alpha=0.3)
    return save_run_figure(fig, rundir, out)
