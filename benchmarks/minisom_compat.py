"""somlab.compat.MiniSom against MiniSom itself, side by side in one run (issue 18, point 4).

Article-size data (the MiniSom article's setting): 569 samples x 13 features (breast cancer,
first 13 columns, standardised), a 10x10 map, 20,000 ``train_random`` steps, plus other
neighbourhoods, topologies, ``train`` (in order) and ``use_epochs``.  Each configuration is
timed alternately (MiniSom, compat, MiniSom, ...) ``--repeat`` times; the best time of each is
kept, and the weights of the two are compared.

    OMP_NUM_THREADS=1 python benchmarks/minisom_compat.py [--repeat 3] [--steps 20000]
"""

from __future__ import annotations

import argparse
import platform
import time
from importlib.metadata import version

import minisom
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer

from somlab.compat import MiniSom as CompatSom

CONFIGS = [
    dict(name="gaussian rect, train_random", kw={}, method="train_random"),
    dict(name="gaussian hex, train_random", kw={"topology": "hexagonal"}, method="train_random"),
    dict(
        name="bubble, train_random",
        kw={"neighborhood_function": "bubble", "sigma": 2},
        method="train_random",
    ),
    dict(
        name="triangle, train_random",
        kw={"neighborhood_function": "triangle", "sigma": 2},
        method="train_random",
    ),
    dict(
        name="mexican_hat, inverse decays, train_batch",
        kw={
            "neighborhood_function": "mexican_hat",
            "decay_function": "inverse_decay_to_zero",
            "sigma_decay_function": "inverse_decay_to_one",
            "learning_rate": 0.05,
        },
        method="train_batch",
    ),
    dict(
        name="gaussian, cosine, train_random",
        kw={"activation_distance": "cosine"},
        method="train_random",
    ),
    dict(name="gaussian, use_epochs (35 epochs)", kw={}, method="epochs"),
]


def run(cls, X, cfg, steps):
    kw = {"sigma": 1.5, "learning_rate": 0.5, **cfg["kw"]}
    som = cls(10, 10, X.shape[1], random_seed=1, **kw)
    t0 = time.perf_counter()
    if cfg["method"] == "epochs":
        som.train(X, 35, random_order=True, use_epochs=True)
    else:
        getattr(som, cfg["method"])(X, steps)
    return time.perf_counter() - t0, som.get_weights()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    X = load_breast_cancer().data[:, :13]
    X = (X - X.mean(0)) / X.std(0)
    print(
        f"# {platform.processor() or platform.machine()}, python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__}, minisom {version('minisom')}"
    )
    print(f"# data {X.shape}, map 10x10, {args.steps} steps, best of {args.repeat}")
    print("| configuration | MiniSom s | compat s | speed-up | weights equal |")
    print("|---|---:|---:|---:|---:|")
    for cfg in CONFIGS:
        best = {"m": np.inf, "c": np.inf}
        for _ in range(args.repeat):
            tm, wm = run(minisom.MiniSom, X, cfg, args.steps)
            tc, wc = run(CompatSom, X, cfg, args.steps)
            best["m"], best["c"] = min(best["m"], tm), min(best["c"], tc)
        same = "bit for bit" if np.array_equal(wm, wc) else f"{np.abs(wm - wc).max():.1e}"
        print(
            f"| {cfg['name']} | {best['m']:.3f} | {best['c']:.3f} | "
            f"{best['m'] / best['c']:.2f}x | {same} |"
        )


if __name__ == "__main__":
    main()
