"""Design run for the relevance maps' default vote (issue 15, SSSOM's 25 % cell): per
untuned cell (benchmarks/ssl_baselines.py's scikit-learn / synthetic sets, never the UCI six),
fit SSSOM() and BatchSSSOM() once each and store every rule's class scores on the test rows
(plus LabelSpreading's and 1-NN's accuracy), so that vote variants can be compared offline:

    python experiments/results/ssl_defaults/design_votes.py OUT.pkl N_REPS
"""

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.ssl_baselines import untuned_cells  # noqa: E402

RULES = ("map", "nodes", "knn1", "knn3", "knn7", "spread")


def main(out, n_reps):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading

    from somlab.relevance import SSSOM, BatchSSSOM
    from somlab.relevance._auto import _Fitted

    cells = []
    for d, rep, fr, Xtr, ytr, Xte, yte in untuned_cells(None, n_reps):
        lab = ytr >= 0
        rec = {"data": d, "rep": rep, "fr": fr}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ls = LabelSpreading(kernel="knn", n_neighbors=7).fit(Xtr, ytr).predict(Xte)
            nn = KNeighborsClassifier(1).fit(Xtr[lab], ytr[lab]).predict(Xte)
            rec["ls"] = float(np.mean(ls == yte))
            rec["1nn"] = float(np.mean(nn == yte))
            for name, cls in (("SSSOM", SSSOM), ("BatchSSSOM", BatchSSSOM)):
                m = cls(random_state=0).fit(Xtr, ytr)
                Xn = m._check_X(Xtr, reset=False).astype(np.float32)
                y_idx = np.full(len(ytr), -1)
                y_idx[lab] = np.searchsorted(m.classes_, ytr[lab])
                f = _Fitted(m, Xn, y_idx, True)
                Xq = m._check_X(Xte, reset=False).astype(np.float32)
                rec[name] = {r: f.scores(r, Xq) for r in RULES}
                rec[name]["n_nodes"] = m.n_nodes_
            rec["y"] = np.searchsorted(m.classes_, yte)
            rec["seen"] = np.isin(yte, m.classes_)
        cells.append(rec)
        print(d, rep, fr, rec["ls"], rec["1nn"], flush=True)
    with open(out, "wb") as fh:
        pickle.dump(cells, fh)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
