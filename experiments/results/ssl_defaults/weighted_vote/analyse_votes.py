"""Weighted votes of the stored rule scores (design_votes.py's pickle): mean accuracy per label
fraction for SSSOM() and BatchSSSOM(), and the worst margin over max(1-NN, LabelSpreading)
(means over data sets per fraction, as benchmarks/ssl_baselines.py), best first.

    python analyse_votes.py CELLS.pkl [rep0,rep1,rep2]   # optional: only these splits
"""

import itertools
import pickle
import sys

import numpy as np

FR = (0.01, 0.05, 0.1, 0.25, 1.0)
BASE = ("vote", "spread", "map", "knn1", "nodes")


def acc(c, model, combo):
    P = sum(w * c[model][r] for r, w in combo)
    return np.mean((P.argmax(1) == c["y"]) & c["seen"])


def per_fraction(cells, value):
    out = []
    for fr in FR:
        per = {}
        for c in cells:
            if c["fr"] == fr:
                per.setdefault(c["data"], []).append(value(c))
        out.append(np.mean([np.mean(v) for v in per.values()]))
    return np.array(out)


def combos():
    out = {
        "vote": [("map", 1), ("knn1", 1), ("spread", 1)],
        "spread": [("spread", 1)],
        "map": [("map", 1)],
        "knn1": [("knn1", 1)],
        "nodes": [("nodes", 1)],
    }
    for wm, wk, ws in itertools.product((0, 0.5, 1), (0, 0.5, 1), (0.5, 1, 1.5, 2, 3)):
        out[f"m{wm} k1:{wk} s{ws}"] = [("map", wm), ("knn1", wk), ("spread", ws)]
    for wm, wk, ws in itertools.product((0, 0.5, 1), (0.5, 1), (0.5, 1, 2)):
        out[f"m{wm} k3:{wk} s{ws}"] = [("map", wm), ("knn3", wk), ("spread", ws)]
        out[f"n{wm} k1:{wk} s{ws}"] = [("nodes", wm), ("knn1", wk), ("spread", ws)]
    return out


def main(path, reps=None):
    cells = pickle.load(open(path, "rb"))
    if reps:
        cells = [c for c in cells if c["rep"] in reps.split(",")]
    bar = np.maximum(
        per_fraction(cells, lambda c: c["ls"]), per_fraction(cells, lambda c: c["1nn"])
    )
    print("bar      ", " ".join(f"{x:.3f}" for x in bar))
    rows = []
    for name, combo in combos().items():
        a = per_fraction(cells, lambda c, combo=combo: acc(c, "SSSOM", combo))
        b = per_fraction(cells, lambda c, combo=combo: acc(c, "BatchSSSOM", combo))
        rows.append((min((a - bar).min(), (b - bar).min()), name, a, b))
    rows.sort(key=lambda r: -r[0])
    for m, name, a, b in rows[:25] + [r for r in rows if r[1] in BASE]:
        sa, sb = " ".join(f"{x:.3f}" for x in a), " ".join(f"{x:.3f}" for x in b)
        print(f"{name:18s} {m:+.3f} S {sa} | B {sb}")


if __name__ == "__main__":
    main(*sys.argv[1:])
