"""Pick the relevance maps' default parameters from a sweep's JSONL results.

Score of a setting = mean over every (dataset, label fraction, fold) run of its accuracy on the
test fold (labelled fractions) or its CE (0 %, unsupervised), so each setting is judged across
all UCI sets and label fractions at once, as the issue asks.

    python experiments/choose_defaults.py experiments/results/defaults_sweep/table2_runs.jsonl

``--rules``: the design run behind ``decision="auto"`` (issue 15): each fixed decision rule and
the votes of a few of them, on the scikit-learn sets of benchmarks/ssl_baselines.py (never the
six UCI sets), mean accuracy per label fraction.  The best at 1-10 % labels, where the
labelled rows are too few to cross-validate, is the prior (``_auto.PRIOR_RULE``)::

    python experiments/choose_defaults.py --rules
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


def rules(n_reps: int = 3):
    import warnings

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    from benchmarks.ssl_baselines import untuned_cells
    from somlab.relevance import BatchSSSOM

    votes = {
        "vote(map, knn1, spread)": ("map", "knn1", "spread"),
        "vote(knn1, spread)": ("knn1", "spread"),
        "vote(map, spread)": ("map", "spread"),
        "vote(map, knn1)": ("map", "knn1"),
        "vote(map, knn1, spread, nodes)": ("map", "knn1", "spread", "nodes"),
    }
    acc = defaultdict(lambda: defaultdict(list))
    for d, _rep, fr, Xtr, ytr, Xte, yte in untuned_cells(None, n_reps):
        P = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for r in ("map", "nodes", "knn1", "knn3", "knn7", "spread"):
                m = BatchSSSOM(random_state=0, decision=r).fit(Xtr, ytr)
                P[r] = m.predict_proba(Xte)
        for r, p in P.items():
            acc[r][(fr, d)].append(np.mean(m.classes_[p.argmax(1)] == yte))
        for v, rs in votes.items():
            p = sum(P[r] for r in rs)
            acc[v][(fr, d)].append(np.mean(m.classes_[p.argmax(1)] == yte))
    fracs = sorted({k[0] for k in next(iter(acc.values()))})
    print("| rule | " + " | ".join(f"{int(f * 100)} %" for f in fracs) + " |")
    print("|---" * (len(fracs) + 1) + "|")
    for r, cells in acc.items():
        row = []
        for f in fracs:
            row.append(np.mean([np.mean(v) for (fr, _), v in cells.items() if fr == f]))
        print(f"| {r} | " + " | ".join(f"{x:.3f}" for x in row) + " |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--rules"]:
        rules()
    else:
        main(sys.argv[1])
