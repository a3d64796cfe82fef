#!/usr/bin/env python
"""What a reward-only inner loop has to learn from: the rewarded episodes among ``maml``'s k
support episodes on each held-out modality (``docs/transfer-studies.md`` section 41).

``maml`` collects its k support episodes with its own start (the policy before any inner step,
actions sampled, as :func:`metaxm.meta.maml.adapt_in_env` does) and takes a policy-gradient
step on them. On GridNav an episode that misses the goal returns the same (the step costs of
the whole horizon), so only the rewarded episodes tell the step anything about the new sensor.
For each modality this counts them over ``--draws`` draws of k episodes (new tasks, new
seeds), beside a uniformly random walk's, which reads nothing::

    python scripts/reward_signal.py runs/main --episodes 8 --draws 40 \\
        --out runs/results/reward-signal
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from tqdm import tqdm

from metaxm.envs.play import play
from metaxm.envs.task_env import TaskEnv
from metaxm.evaluate.episodes import target_env
from metaxm.evaluate.loading import Agents, load_agents
from metaxm.evaluate.runner import heldout_modalities
from metaxm.meta.policy_gradient import collect_episodes
from metaxm.modalities import parse_modality_id


def random_walk_rewards(env: TaskEnv, generator: torch.Generator) -> int:
    """Rewarded episodes of one uniformly random episode in every environment of ``env``."""
    n = env.action_space.n  # type: ignore[attr-defined]
    walk = play(env, lambda obs: torch.randint(n, (obs.shape[0],), generator=generator))
    return int(walk.success.sum())


def count(agents: Agents, modalities: list[str], episodes: int, draws: int) -> dict[str, dict]:
    """Per modality: the rewarded share of maml's support episodes and of a random walk's, how
    many of the draws hold none, and the returns of the episodes that were not rewarded."""
    learner = agents.learners["maml"]
    rows: dict[str, dict] = {}
    for modality in tqdm(modalities, desc="modalities"):
        family, variant = parse_modality_id(modality)
        cfg = learner.config_for(family)
        got: dict[str, list[int]] = {"maml": [], "random": []}
        missed: set[float] = set()
        for draw in range(draws):
            env = target_env(agents.spec, family, variant, episodes, 1000 + draw)
            gen = torch.Generator().manual_seed(2000 + draw)
            played = collect_episodes(learner.agent, env, family, 1, None, gen, cfg)
            got["maml"].append(int(played.success.sum()))
            missed |= {
                round(float(r), 4)
                for r, s in zip(played.returns.flatten(), played.success.flatten())
                if not s
            }
            env = target_env(agents.spec, family, variant, episodes, 1000 + draw)
            walk = torch.Generator().manual_seed(3000 + draw)  # not maml's: its draws vary
            got["random"].append(random_walk_rewards(env, walk))
        rows[modality] = {
            **{
                who: {"rewarded_per_k": sum(c) / draws, "share": sum(c) / (draws * episodes),
                      "draws_with_none": sum(x == 0 for x in c) / draws}
                for who, c in got.items()
            },
            "unrewarded_returns": sorted(missed),
        }  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a main-job folder with a maml stage (runs/main)")
    p.add_argument("--episodes", type=int, default=8, help="k, the support episodes")
    p.add_argument("--draws", type=int, default=40)
    p.add_argument("--modality", action="append", help="family:variant (default: the spec's "
                   "held-out modalities)")  # fmt: skip
    p.add_argument("--out", default=None, help="folder for reward-signal.json")
    a = p.parse_args()
    torch.set_num_threads(1)
    agents = load_agents(a.run)
    if "maml" not in agents.learners:
        raise SystemExit(f"reward_signal: {a.run} has no maml run to count the rewards of")
    try:
        modalities = [f"{f}:{v}" for f, v in map(parse_modality_id, a.modality or [])]
    except (KeyError, ValueError) as e:
        raise SystemExit(f"reward_signal: {e}") from None
    modalities = modalities or [f"{f}:{v}" for _, f, v in heldout_modalities(agents)]
    rows = count(agents, modalities, a.episodes, a.draws)
    k = a.episodes
    print(f"| held-out | maml's start: rewarded of {k} | draws with none | random walk: rewarded "
          f"of {k} | draws with none | returns of the others |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for m, r in rows.items():
        cells = [f"{r[w]['rewarded_per_k']:.2f} ({r[w]['share']:.3f}) | "
                 f"{r[w]['draws_with_none']:.2f}" for w in ("maml", "random")]  # fmt: skip
        missed = ", ".join(f"{x:+.2f}" for x in r["unrewarded_returns"])
        print(f"| {m} | {cells[0]} | {cells[1]} | {missed} |")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        table = {"episodes": k, "draws": a.draws, "modalities": rows}
        (out / "reward-signal.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
