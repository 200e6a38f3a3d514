# The two commands for a fresh machine: `make run` and `make test`. Both create .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-ts venv clean

$(BIN)/liveportrait-serve: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Without a GPU, take the CPU build of torch first; the pyproject range then installs nothing more.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q "torch==2.13.0"; fi
	$(BIN)/pip install -q -e ".[offline,dev]"
	touch $@

venv: $(BIN)/liveportrait-serve

run: venv
	$(BIN)/liveportrait-serve

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: venv
	for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

bench-ts: venv
	cd clients/typescript && npm ci && npm run build && LP_PYTHON=$(CURDIR)/$(BIN)/python npm run bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache clients/typescript/node_modules clients/typescript/dist
