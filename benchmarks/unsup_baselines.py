"""Label-free relevance maps against k-means and a Gaussian mixture, same run (issue 15.4).

Per data set and split: ``LARFDSSOM()`` and ``BatchSSSOM()`` fitted with no labels (their
defaults: the map's nodes merged into clusters, relevance/_clusters.py), the same default
estimators with the merge switched off (the paper's rule: one cluster per node of the map at
the default ``at``), k-means (``n_init=10``) and ``GaussianMixture`` with k = the number of
classes -- which the maps are not told -- and the same two with k = the number of clusters
the default map produced on that split (``@L``: LARFDSSOM()'s, ``@B``: BatchSSSOM()'s; the
issue's "with as many clusters"), and LARFDSSOM() with ``filter_noise=False``.  CE (noise =
-1 counts in N and is never matched, SPEC §8) and NMI on the test split and on the training
split, and fit CPU seconds (``time.process_time``, one thread).

    python benchmarks/unsup_baselines.py --data design   # where the rule was chosen
    python benchmarks/unsup_baselines.py --data uci      # the six UCI sets, all 9 folds (check)
    python benchmarks/unsup_baselines.py --data uci --sets glass --folds 3 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings

import numpy as np

UCI = ("breast", "diabetes", "glass", "liver", "shape", "vowel")
MODELS = ("LARFDSSOM()", "LARFDSSOM nodes", "BatchSSSOM()", "BatchSSSOM nodes", "k-means", "GMM")
#: k-means and GMM with k = the number of clusters the default map produced on that split.
AT_MAP_K = ("k-means @L", "GMM @L", "k-means @B", "GMM @B")
#: LARFDSSOM's default without its noise filter (rows below ``at`` get a cluster too).
EXTRA = ("LARFDSSOM(filter_noise=False)",)
ALL = MODELS + AT_MAP_K + EXTRA


def design_sets():
    """Data sets the rule was chosen on (never the UCI six): scikit-learn's bundled sets,
    feature / class subsets and synthetic blobs and classification problems."""
    from sklearn import datasets as D

    X, y = D.load_wine(return_X_y=True)
    sets = {"wine": (X, y), "wine_even_features": (X[:, ::2], y)}
    sets["breast_cancer"] = D.load_breast_cancer(return_X_y=True)
    sets["iris"] = D.load_iris(return_X_y=True)
    X, y = D.load_digits(return_X_y=True)
    sets["digits_half"] = (X[::2], y[::2])
    keep = y < 4
    sets["digits_0123"] = (X[keep], y[keep])
    sets["blobs5_6d"] = D.make_blobs(600, 6, centers=5, cluster_std=1.5, random_state=4)
    sets["blobs8_4d"] = D.make_blobs(800, 4, centers=8, cluster_std=1.0, random_state=6)
    Xb, yb = D.make_blobs(500, 2, centers=3, random_state=5)
    sets["blobs3_aniso"] = (Xb @ np.array([[0.6, -0.6], [-0.4, 0.8]]), yb)
    sets["mc_600x20_3c"] = D.make_classification(
        600, 20, n_informative=5, n_redundant=3, n_classes=3, random_state=1
    )
    sets["mc_400x10_4c"] = D.make_classification(
        400, 10, n_informative=4, n_classes=4, n_clusters_per_class=2, flip_y=0.05, random_state=2
    )
    sets["mc_800x30_2c"] = D.make_classification(
        800, 30, n_informative=8, n_classes=2, class_sep=0.7, random_state=3
    )
    return sets


def design_splits(names, n_reps):
    """Each design set: ``n_reps`` random 2/3 train - 1/3 test splits, min-max scaled on the
    training rows (the papers' data lie in [0, 1])."""
    from sklearn.preprocessing import MinMaxScaler

    all_sets = design_sets()
    for name in names or all_sets:
        X, y = all_sets[name]
        X = X.astype(np.float64)
        for r in range(n_reps):
            perm = np.random.default_rng(100 + r).permutation(len(y))
            te, tr = perm[: len(y) // 3], perm[len(y) // 3 :]
            sc = MinMaxScaler().fit(X[tr])
            Xtr = np.clip(sc.transform(X[tr]), 0, 1).astype(np.float32)
            Xte = np.clip(sc.transform(X[te]), 0, 1).astype(np.float32)
            yield name, f"rep{r}", Xtr, y[tr], Xte, y[te]


def uci_splits(names, n_folds):
    from somlab.datasets import load_uci, uci_folds

    for d in names or UCI:
        for f in uci_folds()[:n_folds]:
            b = load_uci(d, fold=f, labelled=1.0)
            yield d, f, b.X_train, b.y_train_true, b.X_test, b.y_test


def _fit(make, X):
    t = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(X)
    return model, time.process_time() - t


@contextlib.contextmanager
def _no_merge():
    """The paper's rule for default parameters: the node merge switched off."""
    from somlab.relevance import _clusters

    keep = _clusters.merge_applies
    _clusters.merge_applies = lambda est: False
    try:
        yield
    finally:
        _clusters.merge_applies = keep


def _n_clusters(m) -> int:
    """Clusters a fitted label-free map predicts: its centres, else one per node."""
    centres = getattr(m, "cluster_centers_", None)
    return int(len(centres)) if centres is not None else int(m.n_nodes_)


def run_split(Xtr, ytr, Xte, yte, seed=0) -> dict:
    """``{model: {ce, nmi, ce_train, nmi_train, noise, k, s}}`` for one split."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    from somlab.metrics import clustering_error, nmi
    from somlab.relevance import LARFDSSOM, BatchSSSOM

    k = int(np.unique(ytr).size)
    out = {}

    def record(name, pred_te, pred_tr, secs, n_clusters):
        out[name] = {
            "ce": float(clustering_error(yte, pred_te)),
            "nmi": float(nmi(yte, pred_te)),
            "ce_train": float(clustering_error(ytr, pred_tr)),
            "nmi_train": float(nmi(ytr, pred_tr)),
            "noise": float(np.mean(pred_te == -1)),
            "k": int(n_clusters),
            "s": float(secs),
        }

    map_k = {}
    for label, cls in (("LARFDSSOM", LARFDSSOM), ("BatchSSSOM", BatchSSSOM)):
        m, secs = _fit(lambda cls=cls: cls(random_state=seed), Xtr)
        n_cl = _n_clusters(m)
        map_k[label[0]] = n_cl
        record(f"{label}()", m.predict_cluster(Xte), m.predict_cluster(Xtr), secs, n_cl)
        with _no_merge():  # the default map, one cluster per node
            m, secs = _fit(lambda cls=cls: cls(random_state=seed), Xtr)
        record(f"{label} nodes", m.predict_cluster(Xte), m.predict_cluster(Xtr), secs, m.n_nodes_)
    m, secs = _fit(lambda: LARFDSSOM(random_state=seed, filter_noise=False), Xtr)
    n_cl = _n_clusters(m)
    record(EXTRA[0], m.predict_cluster(Xte), m.predict_cluster(Xtr), secs, n_cl)
    km, secs = _fit(lambda: KMeans(k, n_init=10, random_state=seed), Xtr)
    record("k-means", km.predict(Xte), km.labels_, secs, k)
    gm, secs = _fit(lambda: GaussianMixture(k, random_state=seed), Xtr)
    record("GMM", gm.predict(Xte), gm.predict(Xtr), secs, k)
    for tag, q in map_k.items():  # as many clusters as the map produced (the wording)
        q = max(1, min(q, Xtr.shape[0]))
        km, secs = _fit(lambda q=q: KMeans(q, n_init=10, random_state=seed), Xtr)
        record(f"k-means @{tag}", km.predict(Xte), km.labels_, secs, q)
        gm, secs = _fit(lambda q=q: GaussianMixture(q, random_state=seed), Xtr)
        record(f"GMM @{tag}", gm.predict(Xte), gm.predict(Xtr), secs, q)
    return out


def summarise(results: dict) -> dict:
    """Mean of every measure over the splits of each data set."""
    table = {}
    for d, splits in results.items():
        table[d] = {
            m: {q: float(np.mean([s[m][q] for s in splits])) for q in splits[0][m]}
            for m in ALL
            if m in splits[0]
        }
    return table


def markdown(table: dict, split: str = "", cols=MODELS) -> str:
    lines = [
        f"| data | {' | '.join(cols)} |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for d, row in table.items():
        cells = [
            f"{row[m]['ce' + split]:.3f} / {row[m]['nmi' + split]:.3f} (k {row[m]['k']:.1f})"
            for m in cols
        ]
        lines.append(f"| {d} | {' | '.join(cells)} |")
    mean = {m: np.mean([row[m]["ce" + split] for row in table.values()]) for m in cols}
    nm = {m: np.mean([row[m]["nmi" + split] for row in table.values()]) for m in cols}
    lines.append(f"| mean | {' | '.join(f'{mean[m]:.3f} / {nm[m]:.3f}' for m in cols)} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("uci", "design"), default="design")
    ap.add_argument("--sets", nargs="*", default=None)
    ap.add_argument(
        "--folds",
        type=int,
        default=None,
        help="UCI folds (of 9; default 9) or design repeats (default 3)",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    from somlab.relevance import LARFDSSOM

    LARFDSSOM(random_state=0).fit(np.random.default_rng(0).random((60, 4)))  # warm-up
    if args.data == "uci":
        splits = uci_splits(args.sets, args.folds or 9)
    else:
        splits = design_splits(args.sets, args.folds or 3)
    results = {}
    with threadpool_limits(1):
        for d, f, Xtr, ytr, Xte, yte in splits:
            r = run_split(Xtr, ytr, Xte, yte)
            results.setdefault(d, []).append(r)
            print(
                d,
                f,
                " ".join(f"{m}={r[m]['ce']:.3f}/{r[m]['nmi']:.3f}" for m in ALL),
                flush=True,
            )
    table = summarise(results)
    print("\nTest splits: CE / NMI (k: clusters found; mean over splits)\n")
    print(markdown(table))
    print("\nTraining splits: CE / NMI\n")
    print(markdown(table, "_train"))
    cols = ("LARFDSSOM()", "k-means @L", "GMM @L", "BatchSSSOM()", "k-means @B", "GMM @B", *EXTRA)
    print("\nTest splits, k-means / GMM with k = the clusters of that split's map (@L: of")
    print("LARFDSSOM(), @B: of BatchSSSOM())\n")
    print(markdown(table, cols=cols))
    print("\nTraining splits, the same\n")
    print(markdown(table, "_train", cols=cols))
    print("\nFit CPU seconds (median over all splits)\n")
    for m in ALL:
        print(f"{m}: {np.median([s[m]['s'] for v in results.values() for s in v]):.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"splits": results, "table": table}, fh, indent=1)


if __name__ == "__main__":
    main()
