"""The representation report of an agent: the metrics of :mod:`metaxm.align.metrics` on fresh
random states rendered in a set of modalities.

:func:`representation_report` draws ``n_states`` random states of the world, renders each in
every family of the pool (a variant drawn per state from the family's pool) and encodes them
with the agent (or with adapted parameters for some families). It reports, as one flat dict of
floats (ready for ``metrics.jsonl`` and ``report.json``):

* ``top1/A->B``, ``top5/A->B``: retrieval of every family B from every family A, with
  ``chance_top1`` and ``chance_top5`` beside them and ``top1_min`` / ``top1_mean`` over pairs;
* ``nmi``, ``ami``: k-means of the latents of *all* families together (4 x 256 points for four
  families) against the true states, k = the number of distinct states: the renders of one
  state in different modalities must fall in one cluster. ``nmi_cell`` / ``ami_cell`` do the
  same against the agent's cell alone (layout worlds), ``ami/F`` per family;
* ``probe_r2/F``: a ridge probe from family F's latent to the true state features, fitted on
  ``probe_states`` other random states (rows equal to a test state are dropped, so the test
  states are held out), scored on the test states; ``probe_r2_min``; and ``probe_r2_shared``,
  one probe fitted on the latents of all families together and scored on all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import permutations
from typing import Any, Literal

import torch
from torch import Tensor

from metaxm.align.losses import encode_views
from metaxm.align.metrics import cluster_scores, cross_modal_retrieval, linear_probe_r2
from metaxm.align.pairs import PairedBatch, PairedSampler, state_ids
from metaxm.align.variants import VariantAdapters
from metaxm.envs.base import Scene
from metaxm.nn.agent import Agent

ClassKind = Literal["state", "cell"]


def state_classes(scene: Scene, kind: ClassKind = "state") -> Tensor:
    """(B,) long true classes: ``state``, the distinct states (:func:`state_ids`); ``cell``, the
    agent's grid cell (layout worlds only)."""
    if kind == "state":
        return state_ids(scene)
    if scene.layout is None:
        raise ValueError("cell classes need a scene with a layout (a grid world)")
    return scene.layout.agent[:, 0] * scene.layout.size + scene.layout.agent[:, 1]


@torch.no_grad()
def batch_latents(
    agent: Agent,
    batch: PairedBatch,
    params: Mapping[str, Tensor] | None = None,
    adapters: VariantAdapters | None = None,
) -> dict[str, Tensor]:
    """``{family: latents (B, d)}`` of every view of ``batch`` (families distinct); ``params``
    and ``adapters`` as in :func:`~metaxm.align.losses.encode_views`."""
    return dict(zip(batch.families, encode_views(agent, batch, params, adapters)))


