"""Selection v2 (helper dc15): candidates of the ``default`` preset over seeds, one fit each.

One DC-SOMRL fit per (data set, candidate, seed) on ``--quick``'s 5,000 training images (the
same stratified draw as ``load_data`` and ``validation_data``; asserted), 20 pretraining
epochs, 50 joint epochs capped by ``max_iter``. Each fit is scored twice, into two files:

- ``selection_v2_val.jsonl``: on 5,000 *other training images* (``validation_data``) -- the
  only scores the choice looks at;
- ``selection_v2_test.jsonl``: on the 10,000 test images, exactly as ``run_seed`` scores a
  ``--quick`` run (k-means fitted once on the same 5,000 images, same seed, same k) -- read
  only after the choice, for the chosen rule.

    python selection_v2.py DIR fmnist:alpha003:0 fmnist:default:1 ...
"""

import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

from somlab.deep import DCSOMRL
from somlab.experiments.dcsomrl import (
    QUICK,
    SELECTION_CANDIDATES,
    DCSOMRLConfig,
    _scores,
    load_data,
    validation_data,
)

EXTRA = {"at098_alpha003": {"at": 0.98, "alpha": 0.03}}  # not in SELECTION_CANDIDATES


@functools.cache
def quick_splits(ds):
    """``(X_fit, X_val, y_val, X_te, y_te)``: --quick's 5,000 training images (asserted the
    same draw as ``load_data``'s), 5,000 other training images for validation, the test set."""
    X_fit, X_val, y_val = validation_data(ds, 5000, 5000)
    X_tr, _, X_te, y_te = load_data(DCSOMRLConfig(dataset=ds, quick=True, **QUICK))
    assert np.array_equal(X_fit, X_tr), "validation and --quick training draws differ"
    return X_fit, X_val, y_val, X_te, y_te


def main(out_dir, jobs):
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    for job in jobs:
        ds, name, seed = job.split(":")
        seed = int(seed)
        changes = {**SELECTION_CANDIDATES, **EXTRA}[name]
        q = dict(QUICK)
        if os.environ.get("SMOKE"):  # a seconds-long check of this script
            q, changes = dict(q, pretrain_epochs=1), dict(changes, max_iter=3)
        X_fit, X_val, y_val, X_te, y_te = quick_splits(ds)
        t0 = time.perf_counter()
        c0 = time.process_time()
        est = DCSOMRL("default", pretrain_epochs=q["pretrain_epochs"], epochs=q["epochs"],
                      keep_pretrained=True, random_state=seed, **changes).fit(X_fit)  # fmt: skip
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        k = est.n_prototypes_
        km_px = KMeans(n_clusters=max(1, k), n_init=3, random_state=seed).fit(X_fit)
        c_fit = est.transform(X_fit, pretrained=True)
        km_c = KMeans(n_clusters=max(1, k), n_init=3, random_state=seed).fit(c_fit)
        base = {"dataset": ds, "candidate": name, "changes": changes, "seed": seed,
                "n_prototypes": k, "fit_s": fit_s, "fit_cpu_s": fit_cpu}  # fmt: skip
        for split, X, y in (("val", X_val, y_val), ("test", X_te, y_te)):
            pred = est.predict(X)
            rec = dict(base, split=split, n_clusters_used=int(len(np.unique(pred))))
            rec["dcsomrl"] = _scores(y, pred)
            rec["kmeans_pixels"] = _scores(y, km_px.predict(X))
            rec["kmeans_pretrained_codes"] = _scores(
                y, km_c.predict(est.transform(X, pretrained=True))
            )
            with open(out_dir / f"selection_v2_{split}.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            if split == "val":  # the test scores are not printed
                print(job, k, rec["n_clusters_used"], rec["dcsomrl"]["purity"],
                      rec["dcsomrl"]["nmi"], rec["kmeans_pixels"]["purity"],
                      rec["kmeans_pretrained_codes"]["purity"], f"{fit_s:.0f}s wall",
                      f"{fit_cpu:.0f}s cpu", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
