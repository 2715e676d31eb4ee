# zpdist: two commands on a fresh machine.
#   make demo   set up, build the mock Galaxy, train, predict, print the summary, and serve the dashboard
#   make test   set up (Python venv, Debian chromium), lint, and run the whole test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zpdist-installed
DEMO_DIR ?= data/demo
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch first (see DEVELOPERS.md), so nothing pulls CUDA wheels
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the real-browser dashboard tests (Playwright drives it; it never downloads a browser)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

demo: setup
	$(VENV)/bin/zpdist demo --out $(DEMO_DIR)
	$(VENV)/bin/zpdist serve --catalog $(DEMO_DIR)/catalog.parquet

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup $(CHROMIUM) lint
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) -m pip install --quiet -e ".[test,bench]"
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) data/demo runs .pytest_cache .ruff_cache
