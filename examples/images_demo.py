"""Batch SS-SOM on CNN features, small: the Table III pipeline on a 5,000-digit MNIST subset.

Trains the paper's MNIST CNN on 4,000 digits, extracts its 32-d features (eval mode), then at
each label fraction fits Batch SS-SOM with a few Latin-hypercube settings and, on the same
features and the same labelled digits, 1-nearest-neighbour and LabelSpreading; prints the test
accuracy on the other 1,000 digits. About a minute on a laptop CPU.

    python examples/images_demo.py                      # the 5,000 digits bundled with somlab
    python examples/images_demo.py --honest             # also the honest protocol

The full reproduction is ``somlab reproduce table3`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import time

from sklearn.model_selection import train_test_split

from somlab.datasets import load_mnist_subset
from somlab.experiments.table3 import Table3Config, reproduce_table3


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="examples_out/images_demo", help="report folder")
    p.add_argument("--honest", action="store_true", help="also train a CNN per fraction")
    p.add_argument("--device", default="cpu", help="where the CNN trains (cpu, cuda)")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    X, y = load_mnist_subset()  # bundled: float32 [5000, 784] in [0, 1]
    X = X.reshape(-1, 28, 28)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=1000, stratify=y, random_state=0
    )
    config = Table3Config(
        dataset="mnist",
        fractions=(1, 5, 10, 100),
        protocols=("paper", "honest") if args.honest else ("paper",),
        n_settings=5,
        cnn_epochs=2,
        max_epochs=5,
        max_age_wins=5,
        device=args.device,
        use_cache=False,
        threads=1,  # small networks: one thread is as fast, and much faster on a busy CPU
        quick=True,
    )
    table = reproduce_table3(
        config, out_dir=args.out, progress=False, data=(X_train, y_train, X_test, y_test)
    )
    print(f"MNIST subset: {len(y_train)} training / {len(y_test)} test digits, CNN features")
    for protocol in config.protocols:
        print(
            f"\n{protocol} protocol"
            + (
                " (CNN saw every training label)"
                if protocol == "paper"
                else " (CNN saw only the labelled digits)"
            )
        )
        print(f"{'labelled':>9} {'n':>5} {'Batch SS-SOM':>13} {'1-NN':>7} {'LabelSpr.':>10}")
        for r in table["summary"]["rows"]:
            if r["protocol"] != protocol:
                continue
            print(
                f"{r['fraction']:>8}% {r['n_labelled']:>5.0f} {r['som_best']['mean']:>13.3f} "
                f"{r['knn']['mean']:>7.3f} {r['label_spreading']['mean']:>10.3f}"
            )
    print(
        f"\nBatch SS-SOM: best of {config.n_settings} settings per fraction (the paper's "
        f"selection). {time.perf_counter() - t0:.0f} s; report in {args.out}/table3_mnist_quick.md"
    )


if __name__ == "__main__":
    main()
