#!/usr/bin/env python
"""How much of ``translate``'s one-episode reading its learned family priors give
(``docs/transfer-studies.md`` section 31).

``translate`` learns two priors from the target family's training variants (never from the
target): the vector translator's per-channel gain prior, which ranks the readings its search
keeps (:func:`~metaxm.align.reading_search.gain_prior`), and the projected translator's offset
scale (:func:`~metaxm.align.sensor_posterior.bias_scale`); the projected translator's weight
scale and noise are fitted to the pairs (:func:`~metaxm.align.sensor_posterior.evidence_fit`).
A meta-learned prior that ranked the readings would replace those. This script measures how
far they matter: ``translate`` on validation variants (outside every split) at k = 0, 1, 2,

- ``learned``: as shipped;
- ``flat``: no learned prior (every gain equally likely; the offset scale fitted to the pairs);
- ``weight xM`` / ``offset xM`` / ``noise xM``: the projected posterior's fitted prior
  variances (of every weight, of the offsets) or noise variance times ``M``, the calibrations a
  meta-learned ranking would move.

With ``--trace FAMILY:VARIANT`` it also says, of the episodes that fail at k = 1 on that
variant, how many end with the agent's reading of itself stuck (the same read state over the
last 10 steps: the reading walks into a wall it does not know of, and the search, which moves
on only when the read state is a success state, never fires), and how often a step's reading
places the agent right, and the goal right from the agent, in failed and successful
episodes::

    python scripts/translate_priors.py runs/results/main --trace projected:102
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import torch

import metaxm.align.reading_search as reading_search
import metaxm.align.sensor_posterior as sensor_posterior
from metaxm.cli import main as metaxm_main

BUDGETS = [0, 1, 2]
VARIANTS = [f"{f}:{v}" for f in ("vector", "projected") for v in range(100, 104)]
STUCK = 10
"""A failed episode's read state the same over this many last steps: stuck."""
SCALED = {"weight": 0, "offset": 1, "noise": 2}
"""The projected posterior's fitted scales, by their place in ``evidence_fit``'s answer."""


def flat_gain_prior(pairs: object, scale: float, width: int) -> torch.Tensor:
    """A gain prior that prefers no gain: mean 0, a spread of 1e3 (log units)."""
    prior = torch.zeros(2, width, dtype=torch.float64)
    prior[1] = 1e3
    return prior


@contextlib.contextmanager
def setting(name: str) -> Iterator[None]:
    """The translators as ``name`` sets them (see the module docstring)."""
    if name == "learned":
        yield
        return
    if name == "flat":
        with (
            mock.patch.object(reading_search, "gain_prior", flat_gain_prior),
            mock.patch.object(sensor_posterior, "bias_scale", lambda *_: float("nan")),
        ):
            yield
        return
    part, times = name.split(" x")
    fit = sensor_posterior.evidence_fit

    def scaled(*args: object, **kwargs: object) -> tuple[float, float, float]:
        out = list(fit(*args, **kwargs))
        out[SCALED[part]] *= float(times) ** 0.5  # a variance times M: a scale times sqrt(M)
        return out[0], out[1], out[2]

    with mock.patch.object(sensor_posterior, "evidence_fit", scaled):
        yield


def evaluate(
    run: str, spec: str, out: Path, variants: list[str], seeds: int, episodes: int
) -> dict:
    """``translate``'s report on ``variants`` (one worker, so the setting holds in it)."""
    argv = ["evaluate", run, "--spec", spec, "--seeds", str(seeds), "--strategy", "translate",
            "--out", str(out), "--set", f"evaluate.budgets={BUDGETS}",
            "--set", f"evaluate.scratch_cap={BUDGETS[-1]}", "--set", "evaluate.workers=1",
            "--set", f"evaluate.eval_episodes={episodes}"]  # fmt: skip
    argv += [a for v in variants for a in ("--modality", v)]
    with contextlib.redirect_stdout(io.StringIO()):  # its report's summary: the table says it
        code = metaxm_main(argv)
    if code != 0:
        raise SystemExit(f"translate_priors.py: metaxm {' '.join(argv)} failed")
    report = json.loads((out / "report.json").read_text())
    return {
        mid: m["strategies"]["translate"]["iqm"]["success"]["point"]
        for mid, m in report["modalities"].items()
    }


