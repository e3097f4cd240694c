"""Train DC-SOMRL on 5000 MNIST digits and draw the figures of seed 001.

python examples/dcsomrl_figures.py --out docs/gallery

writes ``dcsomrl_<name>.png`` for relevance_histograms, decoded_prototypes, closest_samples,
latent_traversal, relevance_perturbation, tsne and cluster_intersection (about 1-2 minutes on a
CPU).  The default 5,000 digits are bundled with somlab; another ``--n`` reads MNIST from
``--data-dir``, ``$SOMLAB_DATA`` or ``~/.cache/somlab`` (downloaded there when missing).
``--model PATH`` reuses a model saved by an earlier run, or saves the new one there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from somlab import DCSOMRL, load, plotting  # noqa: E402
from somlab.datasets import load_mnist_subset  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/gallery", help="output folder (default docs/gallery)")
    ap.add_argument("--data-dir", default=None, help="folder with mnist.npz (--n other than 5000)")
    ap.add_argument("--n", type=int, default=5000, help="training digits (default 5000)")
    ap.add_argument("--model", default=None, help="load the model from / save it to this file")
    ap.add_argument("--prototype", type=int, default=None,
                    help="prototype of the traversal and perturbation figures "
                         "(default: the one that wins the most digits)")  # fmt: skip
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_mnist_subset(args.n, data_dir=args.data_dir)
    if args.model and Path(args.model).is_file():
        model = load(args.model)
        print(f"loaded {args.model}")
    else:
        t0 = time.perf_counter()
        model = DCSOMRL("mnist", pretrain_epochs=20, epochs=10, random_state=0).fit(X)
        print(f"trained in {time.perf_counter() - t0:.0f} s")
        if args.model:
            model.save(args.model)
    labels = model.predict(X)
    K = model.n_prototypes_
    print(f"{K} prototypes, purity {model.score(X, y):.3f}")

    counts = np.bincount(labels, minlength=K)
    R = model.relevances_
    spread = R.max(1) - R.min(1)
    busy = np.nonzero(counts >= 0.01 * len(X))[0]  # prototypes that win 1 % of the digits
    busy = busy if busy.size else np.arange(K)
    # traversal and perturbation: a busy prototype whose relevances differ the most (prototypes
    # that never passed the activation threshold keep relevance 1 everywhere)
    proto = int(busy[spread[busy].argmax()]) if args.prototype is None else args.prototype
    most_used = [int(k) for k in np.argsort(-counts, kind="stable")[:16]]
    # one row per class in the closest-samples figure: the prototype with most digits of it
    M, _ = plotting.cluster_intersection(model, X, y, normalize=False)
    per_class = list(dict.fromkeys(int(k) for k in M.argmax(0)))
    print(
        f"traversal / perturbation prototype {proto}: {counts[proto]} digits, relevances "
        f"{R[proto].min():.2f}..{R[proto].max():.2f}"
    )

    figures = {
        "relevance_histograms": lambda p: plotting.plot_relevance_histograms(
            model, prototypes=most_used, path=p
        ),
        "decoded_prototypes": lambda p: plotting.plot_decoded_prototypes(model, ncols=16, path=p),
        "closest_samples": lambda p: plotting.plot_closest_samples(
            model, X, n=10, prototypes=per_class, path=p
        ),
        "latent_traversal": lambda p: plotting.plot_latent_traversal(model, proto, path=p),
        "relevance_perturbation": lambda p: plotting.plot_relevance_perturbation(
            model, proto, noise=0.3, path=p
        ),
        "tsne": lambda p: plotting.plot_tsne(
            model, X, y, max_samples=2000, image_shape=(28, 28), path=p
        ),
        "cluster_intersection": lambda p: plotting.plot_cluster_intersection(model, X, y, path=p),
    }
    for name, draw in figures.items():
        path = out / f"dcsomrl_{name}.png"
        draw(path)
        plt.close("all")
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
