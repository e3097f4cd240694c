#!/usr/bin/env bash
# The GPU checks of the open issues in one call on the device (see benchmarks/DEVICE.md).
#   bash benchmarks/device_checks.sh [STEP ...]   (default: gpu ensemble dcsomrl table3)
# Steps: gpu      benchmarks/gpu.py (issue 7 points 3, 5; issue 4's batched settings)
#        dcsomrl  benchmarks/dcsomrl_speed.py on cuda: 70,000 MNIST images x 30 joint epochs
#                 (issue 5: <= 3 min; the quality targets are measured on the CPU)
#        table3   Batch SS-SOM on CNN features, MNIST paper protocol, on cuda (issue 6: time)
#        ensemble benchmarks/sssom_ensemble.py on cuda (issue 7 point 3: Batch SS-SOM settings/s)
#        tests    the CUDA tests (pytest -m cuda and the cuda-marked cases)
# Data: the image sets are read from $SOMLAB_DATA (default .devdata, a folder that
# .git/info/exclude ignores and `carry` takes along). Everything goes to $OUT (or ./device_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-device_out}"
mkdir -p "$OUT"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" PYTHONUNBUFFERED=1
export SOMLAB_DATA="${SOMLAB_DATA:-$PWD/.devdata}"
PY="${PY:-python3}"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(gpu ensemble dcsomrl table3)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; "$PY" -c \
  "import torch, numba, sklearn; print('torch', torch.__version__, 'numba', numba.__version__, 'sklearn', sklearn.__version__)"; } \
  > "$OUT/device_info.txt" 2>&1
for s in "${steps[@]}"; do
  t0=$(date +%s)
  case "$s" in
    gpu) "$PY" benchmarks/gpu.py --budget "${GPU_BUDGET:-240}" --out "$OUT/gpu_results.json" ;;
    dcsomrl) "$PY" benchmarks/dcsomrl_speed.py --device cuda --n 70000 --epochs 30 \
               --pretrain-epochs 50 --param repel=0 --param at=0.98 --param alpha=0.01 \
               --json "$OUT/dcsomrl_speed.json" ;;
    table3) "$PY" -m somlab reproduce table3 --dataset mnist --protocols paper --settings 10 \
              --device cuda --jobs "$(nproc)" --quiet --out-dir "$OUT" ;;
    ensemble) "$PY" benchmarks/sssom_ensemble.py --device cuda --ks 1,32,128,512 --single 4 \
                --json "$OUT/sssom_ensemble.json" ;;
    tests) "$PY" -m pytest -q -x -k cuda tests ;;
    *) echo "unknown step $s"; continue ;;
  esac > "$OUT/$s.log" 2>&1
  echo "$s: exit $? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/steps.txt"
done
