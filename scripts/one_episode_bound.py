#!/usr/bin/env python
"""The most any paired reading of k episodes can reach on GridNav's vector and projected
families, computed from the families' own variant distributions (``docs/transfer-studies.md``
section 29).

Each draw is a fresh variant (seeds from ``--seed``, outside every split), k random-walk
episodes with their true states (the most that paired renders can say: every target
observation beside the state it shows) and a measured episode with a new goal. From the k
episodes' pairs and the measured episode's first target observation, the exact posterior over
the new goal is computed under the family's variant prior, with the agent's cell given:

- ``vector``: each feature is one channel times a gain whose sign is a coin and whose size is
  log-uniform in [0.5, 2]; the goal's two constant channels are known (the walk moves every
  other one), which is the row and which the column and their gains is what the pairs decide;
- ``projected``: the pre-squash sensors ``W s + b + noise`` (``tanh`` is invertible), Gaussian
  ``W`` with the variant's own scale and noise; the bias either known to the reader (an
  oracle) or drawn from its prior (approximated by a Gaussian of the same variance).

Three numbers per case: ``read``, how often the most probable goal is the true one (ties
shared); ``walk``, how often walking to it succeeds within the horizon (passing over the true
goal counts); ``search``, how often visiting the goals in order of probability, within one
episode, does (a cell walked over that did not end the episode is ruled out). No reading that
names one goal can beat ``read``/``walk``: a fit of the k episodes, meta-learned or not, reads
above them only by searching within the measured episode::

    python scripts/one_episode_bound.py --draws 2000 --k 1 2 4 \\
        --variant vector:77882 --variant projected:73849
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from metaxm.envs.base import SceneInfo
from metaxm.modalities import get_family, parse_modality_id

SIZE, HORIZON = 7, 30  # tasks/gridnav.yaml's world
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])
MIN_GAIN, MAX_GAIN = 0.5, 2.0  # metaxm.modalities.vector: log-uniform gain size
NOISE_FLOOR = 1e-3  # projected's noise std, floored so the Gaussian solve stays conditioned
BIAS_VAR = 0.5**2 / 3  # projected's bias: uniform in [-0.5, 0.5]
OUTCOMES = ("read", "walk", "search")
CELLS = np.array([(r, c) for r in range(SIZE) for c in range(SIZE)])


def value(cells: np.ndarray) -> np.ndarray:
    """Feature values of cells (GridNav: index * 2 / (n - 1) - 1)."""
    return cells * (2.0 / (SIZE - 1)) - 1.0


def walk(rng: np.random.Generator, goal: np.ndarray) -> np.ndarray:
    """A uniformly random walk from a random non-goal cell until the goal or the horizon:
    the agent's cells of the observations shown, (T, 2)."""
    start = CELLS[rng.choice([i for i, c in enumerate(CELLS) if (c != goal).any()])]
    cells = [start]
    for _ in range(HORIZON):
        cells.append(np.clip(cells[-1] + MOVES[rng.integers(4)], 0, SIZE - 1))
        if (cells[-1] == goal).all():
            break
    return np.array(cells)


def gain_density(x: np.ndarray) -> np.ndarray:
    """Density of a vector gain: a coin for its sign, its size log-uniform in [0.5, 2]."""
    a = np.abs(x)
    inside = (a >= MIN_GAIN * (1 - 1e-9)) & (a <= MAX_GAIN * (1 + 1e-9))
    return np.where(inside, 0.5 / (np.maximum(a, 1e-12) * math.log(MAX_GAIN / MIN_GAIN)), 0.0)


def channel_fit(c: np.ndarray, v: np.ndarray) -> tuple[float, float | None]:
    """Likelihood that a channel showing ``c`` over the episodes reads a feature whose values
    were ``v`` (a point mass where every value is 0), and the gain it implies (None: open)."""
    zero = np.abs(v) < 1e-12
    if (np.abs(c[zero]) > 1e-9).any() or (np.abs(c[~zero]) < 1e-12).any():
        return 0.0, None
    if zero.all():
        return 1.0, None
    ratio = c[~zero] / v[~zero]
    if not np.allclose(ratio, ratio[0], rtol=1e-7, atol=0):
        return 0.0, None
    return float(gain_density(ratio[:1])[0] / abs(v[~zero][0])), float(ratio[0])


