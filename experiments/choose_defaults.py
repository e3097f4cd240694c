"""Pick the relevance maps' default parameters from a sweep's JSONL results.

Score of a setting = mean over every (dataset, label fraction, fold) run of its accuracy on the
test fold (labelled fractions) or its CE (0 %, unsupervised), so each setting is judged across
all UCI sets and label fractions at once, as the issue asks.

    python experiments/choose_defaults.py experiments/results/defaults_sweep/table2_runs.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np


def main(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    by_setting = defaultdict(list)
    params = {}
    for r in runs:
        if r.get("error"):
            continue
        value = r["ce"] if r["fraction"] == 0 else r["acc_all"]
        by_setting[r["setting"]].append((r["dataset"], r["fraction"], value, r["n_nodes"]))
        params[r["setting"]] = r["params"]
    n_cells = max(len(v) for v in by_setting.values())
    rows = []
    for s, vals in by_setting.items():
        if len(vals) < n_cells:  # only settings with every run finished
            continue
        score = float(np.mean([v[2] for v in vals]))
        ce0 = float(np.mean([v[2] for v in vals if v[1] == 0]))
        acc = float(np.mean([v[2] for v in vals if v[1] > 0]))
        nodes = float(np.mean([v[3] for v in vals]))
        rows.append((score, s, ce0, acc, nodes))
    rows.sort(reverse=True)
    print(f"{len(runs)} runs, {len(rows)} complete settings, {n_cells} runs each")
    print("rank setting  score   CE@0%  acc@labelled  nodes")
    for i, (score, s, ce0, acc, nodes) in enumerate(rows[:8]):
        print(f"{i + 1:>4} {s:>7}  {score:.4f}  {ce0:.4f}  {acc:.4f}  {nodes:6.1f}")
    best = rows[0][1]
    print("best setting:", json.dumps(params[best], sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
