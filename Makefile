# make demo: set up everything on a fresh machine, then write one item for a real ScienceQA test image.
# make test: the same set-up, then the whole test suite (unit + real-model integration), offline.
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

.PHONY: demo test setup models index clean-venv

demo: index
	$(BIN)/coe generate --image $(DATA)/images/test/$(DEMO_PID)/image.png \
		--context "$(DEMO_CONTEXT)" --answer "$(DEMO_ANSWER)"

test: models
	$(BIN)/python -m pytest

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "==> creating $(VENV) and installing coe (llama-cpp-python compiles from source: several minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e ".[llamacpp,test]"
	@touch $@

models: setup
	@echo "==> pulling pinned models (verified by sha256; skipped when already present)"
	$(BIN)/coe models pull qwen2.5-coder-0.5b-instruct-q4
	$(BIN)/coe models pull minilm-l6-v2-int8

index: models
	@echo "==> indexing the ScienceQA train+val exemplar bank into Chroma (skipped when up to date)"
	$(BIN)/coe index build --data $(DATA)

clean-venv:
	rm -rf $(VENV)
