"""Reinforcement learning: batched rollouts, GAE, PPO (the from-scratch baseline).

:mod:`.ppo` holds the algorithm (config, loss, update), :mod:`.trainer` the run-loop trainer
that owns environments and agent; import them directly (this package imports nothing heavy).
"""

from __future__ import annotations
