#!/usr/bin/env bash
# The Table II runs behind experiments/results (resumable: rerun to continue after a kill).
#   bash experiments/run_table2_all.sh  # about 2.5 h on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
# the finished runs are committed compressed: unpack them once so that nothing is rerun
for f in experiments/results/table2_runs.jsonl.xz experiments/results/*/table2_runs.jsonl.xz \
         experiments/results/variants/*.jsonl.xz; do
  [ -e "${f%.xz}" ] || xz -dk "$f"
done
S="somlab reproduce table2 --settings authors"
# LARFDSSOM with the C++'s rules (SPEC §4.2), beside issue 9's C++ figures
$S --models larfdssom --compat cpp_larfdssom --fractions 0 \
   --out-dir experiments/results/larfdssom_cpp_flags
# the three maps in one table: table2.md (its own command, as the report states it)
$S --models larfdssom,sssom,batchsssom --fractions 0,100 \
   --results experiments/results/table2_runs.jsonl --out-dir experiments/results
# Batch SS-SOM with the C++'s distance, sampling and first node (>= the paper on 6/6 sets)
$S --models batchsssom --fractions 0 --param distance=weighted_sq --param sampling=replacement \
   --param init=random --results experiments/results/variants/diabetes_runs.jsonl \
   --out-dir experiments/results/variants/batchsssom_weighted_sq_replacement_init_random
