"""Speed of the compiled online engine (SPEC.md §2, B = 1) against the torch engine and C++.

Per UCI dataset (fold x1_k1, 10 % labels, the first settings of the authors' parameter file):
the median wall time of one ``run`` (training only, after a warm-up call that loads the
extension) and microseconds per presented sample (organisation + convergence); the
same for the whole fit path (input checks + run + storing the map); the torch engine
(``SSSOM().fit``, batch size 1) on one setting; the authors' C++ medians per run.

    python benchmarks/online_engine_speed.py [--settings 5] [--repeats 5] [--torch-setting 3]
                                             [--no-torch]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sssom_speed import CPP_MS, DATASETS  # same folder: one copy of the C++ figures

from somlab import SSSOM
from somlab._utils import seeded_generator
from somlab.datasets import load_uci
from somlab.experiments.lhs import authors_settings
from somlab.relevance import _compiled as online


def prepared(setting: dict, X, y):
    """(estimator, X float32, class indices, effective parameters) as fit_relevance_map makes
    them for SS-SOM."""
    est = SSSOM(**setting)
    Xn, y_idx, _ = est._prepare_fit(X, y)
    p = est._effective(Xn.shape[0])
    p["n_classes"] = len(est.classes_)
    p["batch_size"] = 1
    return est, Xn, y_idx, p


def time_online(setting: dict, X, y, repeats: int):
    """Median seconds of run and of the whole fit path; the run's history."""
    est, Xn, yn, p = prepared(setting, X, y)
    seed = setting["random_state"]
    out = online.run(Xn, yn, p, seeded_generator(seed))  # warm-up (compile / cache)
    run_t, fit_t = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        online.run(Xn, yn, p, seeded_generator(seed))
        run_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        est, Xn2, yn2, p2 = prepared(setting, X, y)
        o = online.run(Xn2, yn2, p2, seeded_generator(seed))
        est._store_map(o, o["history"])
        fit_t.append(time.perf_counter() - t0)
    return statistics.median(run_t), statistics.median(fit_t), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", type=int, default=5, help="first N of the authors' settings")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per setting")
    ap.add_argument("--fraction", type=float, default=0.10)
    ap.add_argument("--torch-setting", type=int, default=3, help="setting timed with torch")
    ap.add_argument("--no-torch", action="store_true", help="skip the (slow) torch engine")
    args = ap.parse_args()
    if not online.available():
        raise SystemExit("the compiled engine is not built (pip install -e .)")
    torch.set_num_threads(1)
    settings = authors_settings()[: args.settings]
    t0 = time.perf_counter()
    b = load_uci("glass", fold="x1_k1", labelled=args.fraction)
    _, Xn, yn, p = prepared(settings[0], b.X_train, b.y_train)
    online.run(Xn, yn, p, seeded_generator(0))
    print(f"first call (load the compiled extension): {time.perf_counter() - t0:.2f} s")
    ts = args.torch_setting
    print(
        f"torch {torch.__version__} (1 thread); {args.settings} authors' settings, fold x1_k1, "
        f"{args.fraction:.0%} labels; median over settings of the median of {args.repeats} runs"
    )
    head = (
        f"{'dataset':<9} {'N':>4} {'K':>9} {'compiled ms/run':>17} {'us/sample':>9} "
        f"{'fit ms':>7} {'C++ ms':>7} | {'torch s':>7} {'us/sample':>9} {'speed-up':>8}"
    )
    print(f"compiled ms/run: median [min-max] over settings; torch: setting {ts} only\n{head}")
    for ds in DATASETS:
        b = load_uci(ds, fold="x1_k1", labelled=args.fraction)
        run_ms, fit_ms, us, ks = [], [], [], []
        outs = []
        for s in settings:
            run_s, fit_s, out = time_online(s, b.X_train, b.y_train, args.repeats)
            n_pres = out["history"]["presented"]
            run_ms.append(run_s * 1e3)
            fit_ms.append(fit_s * 1e3)
            us.append(run_s / n_pres * 1e6)
            ks.append(len(out["C"]))
            outs.append((run_s, n_pres, len(out["C"])))
        line = (
            f"{ds:<9} {len(b.X_train):>4} {min(ks):>4}-{max(ks):<4} "
            f"{statistics.median(run_ms):7.2f} [{min(run_ms):.1f}-{max(run_ms):.0f}] "
            f"{statistics.median(us):9.3f} {statistics.median(fit_ms):7.2f} {CPP_MS[ds]:>7}"
        )
        if not args.no_torch and ts < len(settings):
            t0 = time.perf_counter()
            m = SSSOM(**settings[ts]).fit(b.X_train, b.y_train)
            torch_s = time.perf_counter() - t0
            run_s, n_pres, k = outs[ts]
            flag = "" if m.n_nodes_ == k else f" (K torch {m.n_nodes_} != {k})"
            line += f" | {torch_s:7.2f} {torch_s / n_pres * 1e6:9.0f} {torch_s / run_s:7.0f}x{flag}"
        print(line, flush=True)
    print(
        "\nus/sample = run time / samples presented (organisation + convergence); "
        "C++ ms: the authors' C++ SS-SOM, median per run (issue 9)."
    )


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
