# make demo: set up everything on a fresh machine, then write one item for a real ScienceQA test image.
# make test: the same set-up, ruff over the product code, then the whole test suite (every tier: unit + real-model
#   integration, browser, vlm, root), offline.
# make test-fast: the unit tier alone (pyproject's markers slow, real_parts, browser, vlm and root deselected): no
#   models, ScienceQA data, servers, Chromium, torch or root needed; about 2 minutes on 2 idle cores.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Portable llama.cpp build: no -march=native, so the wheel runs on any x86_64/arm64 CPU.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
DATA ?= ../shared/data/scienceqa
DEMO_PID ?= 85
DEMO_CONTEXT ?= Below is a food web from Little Rock Lake, a freshwater lake ecosystem in Wisconsin.
DEMO_ANSWER ?= copepod

.PHONY: demo test test-fast lint setup models index system-deps browser setup-vlm bench-vl-quick clean-venv

demo: index
	$(BIN)/coe generate --image $(DATA)/images/test/$(DEMO_PID)/image.png \
		--context "$(DEMO_CONTEXT)" --answer "$(DEMO_ANSWER)"

test: lint models system-deps browser setup-vlm
	$(BIN)/python -m pytest

# the tiers a missing part would fail, deselected on purpose (tests/tiers.py); one pytest-xdist worker per core
UNIT_TIER := not slow and not real_parts and not browser and not vlm and not root
test-fast: setup system-deps
	$(BIN)/python -m pytest -n auto -m "$(UNIT_TIER)"

# ruff, the import contracts and the type check over the product code (pyproject's [tool.ruff],
# [tool.importlinter], [tool.mypy]); part of `make test`. lint-imports and mypy walk folders, so they read
# build/pkgview/coe, the package laid out as one folder of symlinks (tools/pkgview.py).
lint: setup
	@echo "==> ruff check, ruff format --check"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@echo "==> import contracts (lint-imports)"
	$(BIN)/python tools/pkgview.py >/dev/null
	cd build/pkgview && $(abspath $(BIN))/lint-imports $(CURDIR)/pyproject.toml --no-logo --cache-dir ../.import_linter_cache
	@echo "==> type check (mypy)"
	$(BIN)/mypy

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing coe (llama-cpp-python compiles from source: several minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e ".[llamacpp,openai,eval,test,ui-test]"
	@touch $@

models: setup
	@echo "==> pulling pinned models (verified by sha256; skipped when already present)"
	$(BIN)/coe models pull qwen2.5-coder-0.5b-instruct-q4
	$(BIN)/coe models pull minilm-l6-v2-int8
	@echo "==> fitting the static query encoder to MiniLM on ScienceQA train+val (skipped when up to date)"
	$(BIN)/coe models fit-encoder --data $(DATA)

index: models
	@echo "==> indexing the ScienceQA train+val exemplar bank into Chroma (skipped when up to date)"
	$(BIN)/coe index build --data $(DATA)

# Debian packages the tests need: WordNet 3.0 for METEOR (the project adds the lexnames table itself), and
# ReportLab's user guide, a real PDF with pictures that nobody here wrote, for the ingestion tests.
system-deps:
	@if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then \
		echo "==> installing WordNet (Debian: wordnet-base wordnet-sense-index)"; \
		apt-get update -qq && apt-get install -y -qq wordnet-base wordnet-sense-index; \
	fi
	@if [ ! -f /usr/share/doc/python-reportlab-doc/reportlab-userguide.pdf ]; then \
		echo "==> installing a real PDF for the ingestion tests (Debian: python-reportlab-doc)"; \
		apt-get update -qq && apt-get install -y -qq python-reportlab-doc; \
	fi

# Chromium for the review console's browser test (Playwright drives Debian's build; nothing is downloaded
# by Playwright itself).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "==> installing Chromium (Debian: chromium)"; \
		apt-get update -qq && apt-get install -y -qq chromium; \
	fi

# The transformers Qwen2-VL plugin (coe[vlm]), the open_clip image embedder (coe[clip]) and their CPU
# tests. VLM_TORCH names the torch pair to install first. open_clip needs torchvision, and none installs
# beside the CPU torch 2.13.0 build that this kind of machine keeps on disk, so the default is the
# 2.14.1 / 0.29.1 pair (PyPI's CUDA build, which runs on the CPU too); a GPU machine may override it
# (e.g. VLM_TORCH="torch torchvision"). Skipped when torch and torchvision already import together.
VLM_TORCH ?= torch==2.14.1 torchvision==0.29.1
setup-vlm: $(VENV)/.installed-vlm

$(VENV)/.installed-vlm: $(VENV)/.installed
	@echo "==> installing torch, torchvision, transformers, peft and open_clip (Qwen-VL plugin, image embedder)"
	$(BIN)/python -c 'import torch, torchvision' 2>/dev/null || $(BIN)/python -m pip install $(VLM_TORCH)
	$(BIN)/python -m pip install -e ".[vlm,clip]"
	@touch $@

# The Qwen2-VL batching benchmark: tiny model on the CPU (quick), or the 7B shape on a GPU (bench/README.md).
bench-vl-quick: setup-vlm
	$(BIN)/python bench/qwen2vl_batch.py --quick --out out/bench-vl-quick.json

clean-venv:
	rm -rf $(VENV)
