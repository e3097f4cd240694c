"""Many Batch SS-SOM settings in one pass: BatchSSSOMEnsemble vs fitting them one at a time.

For K = 1, 8, 32, ... of the authors' settings (their 500-row LHS file, the first K rows) on one
UCI fold, time

* ``ensemble``: one :class:`somlab.BatchSSSOMEnsemble` fit (K maps, one tensor program);
* ``loop, torch engine``: K :class:`somlab.BatchSSSOM` fits with the tensorized engine, the one a
  GPU runs (timed on the first ``--single`` settings and scaled to K: it is linear in K);
* ``loop, compiled engine``: K fits on the CPU with the compiled per-map engine (the CPU default,
  one thread), what a user without the ensemble would run beside a GPU;

and print settings per second and the ensemble's speed-up over each loop, side by side.  The
ensemble's maps are checked against the single fits (same number of nodes, same prototypes).

    python benchmarks/sssom_ensemble.py [--dataset diabetes] [--fraction 0.1] [--ks 1,8,32,128]
        [--device cpu|cuda] [--single 8] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

import somlab
from somlab import BatchSSSOM, BatchSSSOMEnsemble
from somlab.datasets import load_uci
from somlab.experiments.lhs import authors_settings


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def loop_time(settings, X, y, device, engine):
    """Seconds per setting of single fits, and the fitted maps."""
    models = []
    _sync(device)
    t = time.perf_counter()
    dev = "cpu" if engine == "compiled" else device
    for s in settings:
        models.append(BatchSSSOM(**s, device=dev, engine=engine).fit(X, y))
    _sync(device)
    return (time.perf_counter() - t) / len(settings), models


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="diabetes")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--ks", default="1,8,32,128")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--single", type=int, default=8, help="single fits timed per engine")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    b = load_uci(a.dataset, labelled=a.fraction)
    X, y = b.X_train, b.y_train
    all_settings = authors_settings()
    ks = [int(k) for k in a.ks.split(",")]
    engines = ["torch", "compiled"]
    # warm-up: load kernels
    BatchSSSOMEnsemble.from_settings(all_settings[:2], device=a.device).fit(X, y)
    for e in engines:
        loop_time(all_settings[:1], X, y, a.device, e)
    n_single = min(a.single, max(ks))
    single = {}
    for e in engines:
        per, models = loop_time(all_settings[:n_single], X, y, a.device, e)
        single[e] = (per, models)
    rows = []
    for K in ks:
        settings = all_settings[:K]
        _sync(a.device)
        t = time.perf_counter()
        ens = BatchSSSOMEnsemble.from_settings(settings, device=a.device).fit(X, y)
        _sync(a.device)
        sec = time.perf_counter() - t
        m = min(K, n_single)
        same = all(
            e.n_nodes_ == s.n_nodes_ and np.array_equal(e.prototypes_, s.prototypes_)
            for e, s in zip(ens.models_[:m], single["torch"][1][:m])
        )
        row = {"K": K, "ensemble_s": sec, "ensemble_settings_per_s": K / sec, "same_maps": same}
        for e in engines:
            per = single[e][0]
            row[f"loop_{e}_settings_per_s"] = 1.0 / per
            row[f"speedup_vs_{e}"] = per * K / sec
        rows.append(row)
        print(
            f"K={K:4d}  ensemble {sec:8.2f} s  {K / sec:8.2f} settings/s  "
            + "  ".join(
                f"loop[{e}] {1 / single[e][0]:7.2f}/s  x{single[e][0] * K / sec:6.2f}"
                for e in engines
            )
            + f"  maps equal: {same}",
            flush=True,
        )
    info = {
        "dataset": a.dataset,
        "fraction": a.fraction,
        "n_train": int(X.shape[0]),
        "device": a.device
        if a.device == "cpu"
        else torch.cuda.get_device_name(torch.device(a.device)),
        "threads": a.threads,
        "single_fits_timed": n_single,
        "machine": platform.platform(),
        "torch": torch.__version__,
        "somlab": somlab.__version__,
        "rows": rows,
    }
    if a.json:
        with open(a.json, "w") as f:
            json.dump(info, f, indent=1)


if __name__ == "__main__":
    main()
