"""The adversarial sweep of the ``metaxm`` command line (``scripts/bad_inputs.py``, its command
line; ``docs/reliability.md``).

* :mod:`sweep.core`: a case, how its command runs and how its end is classified;
* :mod:`sweep.fixtures`: the TINY runs and the setups that make a case's files;
* :mod:`sweep.cases`: the cases by category;
* :mod:`sweep.special`: the cases that run themselves (concurrency, SIGKILL).

The inputs themselves come from ``tests/bad_inputs.py``, shared with the fuzz test.
"""
