# unet-course: `make lab` to learn, `make test` to check everything.
# Both create .venv from requirements.txt on first use; nothing is installed globally.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the folder JupyterLab opens: `make lab LAB_DIR=exercises` for the exercise edition
LAB_DIR ?= notebooks
# JupyterLab refuses to start as root without --allow-root (containers, CI)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test exercises clean

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

clean:
	rm -rf $(VENV) .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
