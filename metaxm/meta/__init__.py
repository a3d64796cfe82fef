"""Meta-learning outer loops: MAML (:mod:`.maml`) and RL^2 (:mod:`.rl2`, :mod:`.trials`,
:mod:`.trial_eval`).

Import the modules directly; this package imports nothing heavy. ``MAML`` and ``MetaSGD``
(:mod:`.functional`, learn2learn's API for any module) are exported lazily: ``from
metaxm.meta import MAML`` loads torch and that one module, ``import metaxm.meta`` neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metaxm.meta.functional import MAML, MetaSGD

__all__ = ["MAML", "MetaSGD"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from metaxm.meta import functional

        return getattr(functional, name)
    raise AttributeError(f"module 'metaxm.meta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
