VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install up test unit integration lint bench bench-flow bench-api bench-freshness bench-memory bench-catchup clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(VENV)/bin/avail up --demo

test: install
	$(PY) -m pytest -q tests

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

lint: install
	$(VENV)/bin/ruff check atp avail dataflows availability_api tests load_tests examples
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

bench-catchup: install  # BENCH_ARGS="--events 500000" for the run in docs/performance.md
	$(PY) -m load_tests.bench_catchup $(BENCH_ARGS)

.PHONY: soak
soak: install  # crash rounds at length: SOAK_ROUNDS per variant (default 40), timings with -s
	AVAIL_SOAK_ROUNDS=$(or $(SOAK_ROUNDS),40) $(PY) -m pytest -q -s tests/reliability/test_crash_rounds.py

.PHONY: fuzz
fuzz: install  # coverage-guided decoder fuzzing (atheris); FUZZ_ARGS=-runs=N for a fixed count
	$(PY) -m load_tests.fuzz_decoder_atheris $(or $(FUZZ_ARGS),-max_total_time=300)

clean:
	rm -rf $(VENV) .avail .pytest_cache .hypothesis .mypy_cache .ruff_cache
