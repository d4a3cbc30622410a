# make run   install what is needed and run the service (web + jobs) on the embedded default
# make test  install what is needed and run the whole test suite on SQLite, then PostgreSQL + Redis
# make demo  run the service against a local IMAP server and receiver, with sample orders (Ctrl-C stops it)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint install install-dev install-browser install-tools install-promtool demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	DEBUG=$${DEBUG:-true} HOST=$${HOST:-127.0.0.1} $(BIN)/python manage.py serve

# The browser tests drive Debian's Chromium (root installs it; elsewhere they are skipped, saying why).
install-browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium chromium-driver >/dev/null; } || echo "Chromium could not be installed"

# actionlint runs shellcheck on the workflows' scripts when it is there, as on GitHub's runners.
install-tools:
	@command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq shellcheck >/dev/null; } || echo "shellcheck could not be installed"

# The alert rules are checked by promtool, taken from Debian's prometheus package without
# installing the server (no service starts); where apt cannot fetch it, those tests are skipped, saying why.
install-promtool: | $(BIN)/python
	@command -v promtool >/dev/null || [ -x $(BIN)/promtool ] || { tmp=$$(mktemp -d) && cd $$tmp \
	  && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; } \
	  && dpkg-deb -x prometheus_*.deb . && cp usr/bin/promtool $(CURDIR)/$(BIN)/promtool; rm -rf $$tmp; } \
	  || echo "promtool could not be installed"

test: install-dev install-browser install-tools install-promtool
	scripts/test

demo: install-dev
	$(BIN)/python -m demo

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