def representation_report(
    agent: Agent,
    world: Any,
    pool: Mapping[str, Sequence[int]],
    n_states: int = 256,
    probe_states: int = 1024,
    seed: int = 0,
    params: Mapping[str, Tensor] | None = None,
    adapters: VariantAdapters | None = None,
    cluster: bool = True,
) -> dict[str, float]:
    """The metrics listed in the module docstring.

    Args:
        agent: the agent whose latent is scored.
        world: the world's config (``spec.world``).
        pool: ``{family: variant seeds}``; each state is shown in a variant drawn from its
            family's pool (>= 2 families).
        n_states: the test states (retrieval, clustering, probe scores).
        probe_states: the states the probes are fitted on.
        seed: seeds the states, variants and k-means.
        params: adapted parameters by name (e.g. a few-shot fit) used instead of the agent's.
        adapters: per-variant adapters (pretraining's); families they hold are encoded
            through each state's variant adapter.
        cluster: also compute the (slower) k-means scores.
    """
    if len(pool) < 2:
        raise ValueError(f"the report compares >= 2 families, got {list(pool)}")
    device = next(agent.parameters()).device
    families = list(pool)
    test = PairedSampler(world, pool, n_states, views=0, seed=seed, device=device).sample(families)
    fit = PairedSampler(world, pool, probe_states, views=0, seed=seed + 1, device=device)
    train = fit.sample(families)
    z_test = batch_latents(agent, test, params, adapters)
    z_train = batch_latents(agent, train, params, adapters)
    ids = test.state_ids
    out: dict[str, float] = {"n_states": float(n_states)}
    top1 = []
    for a, b in permutations(families, 2):
        r = cross_modal_retrieval(z_test[a], z_test[b], (1, 5), ids)
        out[f"top1/{a}->{b}"], out[f"top5/{a}->{b}"] = r["a2b_top1"], r["a2b_top5"]
        out["chance_top1"], out["chance_top5"] = r["chance_top1"], r["chance_top5"]
        top1.append(r["a2b_top1"])
    out["top1_min"], out["top1_mean"] = min(top1), sum(top1) / len(top1)
    if cluster:
        pooled = torch.cat([z_test[f] for f in families])
        for kind, suffix in (("state", ""), ("cell", "_cell")):
            if kind == "cell" and test.scene.layout is None:
                continue
            labels = state_classes(test.scene, kind).repeat(len(families))
            scores = cluster_scores(pooled, labels, seed=seed)
            out[f"nmi{suffix}"], out[f"ami{suffix}"] = scores["nmi"], scores["ami"]
        for f in families:
            out[f"ami/{f}"] = cluster_scores(z_test[f], ids, seed=seed)["ami"]
    # probes: fitted on states that differ from every test state
    held = ~(train.scene.features[:, None] == test.scene.features[None, :]).all(-1).any(1)
    y_train, y_test = train.scene.features[held], test.scene.features
    r2 = {}
    for f in families:
        r2[f] = linear_probe_r2(z_train[f][held], y_train, z_test[f], y_test)
        out[f"probe_r2/{f}"] = r2[f]
    out["probe_r2_min"] = min(r2.values())
    out["probe_r2_shared"] = linear_probe_r2(
        torch.cat([z_train[f][held] for f in families]),
        y_train.repeat(len(families), 1),
        torch.cat([z_test[f] for f in families]),
        y_test.repeat(len(families), 1),
    )
    out["probe_train_states"] = float(int(held.sum()))
    return out


def format_report(report: Mapping[str, float], families: Sequence[str] | None = None) -> str:
    """A plain-text table of a report: retrieval per pair with chance beside, clusters, probes."""
    if families is None:
        names = [k.split("/")[1] for k in report if k.startswith("top1/")]
        families = list(dict.fromkeys(n.split("->")[0] for n in names))
    c1, c5 = report["chance_top1"], report["chance_top5"]
    n = int(report["n_states"])
    lines = [f"cross-modal retrieval on {n} random states (chance: top-1 {c1:.3f}, top-5 {c5:.3f})"]
    lines.append(f"  {'query -> key':<24}{'top-1':>8}{'top-5':>8}")
    for a, b in permutations(families, 2):
        key = f"{a}->{b}"
        if f"top1/{key}" in report:
            t1, t5 = report[f"top1/{key}"], report[f"top5/{key}"]
            lines.append(f"  {key:<24}{t1:>8.3f}{t5:>8.3f}")
    lines.append(f"  min top-1 {report['top1_min']:.3f}, mean top-1 {report['top1_mean']:.3f}")
    if "nmi" in report:
        lines.append(
            f"k-means of all families' latents: NMI {report['nmi']:.3f}, AMI {report['ami']:.3f} "
            "(classes: states)"
        )
        if "nmi_cell" in report:
            lines.append(
                f"  against the agent's cell: NMI {report['nmi_cell']:.3f}, "
                f"AMI {report['ami_cell']:.3f}"
            )
    probes = ", ".join(f"{f} {report[f'probe_r2/{f}']:.3f}" for f in families)
    lines.append(f"linear probe R^2 on held-out states: {probes}")
    lines.append(f"  one probe for all families: {report['probe_r2_shared']:.3f}")
    return "\n".join(lines)
