# `make run`: set up .venv if needed and run the main job on the default task spec.
# `make test`: set up .venv if needed and run the fast test tier.
# `make results`: regenerate the README's headline numbers (docs/main-report.md, docs/results/).
# The install (torch, then the package with the dev, text and minigrid extras, so every test
# runs) is skipped when setup.cfg, pyproject.toml, constraints.txt and this file have not
# changed since the last. constraints.txt pins every package to the versions the documented
# numbers were made with (on Python 3.11; other versions resolve setup.cfg's ranges freely);
# `make lock` rewrites it from .venv, `make ... CONSTRAINTS=` installs without it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEC ?= tasks/gridnav.yaml
OUT ?= runs/main
CONSTRAINTS ?= constraints.txt
PYTEST_ARGS ?=
ONLY ?=

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: run test test-slow lint format bench results clean lock

$(STAMP): setup.cfg pyproject.toml Makefile $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[dev,text,minigrid]"
	touch $(STAMP)

# pin .venv's versions (the torch build's local label dropped) for Python 3.11
lock: $(STAMP)
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | sed -e 's/+cpu$$//' -e 's/$$/ ; python_version == "3.11"/'; } > constraints.tmp
	mv constraints.tmp constraints.txt

run: $(STAMP)
	$(BIN)/metaxm main $(SPEC) --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the README's headline numbers, each page naming its command and commit (about three hours);
# `make results ONLY="main selfread"` runs only those jobs (scripts/results.py --help)
results: $(STAMP)
	$(BIN)/python scripts/results.py $(foreach job,$(ONLY),--only $(job))

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/metaxm bench envs

clean:
	rm -rf $(VENV) runs build *.egg-info
