# Every target sets itself up from a fresh clone: .venv is created and the
# package installed on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export ASSETS_PKG_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(ASSETS_PKG_DATA_DIR)/.dagster

.PHONY: demo test ui bench services install install-dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,torch]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-bench
	$(BIN)/pip install -q -e '.[dev,torch,bench]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	@mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/assets-pkg demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --timeout 600

# dagster dev starts the webserver and the daemon, which open the instance together: create
# it first, under assets_pkg's lock, so a fresh data root is never initialized twice at once.
ui: $(VENV)/.installed
	$(BIN)/assets-pkg init
	@echo "Dagster UI: http://127.0.0.1:3000 (Ctrl-C stops the webserver and the daemon)"
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# Postgres and Redis for the cluster profile on 127.0.0.1 (docs/deploy.md), from the
# packages the dev extra installs; prints the URLs to export, Ctrl-C stops both.
services: $(VENV)/.installed-dev
	$(BIN)/python -m assets_pkg_tests.services

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data bench/out
