"""Speed of one train + predict run of the relevance maps on the UCI folds (CPU).

Per dataset: the median wall time of one ``fit`` on the train split plus ``predict`` on the test
split over several folds and settings, and microseconds per presented sample; targets from the
issues are printed beside the measurements.

    python benchmarks/sssom_speed.py [--models batchsssom,sssom] [--settings 5] [--folds 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from somlab import SSSOM, BatchSSSOM
from somlab.datasets import load_uci, uci_folds
from somlab.experiments.lhs import authors_settings

MODELS = {"batchsssom": BatchSSSOM, "sssom": SSSOM}
DATASETS = ("breast", "diabetes", "glass", "liver", "shape", "vowel")
# median train time per run of the authors' C++ (issue 9), milliseconds
CPP_MS = {
    "breast": "11",
    "diabetes": "24-33",
    "glass": "5-8",
    "liver": "7-10",
    "shape": "6-9",
    "vowel": "42-64",
}


def presented(n: int, params: dict, batch: int) -> int:
    """Samples presented by the schedule (organisation + convergence, SPEC.md §2/§3)."""
    age = math.floor(params["age_wins"] * n + 0.5)
    return int(params["epochs"]) * n + 2 * age  # (a) at most one window, (c) one window


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="batchsssom")
    ap.add_argument("--settings", type=int, default=5, help="first N of the authors' settings")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.10)
    args = ap.parse_args()
    torch.set_num_threads(1)
    settings = authors_settings()[: args.settings]
    folds = uci_folds()[: args.folds]
    print(
        f"torch {torch.__version__}, 1 thread; {args.settings} authors' settings x "
        f"{args.folds} folds, {args.fraction:.0%} labels"
    )
    for name in args.models.split(","):
        cls = MODELS[name]
        print(f"\n{cls.__name__}")
        print(
            f"{'dataset':<10} {'median s/run':>12} {'us/sample':>10} {'C++ ms/run':>11} "
            f"{'target s/run':>12}"
        )
        for ds in DATASETS:
            times, per_sample = [], []
            for fold in folds:
                b = load_uci(ds, fold=fold, labelled=args.fraction)
                for p in settings:
                    t0 = time.perf_counter()
                    m = cls(**p).fit(b.X_train, b.y_train)
                    m.predict(b.X_test)
                    dt = time.perf_counter() - t0
                    times.append(dt)
                    per_sample.append(dt / presented(len(b.X_train), p, 32) * 1e6)
            print(
                f"{ds:<10} {statistics.median(times):12.3f} "
                f"{statistics.median(per_sample):10.1f} {CPP_MS[ds]:>11} {0.05:12.2f}"
            )


if __name__ == "__main__":
    main()
