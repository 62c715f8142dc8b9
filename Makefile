# tm20: `make run` starts the server on port 7788 with the embedded SQLite store;
# `make token NAME=me` prints a new API token for it;
# `make test` runs ruff, mypy and every test.  Both create .venv and install on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 7788
DATABASE ?= sqlite:tm20.sqlite3
NAME ?= admin

.PHONY: install constraints run token test lint typecheck unit browser-deps screenshots bench bench-reconcile bench-access bench-scaleout bench-deps bench-quick bench-soak conformance clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' --config-settings editable_mode=compat
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	$(BIN)/python -c "import tm20.plugins; from twisted.plugin import getPlugins; from tm20.interfaces import ICommandHandler; list(getPlugins(ICommandHandler, tm20.plugins))"
	touch $@

# Record the versions installed in .venv as the tested constraints (after changing setup.cfg).
constraints: install
	{ echo "# Tested versions of every dependency (make install uses this file as pip constraints)."; \
	  echo "# Refresh after changing setup.cfg: make constraints (records what .venv holds)."; \
	  $(BIN)/pip freeze --exclude-editable --all | grep -v -i -E '^(pip|setuptools|wheel)=='; } > constraints.txt

run: install
	@echo "tm20: terminals connect to ws://<this host>:$(PORT)/ (any path); REST API under http://<this host>:$(PORT)/api/"
	@echo "tm20: for the REST API, get a token in another shell: make token NAME=me"
	@echo "tm20:   (the same as: $(BIN)/tm20-admin token create me --database $(DATABASE))"
	$(BIN)/twistd -n --pidfile= tm20 --port $(PORT) --database $(DATABASE)

# A new API token (read + write) in the database of `make run`; its secret is the last line.
token: install
	@$(BIN)/tm20-admin token create $(NAME) --database $(DATABASE)

lint: install
	$(BIN)/ruff check tm20 twisted tests bench
	$(BIN)/ruff format --check tm20 twisted tests bench

typecheck: install
	$(BIN)/mypy

# The console's browser tests drive Debian's Chromium through chromedriver: install both
# (as root, like CI) when they are missing.  The tests never skip without them; they fail.
browser-deps:
	test -x /usr/bin/chromedriver -a -x /usr/bin/chromium || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

unit: install browser-deps
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# Screenshots of the console (desktop and 360 px), taken by its browser tests, into docs/console/.
screenshots: install browser-deps
	TM20_SCREENSHOTS=docs/console $(BIN)/python -m pytest -q tests/test_console_browser.py tests/test_console_access_browser.py -k Narrow

# py-spy profiles the server during the benchmarks (optional: without it, no profiles).
bench-deps: install
	test -x $(BIN)/py-spy || $(BIN)/python -m pip install --quiet py-spy || echo "bench: py-spy not installed; no profiles"

bench: bench-deps
	$(BIN)/python -m bench.run --full
	$(BIN)/python -m bench.reconcile
	$(BIN)/python -m bench.reconcile --postgres
	$(BIN)/python -m bench.access --postgres --terminals 10000
	$(BIN)/python -m bench.scaleout

# Scale-out on one host (--workers 1 and 2: ingest against the COPY ceiling, 10 000 connecting at
# once and their reconnect storm, 20 000 held, commands same node / cross node, bench.crossnode);
# saves bench/results/scaleout.json and re-renders BENCHMARKS.md (bench/publish.py).
bench-scaleout: bench-deps
	$(BIN)/python -m bench.scaleout

# The reconciler alone: 3000 persons with a face pushed to one simulated terminal (SQLite, then
# a private PostgreSQL cluster); one JSON line each.
bench-access: install
	$(BIN)/python -m bench.access --postgres --terminals 10000

bench-reconcile: install
	$(BIN)/python -m bench.reconcile
	$(BIN)/python -m bench.reconcile --postgres

bench-quick: bench-deps
	$(BIN)/python -m bench.run --quick

bench-soak: bench-deps
	$(BIN)/python -m bench.run --soak

# The Autobahn|Testsuite (fuzzingclient) against an echo endpoint built from the production
# protocol and factory; Python 2.7 and the suite are installed privately into
# conformance/.cache on first use (see conformance/bootstrap.sh).  Not part of `make test`.
conformance: install
	sh conformance/bootstrap.sh
	$(BIN)/python conformance/run.py

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp .mypy_cache .ruff_cache .hypothesis .schemathesis tests.*/
