"""Fit / predict CPU time of the label-free defaults on 10,000 x 64 blobs (one thread).

PYTHONPATH=src python experiments/results/unsup_defaults/fit_time_10k.py new
"""

import sys
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import make_blobs
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

import somlab.relevance as R
from somlab.metrics import clustering_error


def main(tag):
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    X, y = make_blobs(10000, 64, centers=6, cluster_std=4.0, random_state=0)
    X = MinMaxScaler().fit_transform(X).astype(np.float32)
    with threadpool_limits(1):
        R.LARFDSSOM(random_state=0).fit(X[:200])  # warm-up
        for cls in (R.LARFDSSOM, R.BatchSSSOM):
            t = time.process_time()
            m = cls(random_state=0).fit(X)
            fit_s = time.process_time() - t
            t = time.process_time()
            p = m.predict(X)
            pred_s = time.process_time() - t
            k = len(getattr(m, "cluster_centers_", []))
            ce = clustering_error(y, p)
            print(tag, cls.__name__, f"fit {fit_s:.2f}s predict {pred_s:.2f}s CE {ce:.3f} k {k}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
