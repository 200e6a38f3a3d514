# The two commands for a fresh machine: `make run` and `make test`. Both install the Debian packages they need first
# (tools/system-deps.sh: as root it installs them, otherwise it says the one command to run) and create .venv.
PY ?= python3
VENV := .venv
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin

.PHONY: run test lint bench bench-ts bot venv clean system-deps-run system-deps-test

system-deps-run:
	PY=$(PY) bash tools/system-deps.sh run

system-deps-test:
	PY=$(PY) bash tools/system-deps.sh test

$(BIN)/liveportrait-serve: pyproject.toml | system-deps-run
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Without a GPU, take the CPU build of torch first, from PyTorch's CPU wheel index where it is reachable
	# (no multi-GB CUDA build), else the registry's default; the pyproject range then installs nothing more.
	if ! command -v nvidia-smi >/dev/null 2>&1; then \
	  if $(BIN)/python -c "import urllib.request as u; u.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=5)" 2>/dev/null; \
	  then echo "torch $(TORCH_VERSION): CPU build from $(TORCH_CPU_INDEX)"; \
	       $(BIN)/pip install -q --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"; \
	  else echo "torch $(TORCH_VERSION): $(TORCH_CPU_INDEX) unreachable, the registry's default build"; \
	       $(BIN)/pip install -q "torch==$(TORCH_VERSION)"; fi; \
	fi
	$(BIN)/pip install -q -e ".[offline,dev,cluster,pipecat]"
	touch $@

venv: $(BIN)/liveportrait-serve

run: system-deps-run venv
	$(BIN)/liveportrait-serve

test: system-deps-test venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The offline pipecat bot (examples/pipecat_bot.py): the engine and the bot, then open http://127.0.0.1:7860/
bot: system-deps-test venv
	$(BIN)/python examples/pipecat_bot.py --start-engine

bench: venv
	for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

bench-ts: venv
	cd clients/typescript && npm ci && npm run build && LP_PYTHON=$(CURDIR)/$(BIN)/python npm run bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache clients/typescript/node_modules clients/typescript/dist
