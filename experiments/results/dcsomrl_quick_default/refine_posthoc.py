"""Post-hoc refinement of DC-SOMRL's prototypes (helper dc15, issue 15 point 5).

Phase ``fit``: one fit of the ``default`` preset per (data set, seed) on ``--quick``'s 5,000
training images (asserted the same draw as ``load_data`` / ``validation_data``), 20
pretraining epochs, 1,000 joint iterations, no refinement; saves the SOMRL state and the
final encoder's codes of the training, validation and test images to CACHE, and the k-means
baselines' scores (fitted once on the 5,000 training images, random_state = seed, k = the
model's prototypes, as ``run_seed``) to ``refine_fits.jsonl``.

Phase ``eval``: for every cached fit, variants of the refinement (``SOMRL.refine`` on the
training codes, n_iter iterations) scored on the validation images (``refine_val.jsonl``, the
only file the choice reads) and on the test images (``refine_test.jsonl``, read after the
choice).

    python refine_posthoc.py fit DIR CACHE fmnist:0 mnist:0 ...
    python refine_posthoc.py eval DIR CACHE
"""

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from selection_v2 import quick_splits  # the script folder is on sys.path
from sklearn.cluster import KMeans

from somlab.deep import DCSOMRL
from somlab.experiments.dcsomrl import QUICK, _scores

VARIANTS = {  # name: (n_iter, euclidean)
    "none": (0, False),
    "lloyd1": (1, False),
    "lloyd2": (2, False),
    "lloyd5": (5, False),
    "lloyd10": (10, False),
    "lloyd20": (20, False),
    "lloyd100": (100, False),
    "euclid10": (10, True),
    # round 2, added after round 1's validation table (euclid10 chosen there)
    "euclid1": (1, True),
    "euclid2": (2, True),
    "euclid5": (5, True),
    "euclid20": (20, True),
    "euclid100": (100, True),
    "euclid0": (0, True),  # relevances dropped, no Lloyd step
}


def fit(out_dir, cache, jobs):
    for job in jobs:
        ds, seed = job.split(":")
        seed = int(seed)
        X_fit, X_val, y_val, X_te, y_te = quick_splits(ds)
        t0, c0 = time.perf_counter(), time.process_time()
        est = DCSOMRL(
            "default",
            pretrain_epochs=QUICK["pretrain_epochs"],
            epochs=QUICK["epochs"],
            keep_pretrained=True,
            random_state=seed,
            refine_iter=0,
        ).fit(X_fit)
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        k = est.n_prototypes_
        km_px = KMeans(n_clusters=max(1, k), n_init=3, random_state=seed).fit(X_fit)
        km_c = KMeans(n_clusters=max(1, k), n_init=3, random_state=seed).fit(
            est.transform(X_fit, pretrained=True)
        )
        rec = {"dataset": ds, "seed": seed, "n_prototypes": k, "fit_s": fit_s, "fit_cpu_s": fit_cpu}
        for split, X, y in (("val", X_val, y_val), ("test", X_te, y_te)):
            rec[split] = {
                "kmeans_pixels": _scores(y, km_px.predict(X)),
                "kmeans_pretrained_codes": _scores(
                    y, km_c.predict(est.transform(X, pretrained=True))
                ),
            }
        torch.save(
            {"som": est.som_.state_dict(), "som_params": est._resolved(),
             "codes": {s: torch.from_numpy(est.transform(X)) for s, X in
                       (("fit", X_fit), ("val", X_val), ("test", X_te))},
             "y": {"val": y_val, "test": y_te}},
            Path(cache) / f"{ds}_{seed}.pt",
        )  # fmt: skip
        with open(Path(out_dir) / "refine_fits.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(job, k, f"{fit_s:.0f}s wall", f"{fit_cpu:.0f}s cpu", flush=True)


def evaluate(out_dir, cache):
    fits = {}
    for line in (Path(out_dir) / "refine_fits.jsonl").read_text().splitlines():
        r = json.loads(line)
        fits[(r["dataset"], r["seed"])] = r  # last record wins
    for f in (Path(out_dir) / "refine_val.jsonl", Path(out_dir) / "refine_test.jsonl"):
        f.unlink(missing_ok=True)
    for (ds, seed), base in sorted(fits.items()):
        saved = torch.load(Path(cache) / f"{ds}_{seed}.pt", weights_only=False)
        from somlab.nn import SOMRL

        p = saved["som_params"]
        som0 = SOMRL(p["n_latent"], at=p["at"], n_max=p["n_max"])
        som0.load_state_dict(saved["som"])
        Zf = saved["codes"]["fit"]
        for name, (n_iter, euclid) in VARIANTS.items():
            som = copy.deepcopy(som0)
            if euclid:
                som.omega.fill_(1.0)
            cost0 = float(som.assignment_cost(Zf))
            c0 = time.process_time()
            ran = som.refine(Zf, n_iter)
            cpu = time.process_time() - c0
            for split in ("val", "test"):
                pred = som.predict(saved["codes"][split]).numpy()
                rec = {"dataset": ds, "seed": seed, "variant": name, "n_iter": n_iter,
                       "iterations_run": ran, "euclidean": euclid, "refine_cpu_s": cpu,
                       "cost_before": cost0, "cost_after": float(som.assignment_cost(Zf)),
                       "n_prototypes": base["n_prototypes"],
                       "n_clusters_used": int(len(np.unique(pred))),
                       "dcsomrl": _scores(saved["y"][split], pred), **base[split]}  # fmt: skip
                with open(Path(out_dir) / f"refine_{split}.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "fit":
        fit(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        evaluate(sys.argv[2], sys.argv[3])
