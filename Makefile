# Two commands: `make lab` and `make test`. Both install what is missing and are quick when nothing is.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PORT   ?=

.PHONY: lab test install install-test system-deps lint bench doctor clean

$(PY):
	@echo "labkit: making a Python environment in $(VENV)/"
	@$(PYTHON) -m venv $(VENV)

# `make lab` installs what the lab needs; `make test` adds the test tools (pytest, Playwright, ruff, ...).
# Each reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	@echo "labkit: installing the lab's Python packages into $(VENV)/ (the vonage SDK, Flask, uvicorn, JupyterLab,"
	@echo "        numpy, scipy, soundfile, matplotlib, ipywidgets, pyngrok; a minute or two the first time) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -e .
	@touch $(STAMP)

$(TEST_STAMP): pyproject.toml $(STAMP)
	@echo "labkit: installing the test tools into $(VENV)/ (pytest, nbmake, Playwright, ruff, import-linter) ..."
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(TEST_STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

# Debian chromium for the browser tests (never `playwright install`: it downloads a browser); node/npm.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@# node + npm: the standalone sandbox test drives it with Vonage's Node SDK too
	@{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }

# `make lab PORT=9000` asks for a port; a taken port falls back to the next free one (the URL printed
# is the server actually started, with its token).
lab: install
	$(PY) -m labkit.cli lab $(if $(PORT),--port $(PORT))

# The suite runs on TEST_JOBS pytest-xdist workers (each with its own sandboxes, ports and folders), taking
# tests one by one as workers free up (worksteal: a few long tests do not hold the end back). Most tests
# wait on the clock, sockets or a browser, so 4 workers fit 2 cores; `make test TEST_JOBS=0` runs serially.
TEST_JOBS ?= 4

test: install-test system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -q --nbmake $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist worksteal) tests notebooks examples

bench: install-test
	@for b in bench/*/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

doctor: install
	$(VENV)/bin/labkit doctor

clean:
	rm -rf $(VENV) .labkit test-artifacts
