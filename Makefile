VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test unit lint bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

install: $(PY)
	$(PY) -m pip install -q -e '.[dev]'

test: install
	$(PY) -m pytest -q tests

unit: install
	$(PY) -m pytest -q tests/unit

lint: install
	$(VENV)/bin/ruff check atp tests load_tests
	$(VENV)/bin/mypy

bench: install
	$(PY) -m load_tests.bench_decode
	$(PY) -m load_tests.bench_core

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
