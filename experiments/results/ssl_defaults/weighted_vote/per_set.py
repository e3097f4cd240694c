"""Per design set: old equal vote (map, knn1, spread) > new weighted vote (map 1/6, knn3 1/6,
spread 2/3), (max(1-NN, LS)), mean over the splits, per label fraction.

    python per_set.py CELLS.pkl
"""

import pickle
import sys

import numpy as np

OLD = [("map", 1), ("knn1", 1), ("spread", 1)]
NEW = [("map", 1 / 6), ("knn3", 1 / 6), ("spread", 2 / 3)]


def acc(c, m, combo):
    P = sum(w * c[m][r] for r, w in combo)
    return np.mean((P.argmax(1) == c["y"]) & c["seen"])


def main(path):
    cells = pickle.load(open(path, "rb"))
    for m in ("SSSOM", "BatchSSSOM"):
        print(m)
        for d in sorted({c["data"] for c in cells}):
            row = []
            for fr in (0.01, 0.05, 0.1, 0.25, 1.0):
                cs = [c for c in cells if c["data"] == d and c["fr"] == fr]
                o = np.mean([acc(c, m, OLD) for c in cs])
                n = np.mean([acc(c, m, NEW) for c in cs])
                b = max(np.mean([c["ls"] for c in cs]), np.mean([c["1nn"] for c in cs]))
                row.append(f"{o:.3f}>{n:.3f}({b:.3f})")
            print(f"  {d:20s}", " ".join(row))


if __name__ == "__main__":
    main(sys.argv[1])