@torch.no_grad()
def trace(run: str, spec_path: str, modality: str, seeds: int, episodes: int) -> dict[str, float]:
    """Of ``translate``'s episodes at k = 1 on ``modality`` (``seeds`` seeds): how many fail, how
    many of those end stuck (:data:`STUCK`), and, in failed and in successful episodes, the
    share of steps whose reading places the agent on its true cell (``agent``) and the goal
    where it truly lies from the agent (``relative``: a reading shifted as a whole still walks
    to the goal)."""
    from metaxm.align.reading_set import agent_goal_pairs
    from metaxm.envs.play import play
    from metaxm.evaluate.episodes import target_env
    from metaxm.evaluate.loading import load_agents
    from metaxm.evaluate.strategies import STRATEGIES
    from metaxm.modalities import parse_modality_id
    from metaxm.spec import load_spec

    family, variant = parse_modality_id(modality)
    agents = load_agents(run, load_spec(spec_path))
    counts = {"episodes": 0, "failed": 0, "stuck": 0}
    shares: dict[str, list[torch.Tensor]] = {}
    for seed in range(seeds):
        policy = STRATEGIES["translate"].policy(agents, family, variant, 1, seed)
        context = policy.translator.context
        (goal_f, agent_f), cell = agent_goal_pairs(context)
        decode = context.feature_map().float()
        env = target_env(agents.spec, family, variant, episodes, seed)
        reads: list[torch.Tensor] = []  # what the policy reads at each step
        hook = policy.translator.register_forward_hook(
            lambda _m, _i, o, into=reads: into.append(o.float())
        )
        policy.begin()  # played as the evaluator plays it, the actions told
        played = play(env, policy.act, observe=policy.observe, record=("scene", "alive"))
        hook.remove()
        success = played.success[:, 0]
        live = played.record["alive"].float()  # (T, B): before the first episode ended
        true = torch.stack([scene.features.float() for scene in played.record["scene"]])
        read = torch.stack(reads) @ decode  # (T, B, F)
        near = (read - true).abs() < cell / 2
        offset = (read[..., goal_f] - read[..., agent_f]) - (true[..., goal_f] - true[..., agent_f])
        right = {
            "agent": (near[..., agent_f].all(-1).float() * live).sum(0),
            "relative": ((offset.abs() < cell / 2).all(-1).float() * live).sum(0),
        }
        steps = live.sum(0)
        last = torch.stack(reads[-STUCK:])  # (STUCK, B, S): the failed ones ran the horizon
        same = (last - last[-1]).abs().amax((0, 2)) < 1e-6
        counts["failed"] += int((~success).sum())
        counts["stuck"] += int((~success & same).sum())
        counts["episodes"] += episodes
        for name, got in right.items():
            share = got / steps.clamp_min(1)
            shares.setdefault(f"{name} in failed", []).append(share[~success])
            shares.setdefault(f"{name} in successful", []).append(share[success])
    out: dict[str, float] = dict(counts)
    for name, parts in shares.items():
        joined = torch.cat(parts)
        out[name] = float(joined.mean()) if len(joined) else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the main job's folder (its ppo agent)")
    parser.add_argument("--spec", default="tasks/gridnav.yaml")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=64, help="measured episodes per curve")
    parser.add_argument("--out", type=Path, default=Path("runs/translate-priors"))
    parser.add_argument("--trace", metavar="FAMILY:VARIANT", help="count stuck failures here")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.episodes < 1:
        parser.exit(2, "translate_priors.py: error: --seeds and --episodes must be >= 1\n")
    projected = [v for v in VARIANTS if v.startswith("projected")]
    cases = [("learned", VARIANTS), ("flat", VARIANTS)]
    scaled = (("weight", (0.25, 4)), ("offset", (0.25, 4)), ("noise", (4,)))
    cases += [(f"{p} x{m}", projected) for p, ms in scaled for m in ms]
    table: dict[str, dict[str, list[float]]] = {}
    for name, variants in cases:
        with setting(name):
            out = args.out / name.replace(" ", "-")
            got = evaluate(args.run, args.spec, out, variants, args.seeds, args.episodes)
        table[name] = got
        cells = ", ".join(f"{v} {' / '.join(f'{s:.2f}' for s in c[1:])}" for v, c in got.items())
        print(f"{name} (k = 1 / 2): {cells}", flush=True)
    if args.trace:
        counts = trace(args.run, args.spec, args.trace, args.seeds, args.episodes)
        table["trace " + args.trace] = counts  # type: ignore[assignment]
        print(f"{args.trace} at k = 1: {counts['failed']} of {counts['episodes']} episodes "
              f"failed, {counts['stuck']} of them stuck; steps reading the agent's cell right "
              f"{counts['agent in failed']:.2f} in failed, {counts['agent in successful']:.2f} "
              f"in successful episodes; the goal right from the agent "
              f"{counts['relative in failed']:.2f} and {counts['relative in successful']:.2f}",
              flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "translate-priors.json").write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
