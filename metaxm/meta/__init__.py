"""Meta-learning outer loops: MAML (:mod:`.maml`) and RL^2 (:mod:`.rl2`, :mod:`.trials`).

Import the modules directly; this package imports nothing heavy.
"""
