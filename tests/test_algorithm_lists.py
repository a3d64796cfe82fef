"""The places a new algorithm or learner joins agree: ``build.TRAINERS``, the ``algo`` literal
of ``Spec``, the main job's ``RUN_NAMES``, the evaluator's ``KINDS``, ``AgentKind`` and
``LEARNER_KINDS``, ``metaxm.learners.LEARNERS`` and the public ``metaxm.<Name>``. One missing
entry fails here, with its name, rather than in a user's run."""

from __future__ import annotations

import typing

import metaxm
from metaxm.build import TRAINERS
from metaxm.config.main import RUN_NAMES
from metaxm.evaluate.loading import KINDS, LEARNER_KINDS
from metaxm.evaluate.strategies import STRATEGIES, AgentKind
from metaxm.learners import LEARNERS
from metaxm.spec import Spec


def test_every_list_of_algorithms_names_the_same_ones() -> None:
    algos = set(TRAINERS)
    assert set(typing.get_args(typing.get_type_hints(Spec)["algo"])) == algos, "Spec.algo"
    assert set(RUN_NAMES) == algos | {"pretrain"}, "config/main.py RUN_NAMES"
    assert set(KINDS) == algos, "evaluate/loading.py KINDS"
    assert set(typing.get_args(AgentKind)) == algos, "evaluate/strategies.py AgentKind"


def test_every_learner_is_built_on_a_loaded_kind_and_is_public() -> None:
    built = {name for _, name in LEARNER_KINDS}
    assert built == set(LEARNERS), "evaluate/loading.py LEARNER_KINDS"
    assert {kind for kind, _ in LEARNER_KINDS} <= set(KINDS)
    for kind, name in LEARNER_KINDS:
        assert kind in LEARNERS[name].algos, f"{name} does not adapt a {kind} run's agent"
    for cls in LEARNERS.values():
        assert getattr(metaxm, cls.__name__) is cls, f"metaxm.{cls.__name__}"
    named = {s.learner for s in STRATEGIES.values() if getattr(s, "learner", None)}
    assert named <= set(LEARNERS), "a strategy names a learner LEARNERS lacks"
