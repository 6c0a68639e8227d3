# One entry point per task. `make run` starts the gateway, `make test` runs lint, types and tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint standin clean redis-server prometheus browser tcp-migrate

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "vx11-gateway needs Python 3.11 (set PYTHON=/path/to/python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.base-installed: requirements/base.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/dev.txt requirements/base.txt requirements/build.txt | $(BIN)/python
	$(BIN)/pip install --quiet --build-constraint requirements/build.txt -r requirements/dev.txt
	touch $@ $(VENV)/.base-installed

run: $(VENV)/.base-installed
	scripts/run.sh

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-cache

# The canon and admin tests run once more on PostgreSQL when one answers on 127.0.0.1:5432 (CI
# has one: trust auth, user postgres); pytest-django creates and drops the test_ database.
# VX11_TEST_DATABASE_URL is the suite's own variable (tests/environment.py): a DATABASE_URL
# exported for the gateway never reaches the tests.
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/vx11_test

test: lint redis-server prometheus browser tcp-migrate
	$(BIN)/pytest
	@if $(BIN)/python -c 'import sys, psycopg; psycopg.connect(sys.argv[1], dbname="postgres", connect_timeout=3).close()' '$(PG_TEST_URL)' 2>/dev/null; then \
	  echo "canon, admin and site tests on PostgreSQL ($(PG_TEST_URL))"; \
	  VX11_TEST_DATABASE_URL='$(PG_TEST_URL)' $(BIN)/pytest tests/canon tests/site; \
	else \
	  echo "skipped the canon and admin tests on PostgreSQL: none answers at $(PG_TEST_URL)"; \
	fi

# Per-worker listeners (VX11_LISTEN_PER_WORKER=auto) are on only where the kernel moves a
# closing listener's waiting connections to the others; their tests need that sysctl.
tcp-migrate:
	@f=/proc/sys/net/ipv4/tcp_migrate_req; if [ "$$(cat $$f 2>/dev/null)" = 1 ]; then :; \
	elif [ "$$(id -u)" = 0 ] && echo 1 2>/dev/null >$$f; then echo "set net.ipv4.tcp_migrate_req=1 (per-worker listeners)"; \
	else echo "net.ipv4.tcp_migrate_req is not 1 and cannot be set here: the per-worker listener tests skip"; fi

# The tests need a real Redis: private redis-servers of their own, which
# the suite starts itself. Install the server when it is missing and we may (root, apt).
redis-server:
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } \
	  || { echo "the tests need redis-server: install it (e.g. apt-get install redis-server)"; exit 1; }

# The Prometheus tests (tests/deploy: promtool on deploy/prometheus, and a real prometheus of
# their own on a free port) need Debian's package. Install it when it is missing and we may
# (root, apt), without leaving its service running (scripts/install-prometheus.sh); otherwise,
# or if that fails, say once that those tests will be skipped, and go on.
PROMETHEUS_BINS ?= /usr/bin/prometheus /usr/bin/promtool

prometheus:
	@missing=; for bin in $(PROMETHEUS_BINS); do [ -x "$$bin" ] || missing=yes; done; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && scripts/install-prometheus.sh; } \
	  || echo "prometheus/promtool are not installed (apt-get install prometheus, or make test as root): the Prometheus tests (tests/deploy) will be skipped"
# The browser test of the site and admin (tests/test_browser.py) needs Debian's Chromium and its
# driver: installed when missing and we may (root, apt); otherwise that test is skipped, as said.
browser:
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null && apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } \
	  || echo "no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver): the browser test will be skipped"

standin: $(VENV)/.base-installed
	$(BIN)/python -m standin --port $${VX11_STANDIN_PORT:-8007}

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache staticfiles

# `make bench`: the gateway against the upstream, nginx and a FastAPI reference (bench/README.md).
# A measurement, not a test: it exits 0 whatever the numbers. BENCH_ARGS passes options through.
.PHONY: bench
$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.dev-installed
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

bench: $(VENV)/.dev-installed $(VENV)/.bench-installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)
