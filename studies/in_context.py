"""In-context adaptation of an RL^2 agent: do a trial's later episodes beat its first?

:func:`in_context_study` runs fresh trials of K episodes (the hidden state carried, no
gradients) for every split and family of a spec that the agent can read, and
:func:`summarize_trials` turns each into per-episode means with standard errors and the
difference of every later episode's return from the first's in the same trial (the same task
and variant). ``scripts/rl2_trials.py`` is its command line::

    python scripts/rl2_trials.py runs/rl2-hidden --trials 1000 --out runs/rl2-hidden

**Which test.** The trials of a split cycle through its few variants, so trials of one variant
are not independent draws of "a new variant". The test that speaks for new variants is the
one across variants (``by_variant``): each variant's mean difference, then a one-sample t-test
of those means against 0 (``scipy.stats.ttest_1samp``), with how many variants improved. The
paired t-test over all trials (``scipy.stats.ttest_rel``) is kept as ``p_value``: it speaks for
these variants only. Neither is corrected for the several episodes, splits and families tested.

On worlds with a shortest path (GridNav), ``after_found`` follows the trials whose episode 1
reached the goal into episode 2 (its steps whether or not it reached the goal again): a hidden
goal found in episode 1 and remembered shows as an episode 2 near the shortest path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import stats

from metaxm.meta.trial_eval import Rewire, TrialResult, run_trial
from metaxm.nn.agent import Agent

if TYPE_CHECKING:
    from metaxm.spec import Spec

EVAL_SEED = 12_345
"""Seeds the fresh trials (training draws from seeds derived from ``spec.seed``)."""


@dataclass
class FamilyTrials:
    """The trials of one family in one split.

    Attributes:
        result: per trial and episode, (B, K) each.
        variants: the variant of each trial (B labels), the unit of the across-variant test.
    """

    result: TrialResult
    variants: list[str]

    @classmethod
    def concat(cls, parts: list[FamilyTrials]) -> FamilyTrials:
        return cls(
            TrialResult.concat([p.result for p in parts]), sum((p.variants for p in parts), [])
        )


def in_context_study(
    agent: Agent,
    spec: Spec,
    trials: int = 1000,
    episodes: int | None = None,
    seed: int = EVAL_SEED,
    deterministic: bool = False,
    rewire: Literal["between", "within"] | None = None,
    rewire_at: int = 3,
    blind: bool = False,
) -> dict[str, dict[str, FamilyTrials]]:
    """Fresh trials of every split and family of ``spec`` that ``agent`` has an encoder for.

    Args:
        agent: a recurrent (RL^2) agent.
        spec: its spec (splits from :class:`~metaxm.sampler.TaskSampler`, the world).
        trials: B trials per split and family, cycling through the split's variants.
        episodes: K episodes per trial; default ``rl2.eval_episodes``.
        seed: seeds tasks, starts, observation noise and actions; the same for every split.
        deterministic: act with the policy's mode instead of sampling it.
        rewire: re-draw each trial's variant from its split's pool of that family ``between``
            episodes or ``within`` them, at step ``rewire_at``
            (:class:`~metaxm.meta.trial_eval.Rewire`): a gain that survives a new wiring between
            episodes is memory of the task, read through a wiring the agent meets afresh.
        blind: the agent sees zeros instead of the observations (a control: what it achieves
            without reading the modality; :func:`~metaxm.meta.trial_eval.run_trials`).

    Returns:
        ``{split: {family: FamilyTrials}}``; families the agent has no encoder for are left
        out, and a split without any. (An RL^2 agent built from its spec has an encoder for
        every family of it, a held-out family's never trained: its trials show in-context
        adaptation through a random encoder.)
    """
    from metaxm.sampler import TaskSampler

    k = spec.rl2.eval_episodes if episodes is None else episodes
    if k < 1 or trials < 1:
        raise ValueError(f"need at least one trial and one episode, got {trials} and {k}")
    out: dict[str, dict[str, FamilyTrials]] = {}
    for split, pool in TaskSampler(spec).splits.items():
        for family, seeds in pool.items():
            if family not in agent.families:
                continue
            rows = [seeds[i % len(seeds)] for i in range(trials)]
            change = None
            if rewire is not None:
                change = Rewire(rewire, tuple(seeds), at=rewire_at, seed=seed + 1)
            result = run_trial(
                agent, spec.world, family, rows, episodes=k, seed=seed,
                deterministic=deterministic, rewire=change, blind=blind,
            )  # fmt: skip
            out.setdefault(split, {})[family] = FamilyTrials(
                result, [f"{family}:{v}" for v in rows]
            )
    return out


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    """The mean and its standard error (``scipy.stats.sem``; NaN for a single value)."""
    return float(x.mean()), float(stats.sem(x)) if len(x) > 1 else math.nan


def _wilson(hits: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of a success rate (``scipy.stats.binomtest``)."""
    ci = stats.binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def _t_p(x: np.ndarray) -> float:
    """Two-sided one-sample t-test of ``x`` against 0: NaN where every value is 0 (nothing to
    test), 0 where every value is the same non-zero number (no spread: the t statistic is
    infinite, which scipy computes only with a precision warning)."""
    if len(x) < 2 or not np.any(x != 0):
        return math.nan
    if np.all(x == x[0]):
        return 0.0
    return float(stats.ttest_1samp(x, 0.0).pvalue)


