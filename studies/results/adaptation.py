"""``make results`` jobs for #15's paired and reward-only studies: the permutation case, the
meta-learned ridge prior, the bound on what k paired episodes read, the rewards a reward-only
inner loop sees, and ``translate``'s learned priors."""

from __future__ import annotations

import json
from pathlib import Path

from studies.results.page import RUNS, need_main, rel, study_page


def permutation_case() -> Path:
    out = RUNS / "permutation-case"
    command = ["python", "scripts/permutation_case.py", "--out", rel(out)]

    def headline() -> str:
        errors = json.loads((out / "permutation-case.json").read_text())["errors"]
        mean = {k: sum(v) / len(v) for k, v in errors.items()}
        rows = ("metafit", "the same steps, not meta-learned", "align", "priorfit", "least squares")
        return (
            "a pure permutation of a known `vector` variant, fitted from one CartPole episode; "
            "latent error on query states over the source latents' mean square (0: recovered), "
            "mean of 8 permutations: " + ", ".join(f"{r} **{mean[r]:.2f}**" for r in rows) + "."
        )

    return study_page("permutation-case", "A pure permutation from one episode", [command],
                      headline)  # fmt: skip


def ridge_prior() -> Path:
    out = RUNS / "ridge-prior"
    command = ["python", "scripts/ridge_prior.py", rel(RUNS / "main" / "ppo"), "--seeds", "1", "2",
               "3", "4", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "ridge-prior.json").read_text())["rows"]
        cells = []
        for family in ("vector", "projected", "pixels"):
            for fit in ("learned prior", "least squares", "align"):
                by_k = rows[f"{family}|{fit}"]
                mean = " / ".join(f"{sum(v) / len(v):.2f}" for v in by_k.values())
                cells.append(f"{family} {fit} {mean}")
        return (
            "success on validation variants at k = 1 / 2 / 4 (mean of 4 variants x 4 seeds): "
            + "; ".join(cells)
            + "."
        )

    return study_page("ridge-prior", "A meta-learned ridge prior for the paired fit", [command],
                      headline)  # fmt: skip


def one_episode_bound() -> Path:
    out = RUNS / "one-episode-bound"
    command = ["python", "scripts/one_episode_bound.py", "--draws", "2000", "--k", "1", "2", "4",
               "--variant", "vector:77882", "--variant", "projected:73849",
               "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        table = json.loads((out / "one-episode-bound.json").read_text())
        cells = []
        for name, got in table["k=1"].items():  # "bias known": the strict bound on projected
            cells.append(f"{name}: " + ", ".join(f"{n} {m:.2f}" for n, (m, _) in got.items()))
        return (
            "the exact posterior over a new goal after k paired random-walk episodes, under the "
            "family's own variant prior (2,000 draws): how often its most probable goal is the "
            "true one (read), walking there succeeds (walk), and visiting goals in its order "
            "within one episode succeeds (search). At k = 1: "
            + "; ".join(cells)
            + " (k = 2 and 4 below)."
        )

    return study_page("one-episode-bound", "What k paired episodes can read", [command],
                      headline)  # fmt: skip


def reward_signal() -> Path:
    need_main("reward-signal", "it counts the rewards its maml stage's start collects")
    out = RUNS / "reward-signal"
    command = ["python", "scripts/reward_signal.py", rel(RUNS / "main"), "--episodes", "8",
               "--draws", "40", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        rows = json.loads((out / "reward-signal.json").read_text())["modalities"]
        got = ", ".join(f"{m} {r['maml']['rewarded_per_k']:.2f}" for m, r in rows.items())
        walk = next(iter(rows.values()))["random"]["rewarded_per_k"]
        return (
            "what maml's policy-gradient inner step has to learn from: of its 8 support episodes "
            "(40 draws), those its start (the policy before the step) ends on the goal: "
            + got
            + f"; a random walk, which reads nothing, reaches {walk:.2f}. Every other episode "
            "returns the same (the step costs of the whole horizon)."
        )

    return study_page("reward-signal", "The rewards a reward-only inner loop sees", [command],
                      headline)  # fmt: skip


def translate_priors() -> Path:
    need_main("translate-priors", "it measures translate with its agent")
    out = RUNS / "translate-priors"
    command = ["python", "scripts/translate_priors.py", rel(RUNS / "main"), "--trace",
               "projected:102", "--out", rel(out)]  # fmt: skip

    def headline() -> str:
        table = json.loads((out / "translate-priors.json").read_text())

        def at_k1(name: str, family: str) -> str:
            got = [c[1] for v, c in table[name].items() if v.startswith(family)]
            return " / ".join(f"{s:.2f}" for s in got)

        trace = table["trace projected:102"]
        moved = [n for n in table if n not in ("learned", "flat") and not n.startswith("trace")]
        best = max(moved, key=lambda n: sum(table[n][f"projected:{v}"][1] for v in (102, 103)))
        return (
            "`translate`'s success at k = 1 on validation variants 100-103, with the family "
            f"priors it learns from the training variants: vector {at_k1('learned', 'vector')}, "
            f"projected {at_k1('learned', 'projected')}; without them (`flat`): vector "
            f"{at_k1('flat', 'vector')}, projected {at_k1('flat', 'projected')}. The change of "
            f"the projected posterior's calibration that reads 102 and 103 best (`{best}`): "
            f"{at_k1(best, 'projected')} (every row below); of projected 102's failed episodes "
            f"at k = 1, {trace['stuck']} of {trace['failed']} end with the agent's reading of "
            f"itself stuck; their steps read the agent's cell right {trace['agent in failed']:.2f} "
            f"of the time ({trace['agent in successful']:.2f} in successful episodes) and the "
            f"goal right from the agent {trace['relative in failed']:.2f} "
            f"({trace['relative in successful']:.2f})."
        )

    return study_page("translate-priors", "What translate's learned priors give", [command],
                      headline)  # fmt: skip