def vector_posterior(params: dict, goals: np.ndarray, new_goal: np.ndarray) -> np.ndarray:
    """(SIZE^2,) posterior over the measured episode's goal cell for a vector variant, from
    the goal channels of the k episodes (goals (k, 2)) and of the measured one."""
    perm, gain = params["perm"].numpy(), params["gain"].double().numpy()
    rows = [int(np.flatnonzero(perm == f)[0]) for f in (2, 3)]  # the goal's two channels
    shown = value(goals)  # (k, 2) the goals' features
    seen = np.stack([gain[j] * shown[:, perm[j] - 2] for j in rows], 1)  # (k, 2)
    now = np.array([gain[j] * value(new_goal)[perm[j] - 2] for j in rows])  # (2,)
    candidate = value(CELLS)  # (SIZE^2, 2)
    post = np.zeros(len(CELLS))
    for order in ((0, 1), (1, 0)):  # which feature each goal channel reads
        weight, reading = 1.0, np.ones(len(CELLS))
        for m, f in enumerate(order):
            like, g = channel_fit(seen[:, m], shown[:, f])
            weight *= like
            v = candidate[:, f]
            if g is not None:
                reading *= np.isclose(now[m], g * v, rtol=1e-7, atol=1e-12)
            else:  # the gain is open: the prior's density of now[m] / v
                zero = np.abs(v) < 1e-12
                dens = gain_density(now[m] / np.where(zero, 1.0, v)) / np.abs(np.where(zero, 1, v))
                reading *= np.where(zero, float(abs(now[m]) < 1e-12), dens)
        post += weight * reading
    return post


def projected_posterior(
    params: dict, walks: list, goals: np.ndarray, start: np.ndarray, new_goal: np.ndarray,
    rng: np.random.Generator, bias_known: bool,
) -> np.ndarray:  # fmt: skip
    """(SIZE^2,) log posterior over the measured episode's goal cell for a projected variant:
    each live sensor's weights Gaussian, fitted to the k episodes' pre-squash readings."""
    weight = params["weight"].double().numpy()
    bias, noise = params["bias"].double().numpy(), params["noise"].double().numpy()
    live = np.abs(weight).sum(1) > 0
    weight, bias, sigma = weight[live], bias[live], max(float(noise[live][0]), NOISE_FLOOR)
    tau2 = float((weight**2).mean())  # the variant's own scale, given to the reader

    def state(agent: np.ndarray, goal: np.ndarray) -> np.ndarray:
        s = np.concatenate([value(agent), np.broadcast_to(value(goal), agent.shape)], 1)
        return s if bias_known else np.concatenate([s, np.ones((len(s), 1))], 1)

    def read(s: np.ndarray) -> np.ndarray:
        z = s[:, :4] @ weight.T + bias + sigma * rng.standard_normal((len(s), len(bias)))
        return z - bias if bias_known else z

    x = np.concatenate([state(w, g) for w, g in zip(walks, goals, strict=True)])
    y = read(x)
    prior = np.full(x.shape[1], 1 / tau2)
    if not bias_known:
        prior[-1] = 1 / BIAS_VAR
    cov = np.linalg.inv(x.T @ x / sigma**2 + np.diag(prior))
    mean = cov @ x.T @ y / sigma**2  # (p, sensors)
    seen = read(state(start[None], new_goal))[0]
    xs = np.stack([state(start[None], c)[0] for c in CELLS])  # every candidate goal
    var = np.einsum("cp,pq,cq->c", xs, cov, xs) + sigma**2
    err = ((seen[None] - xs @ mean) ** 2).sum(1)
    return -0.5 * (err / var + len(bias) * np.log(var))


