"""A second check on data neither vote was designed on (not the UCI six, not the untuned
sets): the other half of digits, make_gaussian_quantiles, noisy moons with extra noise
features, and two make_classification draws with other shapes.  Same splits and label draws
as benchmarks/ssl_baselines.py's untuned cells; old equal vote (map, knn1, spread) against the
new weighted vote, for SSSOM() and BatchSSSOM(), beside max(1-NN, LabelSpreading).

    python fresh_check.py N_REPS
"""

import sys
import warnings
from pathlib import Path

import numpy as np

FR = (0.01, 0.05, 0.1, 0.25, 1.0)
OLD = {"map": 1 / 3, "knn1": 1 / 3, "spread": 1 / 3}


def fresh_sets():
    from sklearn import datasets as D

    X, y = D.load_digits(return_X_y=True)
    rng = np.random.default_rng(7)
    Xm, ym = D.make_moons(600, noise=0.2, random_state=4)
    Xm = np.hstack([Xm, rng.standard_normal((600, 4)) * 0.5])
    return {
        "digits_other_half": (X[1::2], y[1::2]),
        "gauss_quantiles_500x6_3c": D.make_gaussian_quantiles(
            n_samples=500, n_features=6, n_classes=3, random_state=5
        ),
        "moons_noise6": (Xm, ym),
        "mc_1000x15_5c": D.make_classification(
            1000, 15, n_informative=6, n_classes=5, class_sep=1.2, random_state=6
        ),
        "mc_300x40_2c": D.make_classification(
            300, 40, n_informative=4, n_redundant=6, n_classes=2, random_state=8
        ),
    }


def cells(n_reps):
    # the splits and label draws of benchmarks/ssl_baselines.py's untuned cells
    sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "benchmarks"))
    from ssl_baselines import split_cells

    for name, (X, y) in fresh_sets().items():
        for _, fr, Xtr, ytr, Xte, yte in split_cells(X, y, n_reps, FR):
            yield name, fr, Xtr, ytr, Xte, yte


def main(n_reps):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading

    from somlab.relevance import SSSOM, BatchSSSOM, _auto

    new = dict(_auto.VOTE)
    acc = {}
    for name, fr, Xtr, ytr, Xte, yte in cells(n_reps):
        lab = ytr >= 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ls = LabelSpreading(kernel="knn", n_neighbors=7).fit(Xtr, ytr).predict(Xte)
            nn = KNeighborsClassifier(1).fit(Xtr[lab], ytr[lab]).predict(Xte)
            row = {"ls": np.mean(ls == yte), "1nn": np.mean(nn == yte)}
            for cls in (SSSOM, BatchSSSOM):
                m = cls(random_state=0).fit(Xtr, ytr)
                for tag, vote in (("old", OLD), ("new", new)):
                    _auto.VOTE = vote
                    row[f"{cls.__name__} {tag}"] = np.mean(m.predict(Xte) == yte)
                _auto.VOTE = new
        for k, v in row.items():
            acc.setdefault((k, fr), {}).setdefault(name, []).append(v)
    mean = {k: np.mean([np.mean(v) for v in d.values()]) for k, d in acc.items()}
    cols = ("SSSOM old", "SSSOM new", "BatchSSSOM old", "BatchSSSOM new")
    print("| labels | " + " | ".join(cols) + " | LS | 1-NN | max(1-NN, LS) |")
    print("|---" * (len(cols) + 4) + "|")
    for fr in FR:
        bar = max(mean[("ls", fr)], mean[("1nn", fr)])
        vals = " | ".join(f"{mean[(c, fr)]:.3f}" for c in cols)
        print(
            f"| {int(fr * 100)} % | {vals} | {mean[('ls', fr)]:.3f} | {mean[('1nn', fr)]:.3f}"
            f" | {bar:.3f} |"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]))
