"""``python -m metaxm`` is the ``metaxm`` command."""

from __future__ import annotations

import sys

from metaxm.cli import main

if __name__ == "__main__":
    sys.exit(main())
