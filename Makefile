# unet-course: `make lab` to learn, `make test` to check everything.
# Both create .venv from requirements.txt on first use; nothing is installed globally.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the folder JupyterLab opens: `make lab LAB_DIR=exercises` for the exercise edition
LAB_DIR ?= notebooks
# JupyterLab refuses to start as root without --allow-root (containers, CI)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test exercises launch wheel site site-test clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $@

lab: $(VENV)/.installed
	$(BIN)/jupyter lab --notebook-dir=$(LAB_DIR) --ServerApp.ip=127.0.0.1 --no-browser $(ROOT_FLAG)

# two pytest workers (pytest-xdist), each file in one worker (nbval runs a notebook's cells in order
# in one kernel), each worker one thread unless OMP_NUM_THREADS says otherwise: both cores busy
# without oversubscribing them. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

test: $(VENV)/.installed
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# the exercise editions: exercises/NN_*.ipynb from notebooks/NN_*.ipynb (solution bodies -> skeletons),
# then the Chinese edition: zh/notebooks and zh/exercises from notebooks/ and i18n/zh/ (i18n/README.md)
exercises: $(VENV)/.installed
	$(BIN)/python -m unet_lib.exercises
	$(BIN)/python -m unet_lib.translation

# the launch cells (Colab and Binder badges, Colab's install cell) of notebooks/ from pyproject.toml's
# address and version, then the exercise editions and the Chinese edition, which carry them too
launch: $(VENV)/.installed
	$(BIN)/python -m unet_lib.launch
	$(BIN)/python -m unet_lib.exercises
	$(BIN)/python -m unet_lib.translation

# the package as a wheel, in dist/
wheel: $(VENV)/.installed
	$(BIN)/python -m pip wheel --no-deps --wheel-dir dist .

# the course website in _build/site/, from the notebooks' stored outputs (nothing is re-run).
# Jupyter Book lives in its own environment, .venv-site (requirements-site.txt): it caps Sphinx,
# docutils and others, and must not change what the course itself runs with.
SITE_VENV ?= .venv-site

$(SITE_VENV)/.installed: requirements-site.txt
	test -x $(SITE_VENV)/bin/python || $(PYTHON) -m venv $(SITE_VENV)
	$(SITE_VENV)/bin/python -m pip install --upgrade pip
	$(SITE_VENV)/bin/python -m pip install -r requirements-site.txt
	touch $@

site: $(VENV)/.installed $(SITE_VENV)/.installed
	$(BIN)/python site/build.py --jupyter-book $(SITE_VENV)/bin/jupyter-book

# every page of the built site in headless Chromium, served from 127.0.0.1 (after `make site`)
site-test: $(VENV)/.installed
	$(BIN)/python -m pytest tests/site_pages.py

clean:
	rm -rf $(VENV) $(SITE_VENV) _build dist .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
