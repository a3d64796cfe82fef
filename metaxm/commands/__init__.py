"""Subcommands of the ``metaxm`` CLI, one module each (see :mod:`metaxm.cli`)."""
