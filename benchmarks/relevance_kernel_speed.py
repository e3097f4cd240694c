"""The compiled relevance kernel alone: CPU time inside ``Run.chunk`` per run, and a digest of
every result to check that a kernel change leaves the maps bit-identical.

Per dataset and map, over the authors' settings 0-9, the first ``--folds`` folds and 1/10/100 %
labels (LARFDSSOM: no labels): the median CPU milliseconds (``time.thread_time``) the kernel
spends on a run, with the sample draws made beforehand and the Python around a fit left out
(compare ``benchmarks/sssom_speed.py`` for whole fits).

    python benchmarks/relevance_kernel_speed.py [--datasets glass,vowel] [--models sssom,...]
        [--folds 2] [--digests FILE [--write]]

``--digests FILE --write`` stores a SHA-1 per run (C, delta, omega, wins, classes, edges,
history); ``--digests FILE`` compares the runs with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time

import numpy as np
import torch

from somlab import LARFDSSOM, SSSOM, BatchSSSOM
from somlab._utils import seeded_generator
from somlab.datasets import load_uci, uci_folds
from somlab.experiments.lhs import authors_settings
from somlab.relevance import _compiled, _fit

MODELS = {
    "sssom": (SSSOM, {}),
    "larfdssom": (LARFDSSOM, {}),
    "batchsssom": (BatchSSSOM, {}),
    "larfdssom_cpp": (LARFDSSOM, {"compat": "cpp_larfdssom"}),
}


def kernel_run(est, X, y):
    """(CPU seconds inside the kernel, digest) of one fit of ``est`` on ``X, y``."""
    bs = int(est.batch_size) if isinstance(est, BatchSSSOM) else 1
    Xt, y_idx, _, p = _fit._prepare(est, X, y, bs)
    Xn, yn = _compiled._inputs(Xt.numpy(), y_idx.numpy())
    job = _compiled._Job(Xn, yn, p, seeded_generator(est.random_state))
    chunks = []
    t = 0.0
    while not job.run.done:
        if not chunks:
            chunks.append(job.next_idx())
        idx = chunks.pop()
        c = time.thread_time()
        job.run.chunk(idx)
        t += time.thread_time() - c
    r = job.result()
    h = hashlib.sha1()
    for key in ("C", "delta", "omega", "wins", "classes", "adj"):
        h.update(np.ascontiguousarray(r[key]).tobytes())
    h.update(json.dumps(r["history"]).encode())
    return t, h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="breast,diabetes,glass,liver,shape,vowel")
    ap.add_argument("--models", default="sssom,larfdssom,batchsssom")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--digests", default=None)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    settings = authors_settings()[:10]
    folds = uci_folds()[: args.folds]
    digests = {}
    for ds in args.datasets.split(","):
        for name in args.models.split(","):
            cls, extra = MODELS[name]
            unsupervised = name.startswith("larfdssom")
            times = []
            for frac in [1.0] if unsupervised else [0.01, 0.1, 1.0]:
                for fi, fold in enumerate(folds):
                    b = load_uci(ds, fold=fold, labelled=frac)
                    y = None if unsupervised else b.y_train
                    for si, p in enumerate(settings):
                        t, d = kernel_run(cls(**p, **extra), b.X_train, y)
                        times.append(t)
                        digests[f"{ds}/{name}/{frac}/{fi}/{si}"] = d
            print(
                f"{ds:<9} {name:<14} kernel CPU median {statistics.median(times) * 1e3:7.3f} ms"
                f"  ({len(times)} runs)",
                flush=True,
            )
    if args.digests and args.write:
        with open(args.digests, "w") as f:
            json.dump(digests, f)
        print(f"wrote {len(digests)} digests")
    elif args.digests:
        with open(args.digests) as f:
            ref = json.load(f)
        bad = [k for k, v in digests.items() if k in ref and ref[k] != v]
        print(
            f"identical: {len(digests) - len(bad)}/{len(digests)}"
            + (f"; differ: {bad[:5]}" if bad else "")
        )


if __name__ == "__main__":
    main()
