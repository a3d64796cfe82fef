"""``metaxm adapt CHECKPOINT --modality FAMILY:VARIANT --strategy NAME --episodes K``.

One few-shot adaptation: the agent of CHECKPOINT (a checkpoint file or a run directory; for
``--strategy`` needing another agent, a folder of runs) meets the modality, is measured before
and after K episodes of it, and the result is printed and saved as JSON. ``--save-policy FILE``
also saves the adapted policy the measurement used (the strategies with a learner: maml, rl2,
align, translate, metafit, priorfit, selffit, selfread), for ``metaxm.AdaptedPolicy.load``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "adapt a trained agent to one modality with a strategy and K episodes of experience"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file or run folder")
    parser.add_argument("--modality", required=True, help="FAMILY:VARIANT, e.g. audio:7")
    parser.add_argument(
        "--strategy",
        required=True,
        help="zeroshot, maml, rl2, align, translate, metafit, priorfit, selffit, selfread, "
        "finetune, scratch, rl2-blind (a control: rl2 with its observations zeroed), "
        "rl2-newtask (a control: rl2 with a new task every episode), or one a plugin "
        "registers (the run's spec imports it)",
    )
    parser.add_argument(
        "--episodes", type=int, default=8, help="K, episodes of the modality (default: 8)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the experience and measurement")
    parser.add_argument(
        "--out",
        help="JSON file for the result (default: adapt-FAMILY-VARIANT-STRATEGY-K-sSEED.json); an "
        "existing file is replaced only if it holds an earlier result",
    )
    parser.add_argument(
        "--save-policy",
        metavar="FILE",
        help="also save the adapted policy (strategies maml, rl2, align, translate, metafit, "
        "priorfit, selffit, selfread); load it with metaxm.AdaptedPolicy.load(FILE)",
    )
    parser.add_argument("--device", help="load the agent onto this device (e.g. cuda)")
    parser.add_argument(
        "--add-family",
        action="store_true",
        help="the modality's family is not one the agent was trained with: give the agent a "
        "fresh encoder for it (strategies that train it: finetune, align, metafit, selffit, "
        "scratch; translate, selfread and priorfit read the family through their translators)",
    )


def run(args: argparse.Namespace) -> int:
    import json

    from metaxm.errors import ConfigError
    from metaxm.evaluate.loading import add_family, load_agents
    from metaxm.evaluate.strategies import STRATEGIES
    from metaxm.modalities import parse_modality_id
    from metaxm.run.rundir import check_result_path

    if not 0 <= args.episodes <= 4096:
        raise ConfigError(f"--episodes: need K from 0 to 4096, got {args.episodes}")
    if not 0 <= args.seed <= 2**62:
        raise ConfigError(f"--seed: need 0 to 2**62, got {args.seed}")
    if args.out is not None:
        check_result_path(args.out)  # "" is refused, not taken for the default
    # loading imports the saved spec's imports: first, so a plugin's family and strategy are known
    agents = load_agents(args.checkpoint, device=args.device)
    try:
        family, variant = parse_modality_id(args.modality)
    except ValueError as err:
        raise ConfigError(f"--modality: {err}") from None
    if args.strategy not in STRATEGIES:
        raise ConfigError(
            f"--strategy: unknown strategy {args.strategy!r}; choose from {', '.join(STRATEGIES)}"
        )
    default = f"adapt-{family}-{variant}-{args.strategy}-{args.episodes}-s{args.seed}.json"
    out = Path(args.out or default)
    check_result_path(out)  # before the adaptation runs, so its work is never lost
    if out.is_file() and not _a_result(out):
        raise ConfigError(
            f"--out {out} exists and holds no metaxm adapt result (a run's eval.json?); choose "
            "another file"
        )
    strategy = STRATEGIES[args.strategy]
    if args.save_policy is not None:
        if strategy.learner is None:
            with_learner = [n for n, s in STRATEGIES.items() if s.learner is not None]
            raise ConfigError(
                f"--save-policy: {args.strategy} has no learner and gives no policy to save; "
                f"use {', '.join(with_learner)}"
            )
        check_result_path(args.save_policy, "--save-policy", example="policy.pt")
        if Path(args.save_policy).resolve() == out.resolve():
            raise ConfigError("--save-policy: the same file as --out")
    why = strategy.unavailable(agents)
    if why is not None:
        raise ConfigError(
            f"--strategy {args.strategy}: cannot run here: {why}; {args.checkpoint} holds: "
            f"{', '.join(agents.by_kind)}"
        )
    readers = next(iter(agents.by_kind.values())).families
    if family not in readers:
        able = [n for n, s in STRATEGIES.items() if s.trains_encoder]
        if not args.add_family:
            raise ConfigError(
                f"--modality: the agent has no encoder for family {family!r}; it reads: "
                f"{', '.join(readers)}; pass --add-family to give it a fresh one (strategies "
                f"{', '.join(able)})"
            )
        if not strategy.trains_encoder:
            raise ConfigError(
                f"--add-family: {args.strategy} does not train an encoder, so it cannot read "
                f"a new family; use one of {', '.join(able)}"
            )
        add_family(agents, family, seed=args.seed)
    elif args.add_family:
        raise ConfigError(f"--add-family: the agent already reads {family!r}")
    budgets = sorted({0, args.episodes})
    curve = strategy.curve(agents, family, variant, budgets, args.seed)
    result = {
        "checkpoint": str(args.checkpoint), "modality": f"{family}:{variant}",
        "strategy": args.strategy, "budgets": budgets, **curve,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)  # as --save-policy's, render's, evaluate's
    out.write_text(json.dumps(result, indent=2) + "\n")
    saved = None
    if args.save_policy is not None:
        policy = strategy.policy(agents, family, variant, args.episodes, args.seed)
        saved = policy.save(args.save_policy)
    print(f"{args.strategy} on {family}:{variant} ({args.episodes} episodes of experience)")
    print(f"  {'episodes':>8}{'return':>10}{'success':>10}{'steps':>8}")
    for i, k in enumerate(budgets):
        print(
            f"  {k:>8}{curve['return'][i]:>10.3f}{curve['success'][i]:>10.3f}"
            f"{curve['steps'][i]:>8.1f}"
        )
    if args.episodes > 0 and curve.get("read", [1.0])[-1] == 0.0:
        episodes = f"{args.episodes} episode{'s' if args.episodes > 1 else ''}"
        print(
            f"  ({args.strategy} read nothing from its {episodes}: the agent met the modality "
            "as it is; another --seed, or more episodes, may read it)"
        )
    print(f"saved: {out}")
    if saved is not None:
        print(f"policy: {saved}")
    return 0


def _a_result(path: Path) -> bool:
    """Whether ``path`` holds what ``metaxm adapt`` writes (only that is replaced)."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"checkpoint", "modality", "strategy", "budgets"} <= set(data)
