"""metaxm: meta-reinforcement learning for fast adaptation to new observation modalities.

The same task reaches an agent as a state vector, a re-wired sensor bank, pixels, text or an
audio-like signal; metaxm meta-trains across such modality families and measures how fast an
agent adapts to modalities it never saw. See ``docs/architecture.md`` for the map.

The public API, loaded on first use (``import metaxm`` itself loads no torch)::

    import metaxm

    spec = metaxm.load_spec("tasks/gridnav.yaml")
    learner = metaxm.MAML.from_run("runs/main/maml")  # or RL2, Align, Translate, SelfRead, ...
    env = metaxm.make_env(learner.spec, "vector", 1001, num_envs=8, seed=1)
    policy = learner.adapt(env, episodes=8)                 # an AdaptedPolicy
    policy.evaluate(env), policy.save("adapted.pt")

    metaxm.train(spec, "runs/mine")                       # what ``metaxm train`` runs
    report = metaxm.run_evaluation(metaxm.load_agents("runs/mine"))  # ``metaxm evaluate``
    metaxm.write_report(report, "runs/mine/report")
"""

from __future__ import annotations

__version__ = "0.1.0"

from metaxm.gym_ids import register_builtin as _register_gym_ids

_register_gym_ids()  # gym.make("metaxm/GridNav-v0", ...) after `import metaxm` (torch not loaded)

_API = {
    "MAML": "metaxm.learners",
    "RL2": "metaxm.learners",
    "Align": "metaxm.learners",
    "MetaFit": "metaxm.learners",
    "PriorFit": "metaxm.learners",
    "SelfFit": "metaxm.learners",
    "SelfRead": "metaxm.learners",
    "Translate": "metaxm.learners",
    "Learner": "metaxm.learners",
    "AdaptedPolicy": "metaxm.learners",
    "make_env": "metaxm.build",
    "make_agent": "metaxm.build",
    "make_trainer": "metaxm.build",
    "make_learner": "metaxm.build",
    "load_spec": "metaxm.spec",
    "Spec": "metaxm.spec",
    "train": "metaxm.run.loop",
    "load_agents": "metaxm.evaluate.loading",
    "run_evaluation": "metaxm.evaluate.runner",
    "write_report": "metaxm.evaluate.report",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    """``metaxm.MAML`` and the rest of :data:`_API`, imported when first used."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'metaxm' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy API too, so ``dir(metaxm)`` and tab completion offer it."""
    return sorted({*globals(), *__all__})
