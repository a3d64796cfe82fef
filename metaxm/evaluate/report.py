"""The transfer report: ``report.json``, ``report.md`` and PNG plots.

``report.json`` schema (every number the evaluation produced)::

    metric, threshold            the performance measure and the fraction of source that counts
    budgets, scratch_budgets     episodes of target experience at which curves are measured
    seeds, seconds               repetitions per curve; wall-clock seconds of the evaluation
    seconds_by_strategy          per strategy, the seconds its curves took (summed over
                                 modalities and seeds, across worker processes)
    workers                      processes that measured the curves
    curves_measured,             curves this evaluation measured, and those it took back (a
    curves_taken_back            resumed ``curves.jsonl``, a main job's early evaluation)
    source                       {agent, return, success, steps, per_modality, per_family,
                                 oracle}: the pre-trained agent on its training modalities, and
                                 the world's oracle (true-state policy) on fresh episodes
    modalities.<id>.source       the level this modality's threshold is a fraction of: source
                                 on the same family's training variants (held-out variant) or
                                 on every training modality (held-out family)
    strategies                   the strategies run; skipped_strategies: those that cannot run
                                 (skipped_because: why, e.g. no trained agent)
    unread                       per modality, the strategies not measured on it: {name: why}
                                 (a strategy that reads some families only)
    data.<name>                  what the strategy consumes of its k episodes: observations,
                                 rewards, paired (source renders of every target step), ends
                                 (where episodes ended, for one that reads no reward)
    same_task                    the strategies whose measured episode keeps the task their k
                                 episodes showed (rl2); the others are measured on fresh tasks
    headline.tied                strategies reaching the level after as few episodes as best
    in_episode.<name>            what its policy learns within a measured episode, if anything
    meta_learned.<name>          what it learned for adapting over training tasks ("": hand-set
                                 steps, closed forms or searches)
    controls.<name>              what a control strategy controls for (``rl2-blind``: rl2 with
                                 its observations zeroed); never the headline's best strategy
    modalities.<family:variant>  {split (heldout_variants, heldout_families, or validation:
                                 metaxm evaluate --modality), family, variant, source,
                                 measurable (false when the
                                 threshold lies within the 95% interval of a fresh agent,
                                 scratch at k = 0), strategies: {<name>: {
                                   budgets, curves: {return|success|steps|episodes: [seed][k],
                                     paired_steps (a paired strategy), read (one that may read
                                     nothing: 1 where it read, 0 where not, and at k = 0)},
                                   seconds: [seed] (each curve's wall-clock time),
                                   iqm: {<metric>: {point, low, high}: [k]},
                                   metrics: TransferMetrics (metaxm.evaluate.metrics),
                                   oracle_metrics: {episodes_to_threshold, censored, seeds}
                                     against threshold x the oracle's level,
                                   stay_metrics: {episodes_to_threshold, censored, seeds}
                                     from which every later budget reaches the threshold,
                                   vs_align: (a strategy fitting align's episodes and pairs)
                                     {difference: {point, low, high}, fewer, more, seeds,
                                     p_value, censored, baseline_censored, bound: exact,
                                     upper, lower or none where censored seeds make the
                                     difference a bound}, metaxm.evaluate.metrics
                                     .paired_episodes}}}
    summary.<name>               {budgets, by_budget: [{point, low, high}] (IQM over all
                                 held-out modalities, stratified bootstrap),
                                 episodes_to_threshold: {<modality>: episodes | null},
                                 missing: [<modality>] where it was not measured on every one
                                 (then over the others, and not a candidate for the headline)}
    headline                     {best, best_episodes, scratch_episodes, target_met, text}
    representation               (when computed) latent metrics on held-out modalities

Plots: ``curves.png`` (few-shot curves with 95% bands, one panel per held-out modality and,
with more than one, an aggregate panel),
``speedup.png`` (speed-up over scratch per strategy and modality).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it was
from matplotlib.lines import Line2D

HEADLINE_BUDGET = 8  # defaults for reports written before evaluate.target_* existed
HEADLINE_FACTOR = 10


def _first_reaching(budgets: list[int], points: list[float], level: float) -> int | None:
    for k, v in zip(budgets, points):
        if v >= level - 1e-12:
            return k
    return None


def _each_modality(report: dict[str, Any], name: str, k: int) -> tuple[int, int]:
    """On how many held-out modalities ``name``'s IQM at budget ``k`` reaches that modality's
    own threshold, of those it was measured on with a source level: the aggregate pools every
    modality's seeds, so it could reach the level while one modality fails outright."""
    reached = measured = 0
    for entry in report.get("modalities", {}).values():
        rec = entry["strategies"].get(name)
        if rec is None or entry.get("source") is None or k not in rec["budgets"]:
            continue
        measured += 1
        point = rec["iqm"][report["metric"]]["point"][rec["budgets"].index(k)]
        reached += point >= report["threshold"] * entry["source"] - 1e-12
    return reached, measured


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """Does the best strategy reach the threshold within ``evaluate.target_episodes`` (8)
    episodes while scratch needs ``evaluate.target_speedup`` (10) times more?

    Uses the summary curves (IQM over every held-out modality and seed): the first budget at
    which a strategy's aggregate reaches ``threshold`` x source performance. A threshold that a
    fresh agent (scratch at k = 0) already reaches measures nothing; then the target is not met.
    """
    src = report["source"].get(report["metric"])
    if src is None:
        return {"target_met": False, "text": "no source-modality agent: no threshold to reach"}
    level = report["threshold"] * src
    scratch_summary = report["summary"].get("scratch")
    untrained = scratch_summary["by_budget"][0]["high"] if scratch_summary else None
    if untrained is not None and level <= untrained:
        from metaxm.evaluate.runner import unmeasurable_reason

        why = unmeasurable_reason(src, report["threshold"], untrained, report["metric"])
        return {
            "level": level,
            "untrained": untrained,
            "target_met": False,
            "text": f"Not measurable: {why}.",
        }
    budget = report.get("target_episodes", HEADLINE_BUDGET)
    factor = report.get("target_speedup", HEADLINE_FACTOR)
    reach = {  # a strategy measured on some of the modalities only is not compared
        name: _first_reaching(s["budgets"], [b["point"] for b in s["by_budget"]], level)
        for name, s in report["summary"].items()
        if not s.get("missing")
    }
    controls = report.get("controls", {})  # not ways to adapt: never the best strategy
    adapting = {
        n: k for n, k in reach.items() if n != "scratch" and n not in controls and k is not None
    }
    scratch = reach.get("scratch")
    cap = report["scratch_budgets"][-1]
    if not adapting:
        best, best_k = None, None
    else:
        best = min(adapting, key=lambda n: adapting[n])
        best_k = adapting[best]
    tied = [n for n, k in adapting.items() if n != best and k == best_k]
    scratch_k = scratch if scratch is not None else cap
    met = best_k is not None and best_k <= budget and scratch_k >= factor * max(best_k, 1)
    if best is None:
        text = (
            f"No adapting strategy reaches {report['threshold']:.0%} of source "
            f"{report['metric']} ({level:.3f}) within {_count(report['budgets'][-1], 'episode')}."
        )
    else:
        scratch_txt = f"{scratch_k}" if scratch is not None else f"more than {cap} (censored)"
        also = f" (tied with {', '.join(tied)})" if tied else ""
        reached, measured = _each_modality(report, best, best_k)
        each = (
            f" (its own threshold reached on {reached} of {measured} held-out modalities at "
            f"k = {best_k})"
            if measured
            else ""
        )
        text = (
            f"Best strategy: {best}{also}, reaching {report['threshold']:.0%} of source "
            f"{report['metric']} ({level:.3f}) in aggregate after {_count(best_k, 'episode')}"
            f"{each}; "
            "scratch needs "
            f"{scratch_txt}. Target (<= {budget} episodes, scratch >= "
            f"{factor:g}x): {'met' if met else 'NOT met'}."
        )
    return {
        "level": level,
        "episodes_to_threshold": reach,
        "best": best,
        "tied": tied,
        "best_episodes": best_k,
        "scratch_episodes": scratch,
        "scratch_censored": scratch is None,
        "target_met": met,
        "text": text,
    }


