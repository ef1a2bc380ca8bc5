# Kefu: `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KEFU := $(VENV)/bin/kefu

.PHONY: run test lint unit lock bench bench-analyzer bench-report bench-console chaos evaluate install services browser clean

# Every dependency at the version and hashes of requirements-dev.lock; Kefu itself editable.
# The locked setuptools goes in first: jieba and snownlp come as source only and are built
# with it (no build isolation, which would fetch whatever setuptools is newest that day).
# The venv's own pip does the rest (pip 23.2 is enough): upgrading it would install whatever
# pip is newest that day.
SETUPTOOLS_FROM_LOCK := sed -n '/^setuptools==/,/^[^ ]/{/^setuptools==/p;/^ /p}'
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(SETUPTOOLS_FROM_LOCK) requirements-dev.lock > $(VENV)/setuptools.lock
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(VENV)/setuptools.lock
	$(PY) -m pip install --quiet --require-hashes --no-deps --no-build-isolation \
		-r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# Regenerate the lockfiles from pyproject.toml (after a dependency is added or its range
# changed): requirements.lock for the image, requirements-dev.lock for make install and CI,
# the image's versions a subset of the developers'. Pins stay where they still fit;
# LOCK_ARGS=--upgrade moves every one to the newest allowed.
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --quiet --generate-hashes \
	--python-version 3.11 --python-platform linux --extra build
lock: install
	$(LOCK) --extra dev $(LOCK_ARGS) -o requirements-dev.lock
	$(LOCK) -c requirements-dev.lock -o requirements.lock

# Start the local PostgreSQL and RabbitMQ if they are down (no-op elsewhere).
services:
	@deploy/local-services.sh

run: install services
	$(KEFU) setup
	$(KEFU) run --seed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared services deploy bench tests/chaos

# Tests make their own database and RabbitMQ vhost, migrate them, and drop them at the end.
test: install services lint browser
	$(PY) -m pytest $(PYTEST_ARGS)

# The console's browser tests drive Debian's chromium through chromium-driver (and need a CJK
# font to draw Chinese in their screenshots); installed when missing and apt-get can, as root.
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-cjk
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
		fc-list 2>/dev/null | grep -q "Noto Sans CJK" || { [ "$$(id -u)" = 0 ] && \
		command -v apt-get >/dev/null && { apt-get install -y -qq $(BROWSER_PACKAGES) || \
		{ apt-get update -qq && apt-get install -y -qq $(BROWSER_PACKAGES); }; } >/dev/null 2>&1; } || \
		echo "chromium or chromium-driver missing: the console's browser tests are skipped"

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# wrk drives the single-POST scenario (Debian's package; installed when apt-get can, as root);
# without it the bench falls back to its own asyncio client. BENCH_ARGS=--quick for a smoke run.
bench: install services
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }; } \
		>/dev/null 2>&1; } || echo "wrk not installed: using the asyncio load generator"
	$(PY) -m bench.e2e $(BENCH_ARGS)

# The fault suite: its own PostgreSQL and RabbitMQ (never the shared ones), Kefu under load,
# one fault per scenario; prints the ledger and writes it to tests/chaos/results/.
# CHAOS_ARGS="--only kill PostgreSQL" runs the scenarios whose names contain those words.
chaos: install
	$(PY) -m tests.chaos $(CHAOS_ARGS)

bench-analyzer: install services
	$(PY) -m bench.analyzer

bench-report: install services
	$(PY) -m bench.satisfaction_report

# Each console page's render time with 100,000 issues (BENCH_ARGS="--issues 20000" for less).
bench-console: install services
	$(PY) -m bench.console $(BENCH_ARGS)

# Accuracy of the need analyzer and of the satisfaction text rules on their labelled sets
# (add ARGS=--misses to list the errors).
evaluate: install
	$(PY) -m services.need_analyzer.evaluation $(ARGS)
	$(PY) -m services.feedback.evaluation $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