def _by_variant(diff: np.ndarray, variants: list[str]) -> dict[str, Any]:
    """The across-variant test of a per-trial difference (see the module docstring)."""
    labels = np.asarray(variants)
    means = np.array([diff[labels == v].mean() for v in dict.fromkeys(variants)])
    return {
        "variants": len(means),
        "return_diff": _mean_se(means),
        "improved": int((means > 0).sum()),
        "p_value": _t_p(means),
    }


def summarize_trials(result: TrialResult, variants: list[str] | None = None) -> dict[str, Any]:
    """Per-episode means and standard errors, and each later episode against the first.

    Args:
        result: B trials of K episodes.
        variants: the variant label of each trial; with it, ``by_variant`` is added.

    Returns:
        ``trials``; ``episodes``: per episode index k = 1 .. K, ``return`` / ``length`` (mean,
        s.e.), ``success`` with ``success_ci`` (its 95% Wilson interval over trials) and
        ``optimal`` (mean shortest path, where the world has one); ``vs_first``: for k = 2 .. K,
        return(k) - return(1) per trial (mean, s.e., the paired t-test's ``p_value``), the share
        of trials where episode k was ``shorter`` and, with ``variants``, ``by_variant`` (the
        across-variant test: ``variants``, ``return_diff`` (mean, s.e. over variants),
        ``improved`` (variants whose mean difference is > 0), ``p_value``); ``after_found``
        (K >= 2, worlds with a shortest path): the trials whose episode 1 reached the goal, their
        steps in episodes 1 and 2 and episode 2's success; ``after_missed`` (K >= 2): the trials
        whose episode 1 failed and episode 2's success.
    """
    ret = result.returns.double().cpu().numpy()  # (B, K)
    length = result.length.double().cpu().numpy()
    success = result.success.cpu().numpy()
    optimal = result.optimal.double().cpu().numpy()
    b, k = ret.shape
    if variants is not None and len(variants) != b:
        raise ValueError(f"{len(variants)} variant labels for {b} trials")
    has_optimal = bool((optimal >= 0).all())
    episodes = []
    for j in range(k):
        row: dict[str, Any] = {
            "return": _mean_se(ret[:, j]),
            "length": _mean_se(length[:, j]),
            "success": float(success[:, j].mean()),
            "success_ci": _wilson(int(success[:, j].sum()), b),
        }
        if has_optimal:
            row["optimal"] = float(optimal[:, j].mean())
        episodes.append(row)
    vs_first = []
    for j in range(1, k):
        diff = ret[:, j] - ret[:, 0]
        entry: dict[str, Any] = {
            "episode": j + 1,
            "return_diff": _mean_se(diff),
            "p_value": _t_p(diff),  # the paired t-test (scipy's ttest_rel) over trials
            "shorter": float((length[:, j] < length[:, 0]).mean()),
        }
        if variants is not None:
            entry["by_variant"] = _by_variant(diff, variants)
        vs_first.append(entry)
    out: dict[str, Any] = {"trials": b, "episodes": episodes, "vs_first": vs_first}
    if has_optimal and k >= 2:
        found = success[:, 0]
        out["after_found"] = {
            "trials": int(found.sum()),
            "length": [float(length[found, 0].mean()), float(length[found, 1].mean())]
            if found.any()
            else [math.nan, math.nan],
            "success_ep2": float(success[found, 1].mean()) if found.any() else math.nan,
        }
    if k >= 2:  # what a trial does after an episode that failed: search on, or start over
        missed = ~success[:, 0]
        out["after_missed"] = {
            "trials": int(missed.sum()),
            "success_ep2": float(success[missed, 1].mean()) if missed.any() else math.nan,
        }
    return out


