"""Generalised advantage estimation (Schulman et al. 2016, "High-Dimensional Continuous Control
Using Generalized Advantage Estimation", eq. 16).

Time limits are handled as Pardo et al. (2018, "Time Limits in Reinforcement Learning")
recommend: an episode cut at the horizon (*truncated*) is bootstrapped with the value of its
last observation, while a *terminated* one is not; both end the lambda-trace. (The PPO paper's
reference code, and CleanRL, treat truncation as termination; that biases the value of states
near the horizon.)
"""

from __future__ import annotations

from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Advantages and value targets for a rollout of T steps of B environments.

    Args:
        rewards: (T, B) r_t.
        values: (T, B) V(s_t).
        next_values: (T, B) the value of the state reached by step t: V(s_{t+1}) while the
            episode goes on, V(last observation) where it was truncated (ignored where it
            terminated).
        terminated: (T, B) bool, the episode reached a terminal state at step t.
        done: (T, B) bool, the episode ended at step t (terminated or truncated).
        gamma: the discount.
        lam: the GAE lambda.

    Returns:
        advantages (T, B) and returns = advantages + values (T, B), the value targets.
    """
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - done.float()
    deltas = rewards + gamma * not_term * next_values - values  # (T, B)
    advantages = deltas.clone()
    last = deltas.new_zeros(deltas.shape[1])
    for t in range(deltas.shape[0] - 1, -1, -1):
        last = deltas[t] + gamma * lam * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values
