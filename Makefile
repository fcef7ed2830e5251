# Every target sets itself up from a fresh clone: .venv is created and the
# package installed on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
export ASSETS_PKG_DATA_DIR ?= $(CURDIR)/data
# the instance is always local: beside the data, or in ./.dagster when the data root is a URL
ifneq (,$(findstring ://,$(ASSETS_PKG_DATA_DIR)))
export DAGSTER_HOME ?= $(CURDIR)/.dagster
else
export DAGSTER_HOME ?= $(ASSETS_PKG_DATA_DIR)/.dagster
endif

.PHONY: demo test ui bench services install install-dev clean chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,torch]'
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[dev,torch,bench]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	@mkdir -p "$(DAGSTER_HOME)"
	$(BIN)/assets-pkg demo

test: $(VENV)/.installed-dev chromium
	$(BIN)/python -m pytest -n 2 --timeout 600

# The browser test drives Debian's chromium (Playwright's browser downloads need the
# internet). Installed when missing and we can (root, apt-get); never fails the build: without
# chromium the browser test is skipped and says why.
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the browser test (apt-get install -y chromium)"; \
		apt-get install -y -q chromium >/dev/null 2>&1 \
		|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
		|| echo "chromium could not be installed: the browser test will be skipped"; \
	fi

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
