# Two commands: `make lab` and `make test`. Both install what is missing and are quick when nothing is.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?=

.PHONY: lab test install system-deps lint bench doctor clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

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

test: install system-deps
	$(PY) -m ruff check .
	$(PY) -m pytest -q --nbmake tests notebooks examples

bench: install
	@for b in bench/*/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

doctor: install
	$(VENV)/bin/labkit doctor

clean:
	rm -rf $(VENV) .labkit test-artifacts
