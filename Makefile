# Two entry points for a fresh machine (see README): `make lab` (or headless, `make reports`)
# and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8765
LAB_PORT ?= 8888
LAB_ARGS ?=
# Installing is remembered in a stamp inside the venv, one per set of extras: each is redone
# only when pyproject.toml changes (or the venv is made anew), so a second `make lab` starts at
# once. `setup` (what `make lab`, `reports` and `sandbox` need) is the package with JupyterLab
# and the MCP SDK template 08 drives; `make test` and `make bench` add their tools on top, so an
# analyst never downloads the suite's (pyspark alone is ~300 MB).
INSTALLED := $(VENV)/.installed-lab
INSTALLED_TEST := $(VENV)/.installed-test
INSTALLED_BENCH := $(VENV)/.installed-bench

.PHONY: setup lab reports sandbox test bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lab,mcp]'
	touch $@

# After setup's install (order-only: two pips never share the venv at once, even with -j).
$(INSTALLED_TEST): pyproject.toml | $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(INSTALLED_BENCH): pyproject.toml | $(INSTALLED_TEST)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

setup: $(INSTALLED)

# The main job: JupyterLab on the cockpit (notebooks/00-cockpit.ipynb), with the sandbox
# serving on :$(PORT) beside it. JupyterLab takes :$(LAB_PORT), or the next free port after it.
lab: setup
	$(BIN)/etoro-nb lab notebooks --port $(PORT) --seed 42 -- --ServerApp.port=$(LAB_PORT) $(LAB_ARGS)

# The same, headless: run every template on the sandbox, one HTML report each in reports/.
reports: setup
	$(BIN)/etoro-nb report notebooks/0*.ipynb -o reports

# The sandbox alone, serving the agent-portfolio API on :$(PORT).
sandbox: setup
	$(BIN)/etoro-nb sandbox serve --port $(PORT) --seed 42

# Lint and strict type checks first: a cheap failure beats a slow one.
test: $(INSTALLED_TEST)
test: setup
	$(BIN)/ruff check etoro_nb widgets tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Benchmarks: each compares against a baseline in the same run and prints its ratio. Their
# extra dependencies (and the suite's: some run Spark, PostgreSQL or the MCP server) are
# installed once, as setup's are.
bench: $(INSTALLED_BENCH)
bench: setup
	$(BIN)/python bench/client_overhead.py
	$(BIN)/python bench/quota_efficiency.py
	$(BIN)/python bench/ledger_recording.py
	$(BIN)/python bench/ledger_load.py
	$(BIN)/python bench/panels.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/mcp.py
	$(BIN)/python bench/import_time.py
	$(BIN)/python bench/team_ledger.py
	$(BIN)/python bench/dataset_audit.py
