"""Studies: code that produces a page of ``docs/``, not part of the installed library.

Each module measures one question with the library's public pieces; the scripts in
``scripts/`` are their command lines (they put the repository root on ``sys.path``):

* :mod:`studies.in_context`: RL^2's in-context gain by episode (``scripts/rl2_trials.py``,
  ``docs/rl2.md``);
* :mod:`studies.paraphrases`: instruction encoders on held-out paraphrases
  (``scripts/lang_paraphrases.py``, ``docs/language.md``);
* :mod:`studies.align_fewshot`: how well k paired steps align a held-out family after
  pretraining (``scripts/align_fewshot.py``, ``docs/alignment.md``);
* :mod:`studies.results`: the jobs of ``make results`` (``scripts/results.py``), each writing
  one page of ``docs/results/`` or ``docs/main-report.md``.
"""
