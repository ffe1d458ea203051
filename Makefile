# AgentOps: `make run` to use it, `make test` to prove it. Needs only python3 (3.11+), pip, make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench stop chromium clean help

help:
	@echo "make run    - start the console with demo data on http://127.0.0.1:$${PORT:-8000}"
	@echo "make test   - lint and run the whole test suite on real PostgreSQL, Redis, Celery, Chromium"
	@echo "make bench  - benchmarks (tests/bench)"
	@echo "make stop   - stop the embedded PostgreSQL and Redis under var/"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"' \
		|| { echo "error: $(PYTHON) is older than 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) \
		|| { echo "error: cannot create a venv; on Debian: apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@# NNCF without its `ninja` requirement, which would overwrite django-ninja (pyproject.toml).
	$(PY) -m pip install --quiet --no-deps "nncf==3.4.0"
	@$(PY) -c "import importlib.metadata as m, sys; sys.exit(any((d.metadata['Name'] or '').lower() == 'ninja' for d in m.distributions()))" || { echo "error: the ninja build tool is installed and shadows django-ninja; run: $(PY) -m pip uninstall -y ninja && $(PY) -m pip install --force-reinstall --no-deps django-ninja"; exit 1; }
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m agentops.devstack run

test: $(STAMP) chromium
	$(PY) -m agentops.devstack test $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m agentops.devstack lint

bench: $(STAMP)
	$(PY) -m agentops.devstack bench $(PYTEST_ARGS)

stop: $(STAMP)
	$(PY) -m agentops.localservices stop

# Browser tests drive Debian's Chromium (Playwright cannot download its own browser here).
chromium:
	@if [ -n "$$CHROMIUM_PATH" ] && [ -x "$$CHROMIUM_PATH" ]; then exit 0; fi; \
	if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "==> installing Chromium for the browser tests (apt-get install chromium)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| { echo "error: apt-get could not install chromium"; exit 1; }; \
	else \
		echo "error: the browser tests need Chromium. Install it (Debian: sudo apt-get install chromium)"; \
		echo "       or set CHROMIUM_PATH to a Chromium/Chrome binary."; exit 1; \
	fi

clean:
	rm -rf $(VENV) var
