# Two entry points for a fresh machine (see README): `make lab` (or headless, `make reports`)
# and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup lab reports sandbox test bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

# The main job: JupyterLab on the templates, with the sandbox serving on :8765 beside it.
lab: setup
	$(BIN)/etoro-nb lab notebooks --port 8765 --seed 42

# The same, headless: run every template on the sandbox, one HTML report each in reports/.
reports: setup
	$(BIN)/etoro-nb report notebooks/0*.ipynb -o reports

# The sandbox alone, serving the agent-portfolio API on :8765.
sandbox: setup
	$(BIN)/etoro-nb sandbox serve --port 8765 --seed 42

# Lint and strict type checks first: a cheap failure beats a slow one.
test: setup
	$(BIN)/ruff check etoro_nb widgets tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Benchmarks: each compares against a baseline in the same run and prints its ratio.
bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/client_overhead.py
	$(BIN)/python bench/quota_efficiency.py
	$(BIN)/python bench/ledger_recording.py
	$(BIN)/python bench/ledger_load.py
	$(BIN)/python bench/panels.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/mcp.py
	$(BIN)/python bench/import_time.py
