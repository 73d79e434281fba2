#!/usr/bin/env bash
# Run the GPU benchmarks on a machine without network, from a checkout that carries bench/wheels and
# bench/assets (made by bench/prepare_device.sh). Uses the machine's own CUDA torch; the wheels go to a
# private folder put first on PYTHONPATH, the machine's environment is not changed.
#   bench/run_on_device.sh [generation bench args...]
# results: $OUT/bench.json + bench.log (qwen2vl_batch.py: batching and decode speed) and
#          $OUT/finetune.json + finetune.log (finetune_lora.py: LoRA s/it and memory; FT_ARGS, or SKIP_FT=1)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT_DIR=${OUT:-bench/out}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "no torch in $PY: this script uses the machine's own (CUDA) torch; install one first" >&2
  exit 2
fi
if ls bench/wheels/*.whl >/dev/null 2>&1; then
  SITE=${SITE:-/tmp/coe-bench-site}
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
       bench/wheels/*.whl; then
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "warning: installing bench/wheels failed; trying with the machine's own packages" >&2
  fi
else
  echo "warning: no bench/wheels; using the machine's own packages" >&2
fi
"$PY" - <<'PY'
import torch, transformers
print(f"torch {torch.__version__} cuda={torch.cuda.is_available()} "
      f"{torch.cuda.get_device_name() if torch.cuda.is_available() else ''}; transformers {transformers.__version__}")
PY
EXTRA=()
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "warning: torch sees no GPU; running the CPU smoke test (--quick) instead" >&2
  EXTRA=(--quick)
fi
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv 2>/dev/null | tee "$OUT_DIR/gpu.txt"
"$PY" bench/qwen2vl_batch.py --out "$OUT_DIR/bench.json" "${EXTRA[@]}" "$@" 2>&1 | tee "$OUT_DIR/bench.log"
rc=${PIPESTATUS[0]}
if [ -z "${SKIP_FT:-}" ]; then
  # shellcheck disable=SC2086  # FT_ARGS is a list of words
  "$PY" bench/finetune_lora.py --out "$OUT_DIR/finetune.json" "${EXTRA[@]}" ${FT_ARGS:-} 2>&1 \
    | tee "$OUT_DIR/finetune.log"
  ft=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] && rc=$ft
fi
exit "$rc"
