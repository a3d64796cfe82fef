"""metaxm: meta-reinforcement learning for fast adaptation to new observation modalities.

The same task reaches an agent as a state vector, a re-wired sensor bank, pixels, text or an
audio-like signal; metaxm meta-trains across such modality families and measures how fast an
agent adapts to modalities it never saw. See ``docs/architecture.md`` for the map.
"""

from __future__ import annotations

__version__ = "0.1.0"

from metaxm.gym_ids import register_builtin as _register_gym_ids

_register_gym_ids()  # gym.make("metaxm/GridNav-v0", ...) after `import metaxm` (torch not loaded)
