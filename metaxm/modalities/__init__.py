"""Modality families: each renders world scenes into one kind of observation.

Built in: ``vector``, ``projected``, ``pixels``, ``text``, ``audio`` (see each module's
docstring for what its variants change). Add your own with :func:`register`.
"""

from __future__ import annotations

from metaxm.modalities.base import (
    FAMILIES,
    Family,
    Modality,
    expand_params,
    get_family,
    parse_modality_id,
    register,
    register_family,
    stack_params,
)
from metaxm.modalities.vector import VectorFamily

register_family(VectorFamily())

__all__ = [
    "FAMILIES",
    "Family",
    "Modality",
    "expand_params",
    "get_family",
    "parse_modality_id",
    "register",
    "register_family",
    "stack_params",
]
