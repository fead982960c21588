# Two commands on a fresh machine:  make demo   (runs the demo DAG)   make test   (runs the tests)
# Both create .venv and install sonoflow with its pinned dependencies first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo report test test-unit lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores all

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html

# Two workers (pytest-xdist): the tests that read the shared demo run stay on one of them, the
# SLURM tests (skipped unless SONOFLOW_TEST_SLURM=1) among them, last: the demo DAG runs once and
# one local cluster is up at a time (tests/conftest.py, tests/unit/test_xdist_groups.py).
PYTEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check sonoflow scripts benchmarks tests
	$(BIN)/snakemake --lint

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_dag.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf results .snakemake .sonoflow-cache
