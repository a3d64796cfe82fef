"""The errors metaxm raises for things a user can fix; the CLI prints them as one line."""

from __future__ import annotations


class MetaxmError(Exception):
    """Base class: a problem with the user's input or files, not a bug in metaxm."""


class ConfigError(MetaxmError, ValueError):
    """A config, spec, override or command-line value is wrong; the CLI exits with status 2."""


class CheckpointError(MetaxmError):
    """A checkpoint is missing, truncated, corrupt or unsafe to load."""


class DivergenceError(MetaxmError):
    """Training produced a NaN or inf; the message names the step and the quantity."""