def summarize_study(results: dict[str, dict[str, FamilyTrials]]) -> dict[str, dict[str, Any]]:
    """:func:`summarize_trials` of every split and family, plus ``all`` (the families pooled)
    where a split has more than one."""
    out: dict[str, dict[str, Any]] = {}
    for split, by_family in results.items():
        out[split] = {f: summarize_trials(t.result, t.variants) for f, t in by_family.items()}
        if len(by_family) > 1:
            pooled = FamilyTrials.concat(list(by_family.values()))
            out[split]["all"] = summarize_trials(pooled.result, pooled.variants)
    return out


def _rows(summary: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    rows = [(split, family, s) for split, fams in summary.items() for family, s in fams.items()]
    if not rows:
        raise ValueError("the study is empty: no split has a family the agent reads")
    return rows


def _diff_text(d: dict[str, Any]) -> str:
    text = f"ep {d['episode']}: {d['return_diff'][0]:+.3f} ± {d['return_diff'][1]:.3f}"
    v = d.get("by_variant")
    if v is None:
        return f"{text} (p {d['p_value']:.2g})"
    return f"{text}, {v['improved']}/{v['variants']} variants up (p {v['p_value']:.2g})"


def in_context_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per split and family; steps, success and return by episode, the later
    episodes' return minus the first's (± s.e. over trials; how many variants improved and the
    across-variant p-value), where episode 1 found the goal, steps of episodes 1 and 2 (empty
    on worlds without a shortest path), and where it failed, episode 2's success."""
    rows = _rows(summary)
    k = len(rows[0][2]["episodes"])
    eps = " | ".join(f"ep {j + 1}" for j in range(k))
    lines = [
        f"| split | family | trials | steps: {eps} | success: {eps} | return: {eps} "
        "| return - ep 1 | goal found in ep 1: steps ep 1 -> ep 2 (trials) "
        "| ep 1 failed: success ep 2 (trials) |",
        "|---|---|---|" + "---|" * (3 * k + 3),
    ]
    for split, family, s in rows:
        steps = " | ".join(f"{e['length'][0]:.2f} ± {e['length'][1]:.2f}" for e in s["episodes"])
        succ = " | ".join(f"{e['success']:.2f}" for e in s["episodes"])
        rets = " | ".join(f"{e['return'][0]:+.3f}" for e in s["episodes"])
        diffs = "; ".join(_diff_text(d) for d in s["vs_first"])
        found = s.get("after_found")
        trip = "" if found is None else (
            f"{found['length'][0]:.2f} -> {found['length'][1]:.2f} ({found['trials']})"
        )  # fmt: skip
        missed = s.get("after_missed")
        again = "" if missed is None else f"{missed['success_ep2']:.2f} ({missed['trials']})"
        lines.append(
            f"| {split} | {family} | {s['trials']} | {steps} | {succ} | {rets} | {diffs} | {trip} "
            f"| {again} |"
        )
    return "\n".join(lines)


def plot_in_context(summary: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Return and steps by episode index in the trial (± s.e. over trials), one line per split
    (families pooled where a split has several), and the mean shortest path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _rows(summary)  # refuses an empty study
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    optimal = []
    for split, by_family in summary.items():
        if not by_family:
            continue
        s = by_family.get("all") or next(iter(by_family.values()))
        x = np.arange(1, len(s["episodes"]) + 1)
        for ax, key in zip(axes, ("return", "length"), strict=True):
            mean = [e[key][0] for e in s["episodes"]]
            se = [e[key][1] for e in s["episodes"]]
            ax.errorbar(x, mean, yerr=se, marker="o", capsize=3, label=split)
        optimal += [e["optimal"] for e in s["episodes"] if "optimal" in e]
        for ax in axes:
            ax.set_xticks(x)
    if optimal:
        axes[1].axhline(np.mean(optimal), color="grey", ls=":", label="shortest path")
    for ax, title in zip(axes, ("return", "steps"), strict=True):
        ax.set_xlabel("episode in the trial")
        ax.set_title(f"{title} by episode (± s.e.)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finite(x: Any) -> Any:
    """NaN -> None, recursively, so that the JSON is standard (no bare NaN)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def write_study(summary: dict[str, dict[str, Any]], out: str | Path) -> None:
    """``in_context.json`` (NaN written as null), ``in_context.md`` and ``in_context.png``
    under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(summary), indent=1, allow_nan=False)
    (out / "in_context.json").write_text(text + "\n")
    (out / "in_context.md").write_text(in_context_table(summary) + "\n")
    plot_in_context(summary, out / "in_context.png")
