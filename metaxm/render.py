"""``metaxm render``: one world state seen through every modality family of a spec, in one figure.

The top row shows the state itself (the grid layout and the canonical feature vector); below it
each family of the spec gets a row with a few of its variants, taken from every split the family
appears in (a panel's title says which split and variant seed). Each observation is drawn the
way its family reads: pixels as the image, text as the decoded sentence (token ids when the
family has no decoder), audio as a spectrogram, vectors and sensor banks as bars; a family this
module does not know is drawn by the shape of its observations.

The figure is drawn with matplotlib's Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from metaxm.envs import Scene, SceneInfo, make_world
from metaxm.modalities import Family, Modality, get_family
from metaxm.sampler import TaskSampler
from metaxm.spec import SPLITS, Spec

SPLIT_LABELS = {"train": "train", "heldout_variants": "held-out", "heldout_families": "new family"}
PANEL_W, PANEL_H = 2.6, 2.0  # inches per panel
TITLE_H = 0.45  # inches above the panels for the figure's title
TEXT_WIDTH, TEXT_LINES = 30, 10  # characters per line and lines of a text panel


def modality_rows(spec: Spec, variants: int) -> list[tuple[str, list[tuple[str, int]]]]:
    """``[(family, [(split, variant seed), ...]), ...]``: up to ``variants`` per family.

    A family's held-out variants get at least one panel when there is room for two, so the
    figure shows that they look like their training siblings.
    """
    sampler = TaskSampler(spec)
    rows: dict[str, dict[str, list[int]]] = {}
    for split in SPLITS:
        for family, seeds in sampler.splits[split].items():
            rows.setdefault(family, {})[split] = seeds
    out = []
    for family, by_split in rows.items():
        held = by_split.get("heldout_variants", [])
        n_held = min(len(held), max(1, variants // 3)) if variants >= 2 else 0
        picks: list[tuple[str, int]] = []
        for split, seeds in by_split.items():
            if split != "heldout_variants":
                picks += [(split, s) for s in seeds[: variants - n_held]]
        picks += [("heldout_variants", s) for s in held[:n_held]]
        out.append((family, picks[:variants]))
    return out


def plot_formats() -> set[str]:
    """The image file suffixes matplotlib can write here (``png``, ``pdf``, ``svg``, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def render_spec(spec: Spec, out: str | Path, variants: int = 3, dpi: int = 110) -> Path:
    """Draw the figure for ``spec`` and save it as a PNG at ``out``; returns the path.

    Args:
        spec: the task spec (its world, seed and modality splits).
        out: the PNG path (parent folders are created).
        variants: panels per family.
        dpi: resolution of the PNG.
    """
    if variants < 1:
        raise ValueError(f"variants must be >= 1, got {variants}")
    world = make_world(spec.world, num_envs=1, seed=spec.seed)
    scene, info = world.scene(), world.scene_info
    generator = torch.Generator(world.device).manual_seed(spec.seed)
    rows = modality_rows(spec, variants)
    n_cols = max(variants, 2)
    height = PANEL_H * (len(rows) + 1) + TITLE_H
    fig = Figure(figsize=(PANEL_W * n_cols, height))
    FigureCanvasAgg(fig)
    # fixed margins: matplotlib's constrained layout would double the time the figure takes
    axes = fig.subplots(len(rows) + 1, n_cols, squeeze=False)
    fig.subplots_adjust(
        left=0.8 / (PANEL_W * n_cols),
        right=0.98,
        bottom=0.25 / height,
        top=1.0 - (TITLE_H + 0.25) / height,  # room for the panels' own titles too
        wspace=0.5,
        hspace=0.45,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(
        f"{world.name}: one state in every modality of the spec (seed {spec.seed})",
        y=1.0 - 0.1 / height,
        va="top",
    )
    _draw_layout(axes[0, 0], scene)
    _draw_features(axes[0, 1], scene, info)
    for r, (family_name, picks) in enumerate(rows, start=1):
        family = get_family(family_name)
        for c, (split, seed) in enumerate(picks):
            modality = Modality(family, seed, info)
            obs = modality.render(scene, generator)[0].cpu()
            ax = axes[r, c]
            ax.set_axis_on()
            _draw_observation(ax, family, modality, obs)
            ax.set_title(f"{family_name} {seed} ({SPLIT_LABELS[split]})", fontsize=8)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _draw_layout(ax: Axes, scene: Scene) -> None:
    layout = scene.layout
    ax.set_axis_on()
    ax.set_title("state: agent (blue), goal (green)", fontsize=8)
    _no_ticks(ax)
    if layout is None:
        ax.text(0.5, 0.5, "no layout", ha="center", va="center", transform=ax.transAxes)
        return
    g = layout.size
    grid = np.ones((g, g, 3))
    if layout.walls is not None:
        grid[layout.walls[0].cpu().numpy()] = 0.25
    ax.imshow(grid, interpolation="nearest", extent=(-0.5, g - 0.5, g - 0.5, -0.5))
    ax.set_xticks(np.arange(-0.5, g, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, g, 1), minor=True)
    ax.grid(which="minor", color="0.8", linewidth=0.5)
    if layout.goal is not None:
        gr, gc = layout.goal[0].tolist()
        ax.plot(gc, gr, marker="*", color="tab:green", markersize=14)
    ar, ac = layout.agent[0].tolist()
    ax.plot(ac, ar, marker="o", color="tab:blue", markersize=10)


def _draw_features(ax: Axes, scene: Scene, info: SceneInfo) -> None:
    x = scene.features[0].cpu().numpy()
    names = list(info.feature_names) or [str(i) for i in range(x.shape[0])]
    ax.set_axis_on()
    ax.set_title("state: features", fontsize=8)
    ax.barh(np.arange(x.shape[0]), x, color=np.where(x >= 0, "tab:blue", "tab:red"))
    labels = [f"{name} {v:+.2f}" for name, v in zip(names, x)]
    ax.set_yticks(np.arange(x.shape[0]), labels, fontsize=6, family="monospace")
    ax.axvline(0.0, color="0.5", linewidth=0.5)
    ax.set_xlim(-1.05, 1.05)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=6)


def _draw_observation(ax: Axes, family: Family, modality: Modality, obs: torch.Tensor) -> None:
    kind = _kind(family.name, obs)
    if kind == "text":
        _draw_text(ax, _decode(family, modality, obs))
    elif kind == "image":
        _draw_image(ax, obs, modality.observation_space)
    elif kind == "spectrogram":
        _no_ticks(ax)
        spectrum = obs.float().reshape(-1, obs.shape[-1]).numpy()  # (F, T): (1, F, T) or (F, T)
        ax.imshow(spectrum, aspect="auto", origin="lower", cmap="magma", interpolation="nearest")
        ax.set_xlabel("time", fontsize=6)
        ax.set_ylabel("frequency", fontsize=6)
    else:
        x = obs.float().flatten().numpy()
        ax.bar(np.arange(x.shape[0]), x, color=np.where(x >= 0, "tab:blue", "tab:red"), width=0.8)
        ax.axhline(0.0, color="0.5", linewidth=0.5)
        ax.tick_params(labelsize=6)


def _kind(family: str, obs: torch.Tensor) -> str:
    """How to draw ``obs``: by the built-in family's name, else by its shape and dtype."""
    known = {"text": "text", "pixels": "image", "audio": "spectrogram"}
    if family in known:
        return known[family]
    if obs.ndim == 1:
        return "bars" if obs.is_floating_point() else "text"
    if obs.ndim == 3 and (obs.shape[0] == 3 or obs.shape[-1] == 3):
        return "image"
    return "spectrogram" if obs.squeeze().ndim == 2 else "bars"


def _decode(family: Family, modality: Modality, tokens: torch.Tensor) -> str:
    """The sentence behind ``tokens`` when the family can decode it, else the ids themselves."""
    decode = getattr(family, "decode", None)
    if callable(decode):
        text = decode(tokens, modality.params)  # the text family: one sentence per row
        return str(text[0] if isinstance(text, (list, tuple)) else text)
    return "tokens: " + " ".join(str(int(t)) for t in tokens.flatten())


def _draw_text(ax: Axes, text: str) -> None:
    _no_ticks(ax)
    wrapped = "\n".join(textwrap.wrap(text, width=TEXT_WIDTH)[:TEXT_LINES])
    ax.text(0.04, 0.96, wrapped, va="top", ha="left", fontsize=7, clip_on=True)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)


def _draw_image(ax: Axes, obs: torch.Tensor, space: Any) -> None:
    img = obs.float().numpy()
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = img.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    low, high = np.min(getattr(space, "low", img.min())), np.max(getattr(space, "high", img.max()))
    img = (img - low) / max(float(high - low), 1e-6)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    _no_ticks(ax)
    ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest", cmap="gray")


def _no_ticks(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
