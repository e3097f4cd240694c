"""Issue 15 point 3 on big data: fit + predict of SSSOM() and BatchSSSOM() on 10,000 x 64
(make_classification, 5 classes, 10,000 training + 2,000 test rows, min-max scaled), at 1, 10
and 100 % labels; wall and process CPU seconds, one torch thread.

    python experiments/results/ssl_defaults/timing.py
"""

import time

import numpy as np


def main():
    import torch
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import MinMaxScaler

    from somlab.relevance import SSSOM, BatchSSSOM

    torch.set_num_threads(1)
    X, y = make_classification(12000, 64, n_informative=10, n_classes=5, random_state=0)
    sc = MinMaxScaler().fit(X[:10000])
    Xtr, Xte = sc.transform(X[:10000]), np.clip(sc.transform(X[10000:]), 0, 1)
    ytr, yte = y[:10000], y[10000:]
    rng = np.random.default_rng(0)
    BatchSSSOM(random_state=0).fit(rng.random((60, 4)), np.repeat([0, 1, -1], 20))  # warm-up
    for cls in (BatchSSSOM, SSSOM):
        for fr in (0.01, 0.1, 1.0):
            semi = ytr.copy()
            if fr < 1:
                semi[rng.random(len(semi)) > fr] = -1
            t, c = time.perf_counter(), time.process_time()
            m = cls(random_state=0).fit(Xtr, semi)
            acc = float(np.mean(m.predict(Xte) == yte))
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            print(
                f"{cls.__name__} {fr} {m.decision_} {wall:.2f} s wall {cpu:.2f} s CPU "
                f"acc {acc:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
