# repogym: the two set-up commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf outputs/demo
	$(BIN)/repogym workflow examples/scheme_interpreter 'scheme/*.py' --state-dir outputs/demo --strategy procedural --agent auto --num-candidates 40 --workers 2

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/sandbox_overhead.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .mypy_cache .ruff_cache
