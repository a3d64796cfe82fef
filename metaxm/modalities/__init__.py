"""Modality families: each renders world scenes into one kind of observation.

Built in: ``vector``, ``projected``, ``pixels``, ``text``, ``audio`` (see each module's
docstring for what its variants change). Add your own with :func:`register`.
"""

from __future__ import annotations

from metaxm.modalities.audio import AudioFamily
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
from metaxm.modalities.minigrid import MiniGridRGBFamily, MiniGridSymbolicFamily
from metaxm.modalities.pixels import PixelsFamily
from metaxm.modalities.projected import ProjectedFamily
from metaxm.modalities.text import TextFamily
from metaxm.modalities.vector import VectorFamily

for _family in (VectorFamily(), ProjectedFamily(), PixelsFamily(), TextFamily(), AudioFamily()):
    register_family(_family)
for _family in (MiniGridSymbolicFamily(), MiniGridRGBFamily()):  # MiniGrid scenes only
    register_family(_family)

__all__ = [
    "FAMILIES",
    "AudioFamily",
    "Family",
    "MiniGridRGBFamily",
    "MiniGridSymbolicFamily",
    "Modality",
    "PixelsFamily",
    "ProjectedFamily",
    "TextFamily",
    "VectorFamily",
    "expand_params",
    "get_family",
    "parse_modality_id",
    "register",
    "register_family",
    "stack_params",
]
