"""The gymnasium ids of metaxm's worlds, registered by ``import metaxm`` without importing torch.

``gym.make("metaxm/GridNav-v0", modality="pixels")`` then works after ``import metaxm``, and
``gym.make("metaxm:metaxm/GridNav-v0", ...)`` (gymnasium's ``module:id`` form) with no import
at all. The entry points are strings, so nothing heavy loads until an env is made. A world
registered later with :func:`metaxm.envs.register_world` gets ``metaxm/<ConfigName>-v0``.

gymnasium 1.x has no plugin entry-point group (``gymnasium.envs`` was dropped in 1.0), so a
package cannot register ids without being imported; the ``module:id`` form is its replacement.
"""

from __future__ import annotations

GYM_IDS = {
    "gridnav": "metaxm/GridNav-v0",
    "pointnav": "metaxm/PointNav-v0",
    "gridnav_lang": "metaxm/GridNavLang-v0",
    "minigrid": "metaxm/MiniGrid-v0",  # building one needs the minigrid extra
    "gym": "metaxm/Gym-v0",  # any gymnasium env: gym.make("metaxm/Gym-v0", env_id="CartPole-v1")
}
"""World name -> registered gymnasium id."""


def register(world: str, env_id: str) -> None:
    """Register ``env_id`` for ``world`` with gymnasium (idempotent)."""
    import gymnasium as gym

    if env_id not in gym.registry:
        gym.register(
            id=env_id,
            entry_point="metaxm.envs.gym_api:MetaxmEnv",
            vector_entry_point="metaxm.envs.gym_api:MetaxmVectorEnv",
            kwargs={"world": world},
        )


def register_builtin() -> None:
    """Register the ids of :data:`GYM_IDS`; a no-op without gymnasium."""
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        return
    for world, env_id in GYM_IDS.items():
        register(world, env_id)
