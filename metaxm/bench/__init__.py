"""Benchmarks behind ``metaxm bench``: ``envs`` (batched worlds against gymnasium's vector envs).

Each benchmark is a module with a function that returns records and leaves printing to the
command (:mod:`metaxm.commands.bench`).
"""

from __future__ import annotations
