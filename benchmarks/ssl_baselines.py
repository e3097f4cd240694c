"""Relevance-map defaults against the simple semi-supervised baselines, same run.

Per data set and label fraction: ``BatchSSSOM()`` (the default, ``decision="auto"``; ``--model
SSSOM`` for the online map), the paper-rule model (``BatchSSSOM(decision="map")``: same
hyper-parameters, the paper's decision),
LabelSpreading(kernel="knn", n_neighbors=7), 1-NN on the labelled rows only and
SelfTrainingClassifier(SVC) -- accuracy on the test rows, CE of the map's clusters beside the
maps' accuracy, median fit + predict seconds (wall; after one warm-up fit; the JSON also has the
process CPU seconds, ``cpu_s``).  Then the unsupervised rows: LARFDSSOM() and label-free
BatchSSSOM() beside k-means and a Gaussian mixture with as many clusters as classes (CE and NMI).

    python benchmarks/ssl_baselines.py --data uci       # the six UCI sets, all 9 folds
    python benchmarks/ssl_baselines.py --data untuned   # scikit-learn sets nobody tuned on
    python benchmarks/ssl_baselines.py --data uci --sets diabetes --folds 3 --json out.json
    python benchmarks/ssl_baselines.py --data untuned --folds 3 --model SSSOM --no-unsupervised
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

FRACTIONS = (0.01, 0.05, 0.10, 0.25, 1.0)
UCI = ("breast", "diabetes", "glass", "liver", "shape", "vowel")


def uci_cells(sets, n_folds):
    from somlab.datasets import load_uci, uci_folds

    for d in sets:
        for f in uci_folds()[:n_folds]:
            for fr in FRACTIONS:
                b = load_uci(d, fold=f, labelled=fr)
                yield d, f, fr, b.X_train, b.y_train, b.X_test, b.y_test


def untuned_sets():
    """Tabular sets outside the UCI six: scikit-learn's bundled ones, feature subsets and
    make_classification variants (the data the default's rule was designed on)."""
    from sklearn import datasets as D

    sets = {
        "wine": D.load_wine(return_X_y=True),
        "breast_cancer": D.load_breast_cancer(return_X_y=True),
        "iris": D.load_iris(return_X_y=True),
    }
    X, y = D.load_digits(return_X_y=True)
    sets["digits_half"] = (X[::2], y[::2])
    X, y = D.load_wine(return_X_y=True)
    sets["wine_even_features"] = (X[:, ::2], y)
    sets["mc_600x20_3c"] = D.make_classification(
        600, 20, n_informative=5, n_redundant=3, n_classes=3, random_state=1
    )
    sets["mc_400x10_4c"] = D.make_classification(
        400,
        10,
        n_informative=4,
        n_classes=4,
        n_clusters_per_class=2,
        flip_y=0.05,
        random_state=2,
    )
    sets["mc_800x30_2c"] = D.make_classification(
        800, 30, n_informative=8, n_classes=2, class_sep=0.7, random_state=3
    )
    return sets


def split_cells(X, y, n_reps, fractions=FRACTIONS):
    """``(rep, fraction, X_train, y_train, X_test, y_test)`` of ``n_reps`` seeded 2/3 : 1/3
    splits (min-max scaled on the training rows) and, per fraction, a seeded draw of labelled
    training rows (the rest -1)."""
    from sklearn.preprocessing import MinMaxScaler

    X = X.astype(np.float64)
    for r in range(n_reps):
        rng = np.random.default_rng(100 + r)
        perm = rng.permutation(len(y))
        n_te = len(y) // 3
        te, tr = perm[:n_te], perm[n_te:]
        sc = MinMaxScaler().fit(X[tr])
        Xtr, Xte = np.clip(sc.transform(X[tr]), 0, 1), np.clip(sc.transform(X[te]), 0, 1)
        for fr in fractions:
            ytr = y[tr].copy()
            if fr < 1:
                k = max(2, int(round(fr * len(tr))))
                keep = rng.choice(len(tr), k, replace=False)
                semi = np.full(len(tr), -1)
                semi[keep] = ytr[keep]
                ytr = semi
            yield r, fr, Xtr, ytr, Xte, y[te]


def untuned_cells(sets, n_reps):
    all_sets = untuned_sets()
    for name in sets or all_sets:
        X, y = all_sets[name]
        for r, fr, Xtr, ytr, Xte, yte in split_cells(X, y, n_reps):
            yield name, f"rep{r}", fr, Xtr, ytr, Xte, yte


def _timed(fn, cpu=None):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    if cpu is not None:
        cpu.append(time.process_time() - c)
    return out, time.perf_counter() - t


def run_cell(Xtr, ytr, Xte, yte, seed=0, model="BatchSSSOM"):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
    from sklearn.svm import SVC

    from somlab import relevance
    from somlab.metrics import clustering_error

    cls = getattr(relevance, model)
    lab = ytr >= 0
    out = {}
    for name, kw in (("default", {}), ("paper_rule", {"decision": "map"})):

        def fit_predict(kw=kw):
            m = cls(random_state=seed, **kw).fit(Xtr, ytr)
            return m, m.predict(Xte)

        cpu = []
        (m, pred), secs = _timed(fit_predict, cpu)
        out[name] = {
            "acc": float(np.mean(pred == yte)),
            "ce": float(clustering_error(yte, m.predict_cluster(Xte))),
            "s": secs,
            "cpu_s": cpu[0],
            "rule": getattr(m, "decision_", "map"),
        }

    def ls():
        return LabelSpreading(kernel="knn", n_neighbors=7).fit(Xtr, ytr).predict(Xte)

    def nn1():
        return KNeighborsClassifier(1).fit(Xtr[lab], ytr[lab]).predict(Xte)

    def st():
        if lab.all():
            return SVC(gamma="scale").fit(Xtr, ytr).predict(Xte)
        if len(np.unique(ytr[lab])) < 2:
            return np.full(len(Xte), ytr[lab][0])
        base = SVC(probability=True, gamma="scale", random_state=seed)
        return SelfTrainingClassifier(base).fit(Xtr, ytr).predict(Xte)

    for name, fn in (("label_spreading", ls), ("1nn", nn1), ("self_training", st)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred, secs = _timed(fn)
        out[name] = {"acc": float(np.mean(pred == yte)), "s": secs}
    return out


def run_unsupervised(cells, seed=0):
    """Label-free rows: the training folds of fraction 1 (labels only for scoring)."""
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    from somlab.metrics import clustering_error, nmi
    from somlab.relevance import LARFDSSOM, BatchSSSOM

    rows = {}
    for d, _f, fr, Xtr, ytr, _Xte, _yte in cells:
        if fr != 1.0:
            continue
        k = len(np.unique(ytr))
        res = {}
        for name, make in (
            ("LARFDSSOM()", lambda X=Xtr: LARFDSSOM(random_state=seed).fit(X).labels_),
            ("BatchSSSOM() fit(X)", lambda X=Xtr: BatchSSSOM(random_state=seed).fit(X).predict(X)),
            ("k-means", lambda X=Xtr, k=k: KMeans(k, n_init=10, random_state=seed).fit_predict(X)),
            ("GMM", lambda X=Xtr, k=k: GaussianMixture(k, random_state=seed).fit(X).predict(X)),
        ):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cl = make()
            res[name] = (clustering_error(ytr, cl), nmi(ytr, cl))
        rows.setdefault(d, []).append(res)
    return rows


MODELS = ("default", "paper_rule", "label_spreading", "1nn", "self_training")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("uci", "untuned"), default="uci")
    ap.add_argument("--sets", nargs="*", default=None)
    ap.add_argument("--folds", type=int, default=9, help="UCI folds (of 9) or untuned repeats")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--model",
        choices=("BatchSSSOM", "SSSOM"),
        default="BatchSSSOM",
        help="the relevance map behind 'default' and 'paper_rule'",
    )
    ap.add_argument("--no-unsupervised", action="store_true", help="skip the label-free rows")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from somlab.relevance import BatchSSSOM

    rng = np.random.default_rng(0)
    BatchSSSOM(random_state=0).fit(rng.random((60, 4)), np.repeat([0, 1, -1], 20))  # warm-up

    def cells():
        if args.data == "uci":
            return uci_cells(args.sets or UCI, args.folds)
        return untuned_cells(args.sets, args.folds)

    results = {}
    for d, _f, fr, Xtr, ytr, Xte, yte in cells():
        results.setdefault((d, fr), []).append(run_cell(Xtr, ytr, Xte, yte, model=args.model))
    print(
        f"model: {args.model}(); data: {args.data}; "
        "accuracy (CE of the map's clusters) / median fit+predict s"
    )
    print("| data | labels | " + " | ".join(MODELS) + " | rules chosen |")
    print("|---" * (len(MODELS) + 3) + "|")
    per_frac = {fr: {m: [] for m in MODELS} for fr in FRACTIONS}
    times = []
    for (d, fr), runs in results.items():
        cols = []
        for m in MODELS:
            acc = float(np.mean([r[m]["acc"] for r in runs]))
            per_frac[fr][m].append(acc)
            sec = float(np.median([r[m]["s"] for r in runs]))
            if "ce" in runs[0][m]:
                ce = float(np.mean([r[m]["ce"] for r in runs]))
                cols.append(f"{acc:.3f} ({ce:.3f}) / {sec:.3f}")
            else:
                cols.append(f"{acc:.3f} / {sec:.3f}")
        times += [r["default"]["s"] for r in runs]
        rules = {}
        for r in runs:
            rules[r["default"]["rule"]] = rules.get(r["default"]["rule"], 0) + 1
        chosen = ", ".join(f"{k} {v}" for k, v in sorted(rules.items()))
        print(f"| {d} | {int(fr * 100)} % | " + " | ".join(cols) + f" | {chosen} |")
    print()
    print("Mean accuracy over data sets per label fraction (target: default >= max(1-NN, LS))")
    print("| labels | default | paper rule | LS | 1-NN | self-training | max(1-NN, LS) | met |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for fr in FRACTIONS:
        mean = {m: float(np.mean(v)) for m, v in per_frac[fr].items()}
        bar = max(mean["1nn"], mean["label_spreading"])
        summary[fr] = {**mean, "bar": bar}
        print(
            f"| {int(fr * 100)} % | {mean['default']:.3f} | {mean['paper_rule']:.3f} | "
            f"{mean['label_spreading']:.3f} | {mean['1nn']:.3f} | {mean['self_training']:.3f}"
            f" | {bar:.3f} | {'yes' if mean['default'] >= bar else 'no'} |"
        )
    cpu_times = [r["default"]["cpu_s"] for runs in results.values() for r in runs]
    print(
        f"\nmedian default fit+predict per cell: {np.median(times):.3f} s wall, "
        f"{np.median(cpu_times):.3f} s CPU (after warm-up)"
    )
    unsup = {} if args.no_unsupervised else run_unsupervised(cells())
    print("\nUnsupervised (training folds, labels for scoring only): mean CE / NMI")
    names = ("LARFDSSOM()", "BatchSSSOM() fit(X)", "k-means", "GMM")
    print("| data | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for d, rows in unsup.items():
        cells_txt = []
        for n in names:
            ce = np.mean([r[n][0] for r in rows])
            nm = np.mean([r[n][1] for r in rows])
            cells_txt.append(f"{ce:.3f} / {nm:.3f}")
        print(f"| {d} | " + " | ".join(cells_txt) + " |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "summary": {str(k): v for k, v in summary.items()},
                    "cells": {f"{d}|{fr}": runs for (d, fr), runs in results.items()},
                },
                fh,
                indent=1,
            )


if __name__ == "__main__":
    main()