def path(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """The cells walked from a to b, rows first."""
    cells, pos = [], a.copy()
    for axis in (0, 1):
        while pos[axis] != b[axis]:
            pos = pos.copy()
            pos[axis] += np.sign(b[axis] - pos[axis])
            cells.append(pos)
    return cells


def outcomes(logp: np.ndarray, start: np.ndarray, goal: np.ndarray) -> tuple[float, bool, bool]:
    """(read, walk, search) for one draw, from the log posterior over cells."""
    ok = (start != CELLS).any(1) & np.isfinite(logp)
    best = np.flatnonzero(ok & (logp >= logp[ok].max() - 1e-9))
    truth = int(goal[0] * SIZE + goal[1])
    read = float(truth in best) / len(best)
    walked = any((c == goal).all() for c in path(start, CELLS[best[0]])[:HORIZON])
    order = sorted(np.flatnonzero(ok), key=lambda i: (-logp[i], np.abs(CELLS[i] - start).sum()))
    pos, steps, ruled = start, 0, set()
    for i in order:
        if i in ruled:
            continue
        for cell in path(pos, CELLS[i]):
            steps += 1
            if (cell == goal).all():
                return read, walked, steps <= HORIZON
            ruled.add(int(cell[0] * SIZE + cell[1]))
            if steps >= HORIZON:
                return read, walked, False
        pos = CELLS[i]
    return read, walked, False


def run(
    family: str, k: int, draws: int, seed: int, bias_known: bool, variant: int | None = None
) -> np.ndarray:
    """(draws, 3) read / walk / search for ``family`` after ``k`` paired episodes: a fresh
    variant (seeds from ``seed``) in every draw, or ``variant`` in all of them."""
    info = SceneInfo(feature_dim=4, layout_size=SIZE)
    rng, out = np.random.default_rng(seed), []
    for n in range(draws):
        params = get_family(family).variant(seed + n if variant is None else variant, info)
        goals = CELLS[rng.choice(len(CELLS), k)]
        walks = [walk(rng, g) for g in goals]
        new_goal = CELLS[rng.integers(len(CELLS))]
        start = walk(rng, new_goal)[0]
        if family == "vector":
            with np.errstate(divide="ignore"):
                logp = np.log(vector_posterior(params, goals, new_goal))
        else:
            logp = projected_posterior(params, walks, goals, start, new_goal, rng, bias_known)
        out.append(outcomes(logp, start, new_goal))
    return np.array(out, dtype=float)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=2000, help="variants drawn per case")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2], help="paired episodes")
    parser.add_argument("--seed", type=int, default=1000, help="first variant seed")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="FAMILY:SEED",
        help="also measure this one variant over --draws tasks (repeatable)",
    )
    parser.add_argument("--out", type=Path, help="write one-episode-bound.json here")
    args = parser.parse_args(argv)
    try:
        fixed = [parse_modality_id(v) for v in args.variant]
    except ValueError as err:
        parser.exit(2, f"one_episode_bound.py: error: {err}\n")
    if args.draws < 1 or min(args.k) < 1:
        parser.exit(2, "one_episode_bound.py: error: --draws and --k must be >= 1\n")
    if any(f not in ("vector", "projected") for f, _ in fixed):
        parser.exit(2, "one_episode_bound.py: error: --variant: only vector or projected\n")
    cases = [("vector", True, None), ("projected", True, None), ("projected", False, None)]
    cases += [(f, True, v) for f, v in fixed] + [(f, False, v) for f, v in fixed if f != "vector"]
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for k in args.k:
        for family, bias_known, variant in cases:
            got = run(family, k, args.draws, args.seed, bias_known, variant)
            mean = got.mean(0)
            half = 1.96 * got.std(0) / math.sqrt(len(got))
            name = family if variant is None else f"{family}:{variant}"
            name += " (bias known)" if bias_known and family == "projected" else ""
            table.setdefault(f"k={k}", {})[name] = {
                n: [float(m), float(h)] for n, m, h in zip(OUTCOMES, mean, half, strict=True)
            }
            cells = ", ".join(f"{n} {m:.3f} +- {h:.3f}" for n, m, h in
                              zip(OUTCOMES, mean, half, strict=True))  # fmt: skip
            print(f"k = {k}, {name}: {cells}", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "one-episode-bound.json").write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
