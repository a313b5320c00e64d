VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# Installs take only what the lock names, each file checked against its hash.
PIP_LOCKED := -m pip install -q --require-hashes --no-deps

.PHONY: install browser up test unit integration e2e reliability lint lock test-latest \
	bench bench-flow bench-api bench-freshness bench-memory bench-catchup bench-scaling clean

$(PY):
	@echo "creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)

# The modules setup.py compiles (atp/native.py COMPILED): an edit to one compiles them again.
NATIVE_SOURCES := $(shell sed -n 's/^    "\([a-z_]*\)\.\([a-z_]*\)",$$/\1\/\2.py/p' atp/native.py)

# make up needs the engine only; tests, lint and benchmarks add the dev tools on top (same pins).
$(RUNTIME): requirements.lock pyproject.toml setup.py atp/native.py $(NATIVE_SOURCES) | $(PY)
	@echo "installing the engine's locked dependencies (requirements.lock) into $(VENV)"
	$(PY) $(PIP_LOCKED) -r requirements.lock
	@echo "installing avail itself (editable: the code runs from this folder; mypyc compiles the core, ~1.5 min)"
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(STAMP): requirements-dev.lock $(RUNTIME)
	@echo "adding the test, lint and benchmark tools (requirements-dev.lock) into $(VENV)"
	$(PY) $(PIP_LOCKED) -r requirements-dev.lock
	touch $@

install: $(STAMP)

up: $(RUNTIME)
	$(VENV)/bin/avail up --demo

# The /ui page tests drive Debian's chromium: make test installs it where it may (root with apt-get),
# and says so where it may not (the page tests then skip, unless AVAIL_REQUIRE_BROWSER=1 as in CI).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& echo "installing chromium (apt-get) for the /ui page tests" \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "no chromium on PATH (apt-get install chromium): the /ui page tests will be skipped"

# Two test processes (pytest-xdist), each test file on one of them: the suite mostly waits on its
# servers, so two take about 60 % of the time of one even on two cores. TEST_PROCESSES=0: one process.
TEST_PROCESSES ?= 2
test: install browser
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist loadfile) tests

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

e2e: install browser
	$(PY) -m pytest -q tests/e2e

reliability: install
	$(PY) -m pytest -q tests/reliability

# uv.lock from pyproject's ranges, then the pip-installable exports (runtime for the image, dev for make).
# UV_LOCK_ARGS="--upgrade-package redis" moves one dependency; "--upgrade" moves them all.
lock: install
	$(VENV)/bin/uv lock $(UV_LOCK_ARGS)
	$(VENV)/bin/uv export -q --frozen --no-emit-project --format requirements-txt --extra build -o requirements.lock
	$(VENV)/bin/uv export -q --frozen --no-emit-project --format requirements-txt --extra dev -o requirements-dev.lock

# The newest releases pyproject's ranges allow, in a venv of their own: meets an upstream break before users do.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test]'
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/versions.txt
	@echo "newest allowed versions: $(LATEST)/versions.txt"
	$(LATEST)/bin/python -m pytest -q tests/unit tests/integration

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install
	$(PY) -m load_tests.bench_decode
	$(PY) -m load_tests.bench_core
	$(PY) -m load_tests.bench_stages

bench-flow: install
	$(PY) -m load_tests.bench_flow

bench-api: install
	$(PY) -m load_tests.bench_api

bench-freshness: install  # BENCH_ARGS="--rates 10000 --seconds 30" for one point
	$(PY) -m load_tests.bench_freshness $(BENCH_ARGS)

bench-memory: install
	$(PY) -m load_tests.bench_memory $(BENCH_ARGS)

bench-scaling: install  # BENCH_ARGS="--rounds 3"
	$(PY) -m load_tests.bench_scaling $(BENCH_ARGS)

bench-catchup: install  # BENCH_ARGS="--events 500000" for the run in docs/performance.md
	$(PY) -m load_tests.bench_catchup $(BENCH_ARGS)

.PHONY: soak
soak: install  # crash rounds at length: SOAK_ROUNDS per variant (default 40), timings with -s
	AVAIL_SOAK_ROUNDS=$(or $(SOAK_ROUNDS),40) $(PY) -m pytest -q -s tests/reliability/test_crash_rounds.py

.PHONY: fuzz
fuzz: install  # coverage-guided decoder fuzzing (atheris); FUZZ_ARGS=-runs=N for a fixed count
	$(PY) -m load_tests.fuzz_decoder_atheris $(or $(FUZZ_ARGS),-max_total_time=300)

clean:
	rm -rf $(VENV) $(LATEST) .avail .pytest_cache .hypothesis .mypy_cache .ruff_cache
