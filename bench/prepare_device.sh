#!/usr/bin/env bash
# Prepare, on a machine with PyPI access, what bench/run_on_device.sh needs on a GPU machine without
# network: bench/wheels (pure-Python and manylinux x86_64 wheels for CPython $PYV, no torch) and
# bench/assets (tokenizer + ScienceQA subset, see bench/prepare_assets.py). Both are git-ignored;
# carry them with the checkout.
#   bench/prepare_device.sh            # PYV=3.12 (the GPU image's Python), PYTHON=.venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${PYV:-3.12}
PYTHON=${PYTHON:-.venv/bin/python}
WHEELS=bench/wheels
# The versions coe's tests ran with. torch is not here: the GPU machine brings its own CUDA build.
PKGS=(
  transformers==5.17.0 tokenizers==0.23.3 huggingface-hub==1.33.0 safetensors==0.8.0
  accelerate==1.15.0 peft==0.21.2 gguf==0.19.0 regex==2026.11.19
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1
  referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0
)
mkdir -p "$WHEELS"
PLATS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64 manylinux_2_5_x86_64; do PLATS+=(--platform "$p"); done
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  "${PLATS[@]}" -d "$WHEELS" "${PKGS[@]}"
"$PYTHON" bench/prepare_assets.py
du -sh "$WHEELS" bench/assets