def write_report(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md``, ``curves.png`` and ``speedup.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report["headline"] = headline(report)
    paths = {
        "json": out / "report.json",
        "md": out / "report.md",
        "curves": out / "curves.png",
        "speedup": out / "speedup.png",
    }
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=_jsonable))
    tmp.replace(paths["json"])
    paths["md"].write_text(markdown(report))
    plot_curves(report, paths["curves"])
    plot_speedup(report, paths["speedup"])
    return paths


def _count(n: int, noun: str) -> str:
    """``1 episode``, ``2 episodes``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}"


def _ci(i: dict[str, float], digits: int = 2) -> str:
    return f"{_fmt(i['point'], digits)} [{_fmt(i['low'], digits)}, {_fmt(i['high'], digits)}]"


def markdown(report: dict[str, Any]) -> str:
    """``report.md``: the headline, then one table per held-out modality."""
    metric = report["metric"]
    src = report["source"]
    lines = ["# Transfer report", "", f"**{report['headline']['text']}**", ""]
    if src.get("agent"):
        lines.append(
            f"Source-modality performance ({src['agent']} agent on its training modalities): "
            f"success {src['success']:.3f}, return {src['return']:.3f}, "
            f"steps {src['steps']:.1f}."
        )
    lines += [
        f"Metric: {metric}; threshold {report['threshold']:.0%} of source (per modality: of "
        "the same family's training variants; aggregate: of every training modality); "
        f"{_count(report['seeds'], 'seed')} per curve; IQM over seeds with 95% bootstrap "
        "intervals; "
        f"budgets {report['budgets']} episodes (scratch up to {report['scratch_budgets'][-1]}).",
        "",
        "Episodes to threshold: in a modality's table, the IQM over seeds of each seed's first "
        "budget reaching the modality's threshold (a seed that never does counts as the "
        "largest budget: '>=' marks where that makes the IQM a lower bound, '> K' where most "
        "seeds never do); 'stays from' is the first budget from which every later one reaches "
        "it. In the headline and the aggregate table: the first budget at which the IQM "
        "pooled over every held-out modality and seed reaches the aggregate threshold.",
        "",
    ]
    if report["seeds"] < 2:
        lines += [
            "One seed per curve: the intervals below have zero width, as a single seed leaves "
            "nothing to resample; measure more seeds (`--seeds`) for intervals.",
            "",
        ]
    if report.get("seconds_by_strategy"):
        spent = ", ".join(f"{n} {t:.0f} s" for n, t in report["seconds_by_strategy"].items())
        lines += [f"Evaluation: {report['seconds']:.0f} s wall clock; curve time {spent}.", ""]
    if report.get("skipped_strategies"):
        why = report.get("skipped_because", {})
        names = report["skipped_strategies"]
        skipped = [f"{n} ({why.get(n) or 'no trained agent'})" for n in names]
        lines += [f"Skipped: {', '.join(skipped)}.", ""]
    oracle = src.get("oracle")
    if oracle:
        lines += [
            f"Oracle (the world's reference policy, on the true state): {metric} "
            f"{oracle[metric]:.3f}; the column 'to oracle threshold' counts episodes to "
            f"{report['threshold']:.0%} of it ({report['threshold'] * oracle[metric]:.3f}), a "
            "level that does not fall when the source agent is weak.",
            "",
        ]
    needs = report.get("data", {})
    for title, by_name in (
        ("Data each strategy consumes of its k episodes", {n: _data(d) for n, d in needs.items()}),
        ("Learned within a measured episode besides that", report.get("in_episode", {})),
    ):
        if by_name:
            lines += [f"{title}: " + "; ".join(f"{n}: {w}" for n, w in by_name.items()) + ".", ""]
    lines += _meta_learned(report.get("meta_learned", {}))
    controls = report.get("controls", {})
    if controls:
        shown = "; ".join(f"{n}: {w}" for n, w in controls.items())
        lines += [f"Controls (not ways to adapt, never the best strategy): {shown}.", ""]
    same = report.get("same_task", [])
    if same:
        lines += [
            f"Marked {SAME_TASK}: {', '.join(same)}, measured on the task its k episodes showed "
            "(one trial keeps its task), where every other strategy is measured on fresh "
            "tasks: not like for like (rl2-newtask, where listed, is the fresh-task measure).",
            "",
        ]
    header = (
        "| strategy | data | jumpstart | AUC | transfer ratio | episodes to threshold | "
        "stays from | to oracle threshold | speed-up vs scratch | asymptote | negative "
        "transfer |"
    )
    for mid, entry in report["modalities"].items():
        lines += [f"## {mid} ({entry['split'].replace('_', ' ')})", ""]
        if entry.get("source") is not None:
            own = (
                "its family's training variants"
                if entry["family"] in src.get("per_family", {})
                else "every training modality"
            )
            level = report["threshold"] * entry["source"]
            lines += [f"Source {metric} ({own}): {entry['source']:.3f}; threshold {level:.3f}."]
            if not entry.get("measurable", True):
                why = entry.get("unmeasurable", "a fresh agent reaches the threshold")
                lines += [
                    f"**Not measurable**: {why} (scratch before any experience, the upper end "
                    "of its 95% interval), so the episodes to threshold below measure nothing.",
                ]
            lines += [""]
        lines += [header, "|" + "---|" * 11]
        for name, rec in entry["strategies"].items():
            m = rec.get("metrics")
            data = _data(needs.get(name, []), short=True)
            shown_name = f"{name} {SAME_TASK}" if name in same else name
            if m is None:
                lines.append(f"| {shown_name} | {data} | " + " | ".join(["–"] * 9) + " |")
                continue
            ett = _episodes(m, rec["budgets"])
            om = rec.get("oracle_metrics")
            ett_oracle = "–" if om is None else _episodes(om, rec["budgets"])
            sm = rec.get("stay_metrics")  # a report written before stop 42 has none
            stays = "–" if sm is None else _episodes(sm, rec["budgets"])
            speed = _speed(m)
            lines.append(
                f"| {shown_name} | {data} | {_ci(m['jumpstart'])} | {_ci(m['auc'])} | "
                f"{_fmt(m['transfer_ratio'])} | {ett} | {stays} | {ett_oracle} | {speed} | "
                f"{_ci(m['asymptote'])} | "
                f"{'yes' if m['negative_transfer'] else 'no'} |"
            )
        lines += _paired_lines(entry["strategies"])
        lines += _read_nothing_lines(entry["strategies"])
        unread = report.get("unread", {}).get(mid, {})
        if unread:
            lines += [
                "",
                "Not measured here: " + "; ".join(f"{n} ({w})" for n, w in unread.items()) + ".",
            ]
        lines.append("")
    lines += ["## Aggregate over held-out modalities", "", _aggregate_table(report), ""]
    if report.get("representation"):
        lines += ["## Latent on held-out modalities", "", "```", json.dumps(
            report["representation"], indent=1), "```", ""]  # fmt: skip
    return "\n".join(lines)


def _read_nothing_lines(strategies: dict[str, Any]) -> list[str]:
    """A line for each strategy that read nothing from its k episodes (k >= 1) in some of its
    adaptations (its curves' ``read``); none where every one read."""
    out = []
    for name, rec in strategies.items():
        read = rec.get("curves", {}).get("read")
        if read is None:
            continue
        taken = [r for seed in read for b, r in zip(rec["budgets"], seed, strict=True) if b > 0]
        nothing = sum(r == 0 for r in taken)
        if nothing:
            out += ["", f"{name} read nothing from its k episodes in {nothing} of {len(taken)} "
                    "adaptations with k >= 1 (seeds x budgets): there the agent met the target "
                    "as it is, as at k = 0."]  # fmt: skip
    return out


def _paired_lines(strategies: dict[str, Any]) -> list[str]:
    """The lines under a modality's table: each strategy's episodes to threshold paired with
    a baseline's, seed by seed (``vs_<baseline>`` records); none where nothing is paired."""
    by_baseline: dict[str, list[str]] = {}
    for name, rec in strategies.items():
        for key, pair in rec.items():
            if not key.startswith("vs_"):
                continue
            base = key[3:]
            by_baseline.setdefault(base, []).append(_paired_text(name, base, pair))
    lines = []
    for base, parts in by_baseline.items():
        lines += [
            "",
            f"Episodes to threshold against {base}'s on the same seeds (the same k episodes; "
            "mean difference, 95% bootstrap interval; a seed that never reaches the threshold "
            "counts as the largest budget, so where only the baseline's never does, the "
            "difference is at most (<=) the one shown): " + "; ".join(parts) + ".",
        ]
    return lines


def _paired_text(name: str, base: str, pair: dict[str, Any]) -> str:
    """One strategy's paired difference in words: a bound where censored seeds make it one
    (``pair["bound"]``; a report written before stop 65 has none), no number where neither
    ever reached the threshold."""
    d, untied, seeds = pair["difference"], pair["fewer"] + pair["more"], pair["seeds"]
    bound = pair.get("bound", "exact")
    if pair.get("censored") == seeds and pair.get("baseline_censored") == seeds:
        return f"{name}: neither reaches the threshold on any of {seeds} seeds"
    number = f"{d['point']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] episodes"
    if bound == "none":  # a seed each never reached, or one both never did: no bound
        number = "a difference bounded neither way"
    mark = {"upper": "<= ", "lower": ">= "}.get(bound, "")
    least = untied > 0 and abs(pair["p_value"] - 2.0 ** (1 - untied)) < 1e-9
    text = (
        f"{name} {mark}{number}, fewer "
        f"on {pair['fewer']} and more on {pair['more']} of {seeds} seeds "
        f"(Wilcoxon p = {pair['p_value']:.2g}"
        + (f", the least {untied} untied seeds allow" if least else "")
    )
    censored = [
        f"{who} never reached it on {_count(n, 'seed')}"
        for who, n in ((name, pair.get("censored", 0)), (base, pair.get("baseline_censored", 0)))
        if n
    ]
    return text + ("; " + " and ".join(censored) if censored else "") + ")"


def _meta_learned(by_name: dict[str, str]) -> list[str]:
    """The report's lines on what each strategy meta-learned (none for an old report)."""
    if not by_name:
        return []
    learned = {n: w for n, w in by_name.items() if w}
    rest = [n for n, w in by_name.items() if not w]
    text = "Meta-learned for adapting, over training tasks, before the target: "
    text += "; ".join(f"{n}: {w}" for n, w in learned.items()) if learned else "nothing"
    if rest:
        text += f". Hand-set steps, closed forms or searches only: {', '.join(rest)}"
    return [text + ".", ""]


SAME_TASK = "†"
"""The mark of a strategy measured on the task its k episodes showed (``report["same_task"]``)."""

DATA_WORDS = {
    "observations": ("target observations", "obs"),
    "rewards": ("target rewards", "rew"),
    "paired": ("paired source renders", "pairs"),
    "ends": (
        "where its episodes ended (in GridNav only the goal ends one early: the success bit)",
        "ends",
    ),
}


def _data(needs: list[str], short: bool = False) -> str:
    """What a strategy consumes, in words (``short``: for a table cell)."""
    if not needs:
        return "none" if short else "nothing (no adaptation)"
    return (" + " if short else ", ").join(DATA_WORDS[n][short] for n in needs)


def _episodes(m: dict[str, Any], budgets: list[int]) -> str:
    """Episodes to threshold with its interval; '>= ' where the IQM keeps a censored seed (a
    lower bound), '> K' where most seeds never reach it."""
    censored = m["censored"]
    # where most seeds are censored, the IQM would be the cap, not a measurement
    text = f"> {budgets[-1]}" if censored * 2 > m["seeds"] else _ci(m["episodes_to_threshold"], 0)
    if _bounded(m) and censored * 2 <= m["seeds"]:
        text = ">= " + text
    if censored:
        text += f" ({censored}/{m['seeds']} censored)"
    return text


def _speed(m: dict[str, Any]) -> str:
    """The speed-up over scratch: '>= ' where scratch's episodes are a lower bound, '<= ' where
    the strategy's are, no number where both are (each bounds the ratio the other way)."""
    speed = _fmt(m["speedup"], 1)
    if m["speedup"] is None:
        return speed
    up, down = m["speedup_is_lower_bound"], _bounded(m)
    if up and down:
        return "n/a (both censored)"
    return (">= " if up else "<= " if down else "") + speed


def _bounded(m: dict[str, Any]) -> bool:
    """The IQM of episodes to threshold keeps a censored seed (the trim drops int(TRIM * n)
    from each end; a censored seed counts as the cap, the largest), so it is a lower bound."""
    from metaxm.evaluate.metrics import TRIM

    return m["censored"] > int(TRIM * m["seeds"])


def _aggregate_table(report: dict[str, Any]) -> str:
    budgets = report["budgets"]
    rows = ["| strategy | " + " | ".join(f"k={k}" for k in budgets) + " |"]
    rows.append("|" + "---|" * (len(budgets) + 1))
    notes = []
    for name, s in report["summary"].items():
        cells = []
        for k in budgets:
            cells.append(_fmt(s["by_budget"][s["budgets"].index(k)]["point"]))
        mark = ""
        if s.get("missing"):
            mark = "*" * (len(notes) + 1)
            notes.append(f"{mark} over the modalities {name} reads: not {', '.join(s['missing'])}")
        rows.append(f"| {name}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(rows + ([""] + [n + "." for n in notes] if notes else []))


LINE_STYLES = ("-", "--", ":", "-.")
"""The line styles that tell strategies apart once the colour cycle has gone round."""

MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h")
"""A marker per strategy, so that two curves lying on one another both show."""

REFERENCE = "scratch"
"""The strategy every other is measured against: drawn black and dashed, off the colour cycle."""


def line_styles(names: list[str]) -> dict[str, dict[str, str]]:
    """A colour, a line style and a marker per strategy: the colour cycle's colours in order
    (the reference, ``scratch``, black and dashed, outside it), and past the cycle's end
    (matplotlib's has 10) the next line style, so no two strategies share a line (up to
    colours x styles: 40)."""
    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    others = [n for n in names if n != REFERENCE]
    style = {
        n: {"color": cycle[i % len(cycle)], "ls": LINE_STYLES[i // len(cycle) % len(LINE_STYLES)]}
        for i, n in enumerate(others)
    }
    if REFERENCE in names:
        style[REFERENCE] = {"color": "k", "ls": "--"}
    return {n: {**style[n], "marker": MARKERS[i % len(MARKERS)]} for i, n in enumerate(names)}


THRESHOLD_STYLE = {"color": "0.45", "ls": ":", "lw": 1.2}


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Few-shot curves (IQM and 95% band) per held-out modality, budgets on a log2(1+k) axis,
    with the modality's threshold dotted; with more than one modality, a last panel of the
    aggregate (the IQM over every held-out modality and seed, as the headline reads it). A
    strategy keeps its line in every panel, also where another is not measured (a family it
    does not read)."""
    mods = list(report["modalities"].items())
    names = list(dict.fromkeys(n for _, entry in mods for n in entry["strategies"]))
    style = line_styles(names)
    summary = report.get("summary") if len(mods) > 1 else None
    panels = len(mods) + bool(summary)
    cols = min(4, panels)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(4 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    metric = report["metric"]
    overall = report.get("headline", {}).get("level")
    ticks = report["scratch_budgets"]
    for ax, (mid, entry) in zip(axes.flat, mods):
        # this modality's threshold: a fraction of its own source level (see report.json)
        own = entry.get("source")
        level = overall if own is None else report["threshold"] * own
        for name, rec in entry["strategies"].items():
            _draw(ax, rec["budgets"], rec["iqm"][metric], name, style[name])
        title = f"{mid} ({entry['split'].replace('heldout_', 'held-out ')})"
        if not entry.get("measurable", True):
            fresh_at = (
                "source at chance"
                if "no better" in entry.get("unmeasurable", "")
                else ("fresh agent at threshold")
            )
            title += f"\nnot measurable: {fresh_at}"
        _frame(ax, title, level, ticks, metric)
    if summary:
        ax = axes.flat[len(mods)]
        for name, s in summary.items():
            if s.get("missing") or name not in style:  # not over every modality: not pooled
                continue
            band = {key: [b[key] for b in s["by_budget"]] for key in ("point", "low", "high")}
            _draw(ax, s["budgets"], band, name, style[name])
        title = "aggregate over held-out modalities\n(the strategies measured on every one)"
        _frame(ax, title, overall, ticks, metric)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    handles = [Line2D([], [], ms=5, mfc="none", label=n, **style[n]) for n in names]
    share = f"{report['threshold']:.0%} of source"
    handles.append(Line2D([], [], label=f"threshold ({share})", **THRESHOLD_STYLE))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 12), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)


def _draw(ax: Any, budgets: list[int], band: dict[str, list[float]], name: str, style: dict):
    x = [math.log2(1 + k) for k in budgets]
    ax.plot(x, band["point"], ms=5, mfc="none", label=name, **style)  # hollow: overlaps show
    ax.fill_between(x, band["low"], band["high"], color=style["color"], alpha=0.15)


def _frame(ax: Any, title: str, level: float | None, ticks: list[int], metric: str) -> None:
    if level is not None:
        ax.axhline(level, **THRESHOLD_STYLE)
    ax.set_xticks([math.log2(1 + k) for k in ticks], [str(k) for k in ticks], fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("episodes of target experience")
    ax.set_ylabel(metric)


def plot_speedup(report: dict[str, Any], path: Path) -> None:
    """Speed-up over scratch (episodes to threshold) per strategy, one bar per modality."""
    names = [n for n in report["strategies"] if n != "scratch"]
    mods = list(report["modalities"])
    fig = Figure(figsize=(max(5, 1.2 * len(names) * max(1, len(mods)) / 3), 3.5))
    ax = fig.subplots()
    width = 0.8 / max(len(mods), 1)
    for j, mid in enumerate(mods):
        vals = []
        for name in names:
            m = report["modalities"][mid]["strategies"].get(name, {}).get("metrics") or {}
            vals.append(m.get("speedup") or 0.0)
        ax.bar([i + j * width for i in range(len(names))], vals, width, label=mid)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names)
    ax.set_yscale("symlog")
    ax.axhline(HEADLINE_FACTOR, color="k", ls="--", lw=0.8)
    ax.set_ylabel("speed-up over scratch (0: never adapted)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
