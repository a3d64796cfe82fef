"""In-context adaptation of an RL^2 agent: do a trial's later episodes beat its first?

:func:`in_context_study` runs fresh trials of K episodes (the hidden state carried, no
gradients) for every split and family of a spec that the agent can read, and
:func:`summarize_trials` turns each into per-episode means with standard errors and the paired
difference of every later episode from the first (the same trial, the same task and variant), with
a paired t-test (``scipy.stats.ttest_rel``). ``scripts/rl2_trials.py`` is its command line::

    python scripts/rl2_trials.py runs/rl2-hidden --trials 1000 --out runs/rl2-hidden

On worlds with a shortest path (GridNav), ``return_trip`` compares steps of episode 1 and 2 in
the trials where both reached the goal: a hidden goal found in episode 1 and remembered shows
as an episode 2 near the shortest path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from metaxm.meta.trials import TrialResult, run_trial
from metaxm.nn.agent import Agent

if TYPE_CHECKING:
    from metaxm.spec import Spec

EVAL_SEED = 12_345
"""Seeds the fresh trials (training draws from seeds derived from ``spec.seed``)."""


def in_context_study(
    agent: Agent,
    spec: Spec,
    trials: int = 1000,
    episodes: int | None = None,
    seed: int = EVAL_SEED,
    deterministic: bool = False,
) -> dict[str, dict[str, TrialResult]]:
    """Fresh trials of every split and family of ``spec`` that ``agent`` has an encoder for.

    Args:
        agent: a recurrent (RL^2) agent.
        spec: its spec (splits from :class:`~metaxm.sampler.TaskSampler`, the world).
        trials: B trials per split and family, cycling through the split's variants.
        episodes: K episodes per trial; default ``rl2.eval_episodes``.
        seed: seeds tasks, starts, observation noise and actions; the same for every split.
        deterministic: act with the policy's mode instead of sampling it.

    Returns:
        ``{split: {family: TrialResult}}``; families the agent has no encoder for are left
        out, and a split without any. (An RL^2 agent built from its spec has an encoder for
        every family of it, a held-out family's never trained: its trials show in-context
        adaptation through a random encoder.)
    """
    from metaxm.sampler import TaskSampler

    k = spec.rl2.eval_episodes if episodes is None else episodes
    if k < 1 or trials < 1:
        raise ValueError(f"need at least one trial and one episode, got {trials} and {k}")
    out: dict[str, dict[str, TrialResult]] = {}
    for split, pool in TaskSampler(spec).splits.items():
        for family, seeds in pool.items():
            if family not in agent.families:
                continue
            rows = [seeds[i % len(seeds)] for i in range(trials)]
            out.setdefault(split, {})[family] = run_trial(
                agent, spec.world, family, rows, episodes=k, seed=seed,
                deterministic=deterministic,
            )  # fmt: skip
    return out


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(x.mean()), se


def summarize_trials(result: TrialResult) -> dict[str, Any]:
    """Per-episode means and standard errors, and each later episode against the first.

    Returns:
        ``trials``; ``episodes``: per episode index k = 1 .. K, ``return`` / ``length`` (mean,
        s.e.), ``success`` and ``optimal`` (mean shortest path, where the world has one);
        ``vs_first``: for k = 2 .. K, the paired difference return(k) - return(1) (mean, s.e.,
        the t-test's p-value, two-sided) and the share of trials where episode k was shorter;
        ``return_trip`` (K >= 2, worlds with a shortest path): steps of episodes 1 and 2 where
        both reached the goal, and how many trials that is.
    """
    ret = result.returns.double().cpu().numpy()  # (B, K)
    length = result.length.double().cpu().numpy()
    success = result.success.cpu().numpy()
    optimal = result.optimal.double().cpu().numpy()
    b, k = ret.shape
    has_optimal = bool((optimal >= 0).all())
    episodes = []
    for j in range(k):
        row: dict[str, Any] = {
            "return": _mean_se(ret[:, j]),
            "length": _mean_se(length[:, j]),
            "success": float(success[:, j].mean()),
        }
        if has_optimal:
            row["optimal"] = float(optimal[:, j].mean())
        episodes.append(row)
    vs_first = []
    for j in range(1, k):
        diff = ret[:, j] - ret[:, 0]
        p = float(stats.ttest_rel(ret[:, j], ret[:, 0]).pvalue) if diff.std() > 0 else math.nan
        vs_first.append(
            {
                "episode": j + 1,
                "return_diff": _mean_se(diff),
                "p_value": p,
                "shorter": float((length[:, j] < length[:, 0]).mean()),
            }
        )
    out: dict[str, Any] = {"trials": b, "episodes": episodes, "vs_first": vs_first}
    if has_optimal and k >= 2:
        both = success[:, 0] & success[:, 1]
        out["return_trip"] = {
            "trials": int(both.sum()),
            "length": [float(length[both, 0].mean()), float(length[both, 1].mean())]
            if both.any()
            else [math.nan, math.nan],
        }
    return out


def summarize_study(results: dict[str, dict[str, TrialResult]]) -> dict[str, dict[str, Any]]:
    """:func:`summarize_trials` of every split and family, plus ``all`` (the families pooled)
    where a split has more than one."""
    out: dict[str, dict[str, Any]] = {}
    for split, by_family in results.items():
        out[split] = {f: summarize_trials(r) for f, r in by_family.items()}
        if len(by_family) > 1:
            out[split]["all"] = summarize_trials(TrialResult.concat(list(by_family.values())))
    return out


def in_context_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per split and family; steps, success and return by episode, the later
    episodes' return minus the first's (± s.e., p), and the return trip (steps of episodes 1
    and 2 where both reached the goal; empty on worlds without a shortest path)."""
    k = len(next(iter(next(iter(summary.values())).values()))["episodes"])
    eps = " | ".join(f"ep {j + 1}" for j in range(k))
    lines = [
        f"| split | family | trials | steps: {eps} | success: {eps} | return: {eps} "
        "| return - ep 1 (± s.e., p) | goal found in ep 1 and 2: steps (trials) |",
        "|---|---|---|" + "---|" * (3 * k + 2),
    ]
    for split, by_family in summary.items():
        for family, s in by_family.items():
            steps = " | ".join(
                f"{e['length'][0]:.2f} ± {e['length'][1]:.2f}" for e in s["episodes"]
            )
            succ = " | ".join(f"{e['success']:.2f}" for e in s["episodes"])
            rets = " | ".join(f"{e['return'][0]:+.3f}" for e in s["episodes"])
            diffs = "; ".join(
                f"ep {d['episode']}: {d['return_diff'][0]:+.3f} ± {d['return_diff'][1]:.3f} "
                f"(p {d['p_value']:.2g})"
                for d in s["vs_first"]
            )
            trip = s.get("return_trip")
            both = "" if trip is None else (
                f"{trip['length'][0]:.2f} -> {trip['length'][1]:.2f} ({trip['trials']})"
            )  # fmt: skip
            lines.append(
                f"| {split} | {family} | {s['trials']} | {steps} | {succ} | {rets} | {diffs} "
                f"| {both} |"
            )
    return "\n".join(lines)


def plot_in_context(summary: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Return and steps by episode index in the trial (± s.e.), one line per split (families
    pooled where a split has several)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for split, by_family in summary.items():
        s = by_family.get("all") or next(iter(by_family.values()))
        x = np.arange(1, len(s["episodes"]) + 1)
        for ax, key in zip(axes, ("return", "length"), strict=True):
            mean = [e[key][0] for e in s["episodes"]]
            se = [e[key][1] for e in s["episodes"]]
            ax.errorbar(x, mean, yerr=se, marker="o", capsize=3, label=split)
    if "optimal" in s["episodes"][0]:
        axes[1].axhline(s["episodes"][0]["optimal"], color="grey", ls=":", label="shortest path")
    for ax, title in zip(axes, ("return", "steps"), strict=True):
        ax.set_xlabel("episode in the trial")
        ax.set_title(f"{title} by episode (± s.e.)")
        ax.set_xticks(x)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_study(summary: dict[str, dict[str, Any]], out: str | Path) -> None:
    """``in_context.json``, ``in_context.md`` and ``in_context.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "in_context.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "in_context.md").write_text(in_context_table(summary) + "\n")
    plot_in_context(summary, out / "in_context.png")
