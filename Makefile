# One command to set up and run the demo, one to set up and run the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

# The core package (enough for the demo: PyAV, OpenCV, NumPy, Arrow).
$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# Everything the tests use: torch, torchvision, ONNX Runtime, yt-dlp, pycocotools, linters.
$(VENV)/.dev: $(VENV)/.core pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.dev

demo: $(VENV)/.core
	$(BIN)/flickermine demo --out demo-output --overwrite

test: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_mine.py
	$(BIN)/python benchmarks/bench_hardpos.py
	$(BIN)/python benchmarks/bench_real.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_dataset.py
	$(BIN)/python benchmarks/bench_detect.py --frames 100
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
