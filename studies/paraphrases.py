"""Held-out paraphrases: does an instruction encoder follow phrasings it never read in training?

:func:`paraphrase_study` trains one PPO agent per (instruction encoder, seed) on a spec whose
world gives instructions (``gridnav_lang`` with ``paraphrases: train``), all with the same
budget (``train.total_steps``), then evaluates each on fresh episodes twice: with the training
paraphrases and with the held-out ones (the same world with ``paraphrases: heldout``, whose
templates use words training never showed). ``scripts/lang_paraphrases.py`` is its command line.

The evaluation is :func:`metaxm.rl.evaluate.evaluate_agent` (deterministic policy, sampled
policy and the oracle on the same episodes) on the spec's training modality variants, from a
seed that training never used.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metaxm.errors import ConfigError
from metaxm.rl.evaluate import evaluate_agent
from metaxm.rl.trainer import PPOTrainer

if TYPE_CHECKING:
    from metaxm.spec import Spec

logger = logging.getLogger(__name__)

EVAL_SEED = 424_242
"""Seeds the fresh evaluation episodes (training draws from seeds derived from ``spec.seed``)."""


def train_agent(spec: Spec) -> tuple[PPOTrainer, float]:
    """PPO on ``spec`` for ``train.total_steps`` in memory; the trainer and the seconds taken."""
    trainer = PPOTrainer(spec)
    start = time.perf_counter()
    for _ in range(trainer.num_updates):
        trainer.update()
    return trainer, time.perf_counter() - start


def evaluate_paraphrases(trainer: PPOTrainer, episodes: int) -> dict[str, dict[str, float]]:
    """``{"train" | "heldout": evaluation}`` of a trained agent on the two paraphrase splits."""
    spec = trainer.spec
    variants = {f: trainer.sampler.splits["train"][f] for f in trainer.families}
    out = {}
    for split in ("train", "heldout"):
        world = dataclasses.replace(spec.world, paraphrases=split)
        out[split] = evaluate_agent(
            trainer.agent, dataclasses.replace(spec, world=world), variants, episodes, EVAL_SEED
        )
    return out


def paraphrase_study(
    spec: Spec,
    encoders: Sequence[str] = ("learned", "minilm"),
    seeds: Sequence[int] = (0, 1),
    episodes: int = 512,
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every (encoder, seed); see the module docstring.

    Args:
        spec: a PPO spec of an instruction world with ``paraphrases: train``.
        encoders: values of ``agent.instruction`` to compare.
        seeds: values of ``seed`` (weights, training tasks, variants).
        episodes: evaluation episodes per split and family.
        out: write ``paraphrases.json`` there (one record per run) when given.

    Returns:
        One record per run: ``encoder``, ``seed``, ``env_steps``, ``seconds`` and, per split,
        ``success`` (deterministic), ``sampled_success``, ``return``, ``oracle_return``.
    """
    if getattr(spec.world, "paraphrases", None) != "train":
        raise ConfigError("world: the paraphrase study needs gridnav_lang with paraphrases: train")
    records = []
    for encoder in encoders:
        for seed in seeds:
            agent = dataclasses.replace(spec.agent, instruction=encoder)
            run = dataclasses.replace(spec, seed=int(seed), agent=agent)
            logger.info("paraphrase study: %s, seed %d", encoder, seed)
            trainer, seconds = train_agent(run)
            scores = evaluate_paraphrases(trainer, episodes)
            record: dict[str, Any] = {
                "encoder": encoder,
                "seed": int(seed),
                "env_steps": trainer.env_steps,
                "seconds": round(seconds, 1),
            }
            for split, result in scores.items():
                record[split] = {
                    k: result[k] for k in ("success", "sampled_success", "return", "oracle_return")
                }
            records.append(record)
            if out is not None:
                path = Path(out)
                path.mkdir(parents=True, exist_ok=True)
                (path / "paraphrases.json").write_text(json.dumps(records, indent=2))
    return records


def paraphrase_table(records: list[dict[str, Any]]) -> str:
    """A markdown table of :func:`paraphrase_study`'s records, one row per run, then means."""
    lines = [
        "| encoder | seed | env steps | success, train paraphrases | success, held-out "
        "paraphrases | sampled, train | sampled, held-out |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['encoder']} | {r['seed']} | {r['env_steps']:,} | {r['train']['success']:.3f} "
            f"| {r['heldout']['success']:.3f} | {r['train']['sampled_success']:.3f} "
            f"| {r['heldout']['sampled_success']:.3f} |"
        )
    for encoder in dict.fromkeys(r["encoder"] for r in records):
        rows = [r for r in records if r["encoder"] == encoder]

        def mean(split: str, key: str, rows: list[dict[str, Any]] = rows) -> float:
            return sum(r[split][key] for r in rows) / len(rows)

        lines.append(
            f"| **{encoder} (mean of {len(rows)})** | | | **{mean('train', 'success'):.3f}** "
            f"| **{mean('heldout', 'success'):.3f}** | {mean('train', 'sampled_success'):.3f} "
            f"| {mean('heldout', 'sampled_success'):.3f} |"
        )
    return "\n".join(lines)
