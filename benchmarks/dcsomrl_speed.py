"""DC-SOMRL training time: full MNIST (70,000 images, train + test) x 30 joint epochs.

Issue 5's speed target: 70,000 images x 30 epochs in <= 3 minutes on an H100.  Times one fit on
one device: the joint training (autoencoder + SOMRL layer, ``--epochs`` full epochs: the
mnist002 preset's 1000-iteration cap is lifted so that every epoch runs; timed inside fit, epoch
by epoch), and the rest of the fit (``--pretrain-epochs`` of autoencoder pretraining, the final
labelling); prints seconds, images per second and the purity / NMI of the result on the same
images (a sanity check, not a reproduction:
``somlab reproduce dcsomrl`` scores the test set).

    python benchmarks/dcsomrl_speed.py --device cuda [--n 70000] [--epochs 30]
        [--pretrain-epochs 5] [--param repel=0 ...] [--json out.json]
    python benchmarks/dcsomrl_speed.py --n 2000 --epochs 1 --pretrain-epochs 1   # CPU smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

import somlab
from somlab import DCSOMRL
from somlab.datasets import load_mnist
from somlab.experiments.table2 import parse_params
from somlab.metrics import nmi, purity


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=70000, help="images (train then test rows)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--preset", default="mnist002")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    d = load_mnist(data_dir=a.data_dir)
    X = np.concatenate([d.X_train, d.X_test])[: a.n].reshape(a.n if a.n else -1, -1)
    X = (X / 255.0 if X.max() > 1 else X).astype(np.float32)
    y = np.concatenate([d.y_train, d.y_test])[: a.n]
    params = dict(max_iter=10**9, **parse_params(a.param))  # every epoch runs
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    # warm-up (kernels, allocator) on a few batches
    DCSOMRL(a.preset, epochs=1, pretrain_epochs=1, device=a.device, **params).fit(X[:1024])
    sync()
    t = time.perf_counter()
    model = DCSOMRL(
        a.preset, epochs=a.epochs, pretrain_epochs=a.pretrain_epochs, device=a.device, **params
    ).fit(X)
    sync()
    total = time.perf_counter() - t
    joint = float(np.sum(model.history_["seconds"]))  # the joint epochs, timed inside fit
    times = {"fit_s": total, "joint_s": joint, "pretrain_and_rest_s": total - joint}
    labels = model.labels_
    out = {
        "device": a.device
        if a.device == "cpu"
        else torch.cuda.get_device_name(torch.device(a.device)),
        "torch": torch.__version__,
        "somlab": somlab.__version__,
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
        "n_images": int(X.shape[0]),
        "epochs": a.epochs,
        "pretrain_epochs": a.pretrain_epochs,
        "preset": a.preset,
        "params": {k: v for k, v in params.items()},
        **times,
        "joint_images_per_s": a.epochs * X.shape[0] / joint,
        "n_prototypes": int(model.n_prototypes_),
        "purity_on_fit_images": float(purity(y, labels)),
        "nmi_on_fit_images": float(nmi(y, labels)),
        "target": "70,000 x 30 joint epochs <= 180 s on an H100",
    }
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
