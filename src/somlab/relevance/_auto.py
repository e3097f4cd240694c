"""The relevance maps' default decision: class scores from a fitted map, their vote (the
default), and on request a choice among candidate decision rules by cross-validation on the
labelled training rows only.

A fitted map gives three kinds of class scores for a sample (each row sums to 1):

* ``"map"`` -- the paper's rule (SPEC.md §2 Outputs: the winner's class, else the most
  activated labelled node), blended with the node scores below so that it is a distribution
  whose argmax is the paper's prediction;
* ``"nodes"`` -- node class distributions: the labelled training samples each node won
  (plus its own class), spread to the nodes that won none over the node graph (Zhu's label
  propagation on the map, as Herrmann & Ultsch propose; the graph is the map's K5 edges plus
  each node's nearest prototypes, so every node is reached); a sample takes its winner's
  distribution;
* ``"knn<k>"`` -- the nearest labelled training rows (``k`` of them, distance-weighted vote):
  the labelled rows kept in the model as labelled prototypes, the "fallback to the nearest
  labelled prototype".

:func:`_choose` (used when ``candidates`` names several rules) scores every candidate rule
by stratified k-fold cross-validation on the labelled rows: each fold refits the map on all
rows with the held-out labels hidden (so the held-out rows still shape the map, as unlabelled
rows do in fit) and scores each rule on the held-out labels.  Test data never enter.  With
too few labels for a fold per class, the prior rule is kept.
"""

from __future__ import annotations

import numpy as np

from ..core.distances import serial_blas, sq_euclidean_np

#: Candidate decision rules, in order of preference (ties go to the earlier one).
RULES = ("map", "nodes", "knn1", "knn3", "knn7")
#: Rule kept when the labelled rows are too few to cross-validate.
PRIOR_RULE = "vote"


def knn_scores(Z, yz, Xq, k: int, n_classes: int, chunk: int = 512) -> np.ndarray:
    """Distance-weighted vote of the ``k`` nearest rows of ``Z`` (class indices ``yz``)."""
    n = Xq.shape[0]
    out = np.zeros((n, n_classes))
    if Z.shape[0] == 0:
        out[:] = 1.0 / n_classes
        return out
    k = min(int(k), Z.shape[0])
    for s in range(0, n, chunk):
        D = sq_euclidean_np(Xq[s : s + chunk], Z)
        if k < Z.shape[0]:
            idx = np.argpartition(D, k - 1, axis=1)[:, :k]
        else:
            idx = np.broadcast_to(np.arange(Z.shape[0]), (D.shape[0], Z.shape[0]))
        d = np.take_along_axis(D, idx, 1)
        order = np.argsort(d, 1, kind="stable")
        idx = np.take_along_axis(idx, order, 1)
        d = np.take_along_axis(d, order, 1)
        w = 1.0 / (np.sqrt(d) + 1e-9)
        w[:, 0] *= 1.0 + 1e-6  # exact ties of the vote go to the nearest row
        rows = np.arange(idx.shape[0])[:, None]
        block = np.zeros((idx.shape[0], n_classes))
        np.add.at(block, (np.broadcast_to(rows, idx.shape), yz[idx]), w)
        out[s : s + chunk] = block
    return out / out.sum(1, keepdims=True)


def node_scores(C, node_class, adjacency, win_lab, y_lab, n_classes, n_neighbours: int = 3):
    """Class distribution of each node ``[K, n_classes]`` (rows sum to 1).

    ``win_lab``: the winning node of each labelled training row, ``y_lab`` its class index.
    Nodes with counts keep them (normalised); the others get Zhu's harmonic solution on the
    node graph (the map's edges plus each node's ``n_neighbours`` nearest prototypes), by
    iterated averaging with the labelled nodes clamped.
    """
    K = C.shape[0]
    Y = np.zeros((K, n_classes))
    if K == 0:
        return Y
    np.add.at(Y, (win_lab, y_lab), 1.0)
    own = node_class >= 0
    Y[np.flatnonzero(own), node_class[own]] += 1.0
    known = Y.sum(1) > 0
    if not known.any():
        return np.full((K, n_classes), 1.0 / n_classes)
    Y[known] /= Y[known].sum(1, keepdims=True)
    if known.all():
        return Y
    W = adjacency.astype(np.float64).copy()
    if K > 1:
        D = sq_euclidean_np(C, C)
        np.fill_diagonal(D, np.inf)
        kk = min(n_neighbours, K - 1)
        nb = np.argpartition(D, kk - 1, axis=1)[:, :kk]
        rows = np.repeat(np.arange(K), kk)
        W[rows, nb.ravel()] = 1.0
        W[nb.ravel(), rows] = 1.0
    np.fill_diagonal(W, 0.0)
    F = Y.copy()
    deg = W.sum(1, keepdims=True)
    free = ~known & (deg[:, 0] > 0)
    for _ in range(200):
        G = (W @ F) / np.maximum(deg, 1e-12)
        new = np.where(free[:, None], G, F)
        if np.abs(new - F).max() < 1e-6:
            F = new
            break
        F = new
    s = F.sum(1)
    lost = s <= 0
    if lost.any():  # nodes no labelled node reaches: their nearest labelled prototype
        D = sq_euclidean_np(C[lost], C[known])
        F[lost] = Y[known][D.argmin(1)]
        s = F.sum(1)
    return F / s[:, None]


def map_scores(pred_idx, winner, F, n_classes) -> np.ndarray:
    """The paper's prediction as a distribution: 0.6 on its class plus 0.4 x the winner's node
    distribution (so the argmax is the paper's class); −1 ("no class") gives the node part."""
    n = pred_idx.shape[0]
    P = np.zeros((n, n_classes))
    ok = winner >= 0
    P[ok] = 0.4 * F[winner[ok]]
    has = pred_idx >= 0
    P[np.flatnonzero(has), pred_idx[has]] += 0.6
    empty = P.sum(1) <= 0
    P[empty] = 1.0 / n_classes
    return P / P.sum(1, keepdims=True)


def can_cross_validate(y_lab: np.ndarray, n_folds: int) -> int:
    """Folds usable on the labelled class indices ``y_lab`` (0: too few labels)."""
    if y_lab.size == 0:
        return 0
    counts = np.bincount(y_lab)
    counts = counts[counts > 0]
    if counts.size < 2:
        return 0
    k = min(int(n_folds), int(counts.min()))
    return k if k >= 2 else 0


def stratified_folds(y_lab: np.ndarray, n_folds: int, rng: np.random.Generator):
    """Fold id of each labelled row: each class dealt round-robin after a shuffle."""
    fold = np.empty(y_lab.size, dtype=np.int64)
    for c in np.unique(y_lab):
        idx = np.flatnonzero(y_lab == c)
        idx = idx[rng.permutation(idx.size)]
        fold[idx] = (np.arange(idx.size) + rng.integers(n_folds)) % n_folds
    return fold


# ---------------------------------------------------------------------------- the estimator side
#: Table I hyper-parameters: when all keep their defaults (and ``compat`` is None), the
#: ``decision="auto"`` choice runs; any explicit paper setting gives the paper's rule, so the
#: reproductions (somlab reproduce table2/table3 pass every Table I value) are unchanged.
TABLE1 = ("at", "lp", "beta", "age_wins", "eb", "en", "s", "minwd", "epochs", "epush")
#: Every rule a user may name in ``decision`` ("auto" chooses among ``candidates``).
ALL_RULES = ("vote", *RULES, "spread")
#: The rules a "vote" averages and their weights (class distributions, weights sum to 1):
#: label spreading carries two thirds, the paper's rule and the 3 nearest labelled rows a
#: sixth each, so they decide where spreading is unsure.  Chosen on the design data only
#: (experiments/results/ssl_defaults/design_votes.py, the scikit-learn / synthetic sets of
#: benchmarks/ssl_baselines.py, 6 splits; never the UCI six) as the best worst-case margin
#: over max(1-NN, LabelSpreading) across label fractions for SSSOM and BatchSSSOM both, and
#: best or second on each half of the splits.  The earlier equal-weight vote of map, knn1 and
#: spread let the two one-hot rules overrule spreading whenever they agreed, which cost
#: SSSOM (whose online map rule is weaker) its 25 % cell.
VOTE = {"map": 1 / 6, "knn3": 1 / 6, "spread": 2 / 3}
#: What "auto" runs when ``candidates`` is None: the vote alone (no cross-validation).  On the
#: design data (experiments/choose_defaults.py --rules, scikit-learn sets, never the UCI six)
#: the fixed (then equal-weight) vote beat the cross-validated choice among all rules at every
#: label fraction; the weighted vote scores higher than that vote on the same data.
DEFAULT_CANDIDATES = ("vote",)
#: Labelled rows per class needed before cross-validation is trusted (fewer: PRIOR_RULE).
MIN_PER_CLASS = 3
#: Held-out rows scored per fold at most (a random subset beyond; bounds the cost on big data).
MAX_SCORED = 500


def auto_applies(est) -> bool:
    from ._params import PARAMETERS

    if est.decision != "auto" or est.compat is not None:
        return False
    return all(getattr(est, k) == PARAMETERS[k] for k in TABLE1)


def spread_graph(X, k: int = 7):
    """The symmetric normalised kNN graph ``D^-1/2 W D^-1/2`` of the training rows (W: each
    row's ``k`` nearest rows, itself included, symmetrised; zero diagonal), built once per fit
    and shared by the cross-validation folds (it does not depend on the labels)."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    n = X.shape[0]
    k = max(1, min(int(k), n))
    with serial_blas(float(n) * n * X.shape[1], user_api=None):
        nb = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(X, k)[1]
    W = sp.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), nb.ravel())), shape=(n, n))
    W = ((W + W.T) > 0).astype(np.float64).tolil()
    W.setdiag(0.0)
    W = W.tocsr()
    d = np.asarray(W.sum(1)).ravel()
    inv = np.where(d > 0, 1.0 / np.sqrt(np.maximum(d, 1e-300)), 0.0)
    return sp.diags(inv) @ W @ sp.diags(inv)


def _spread(S, y_idx, n_classes, alpha: float = 0.2, max_iter: int = 30, tol: float = 1e-3):
    """Label spreading (Zhou et al. 2004; scikit-learn's LabelSpreading with its kNN kernel
    and alpha = 0.2): ``F <- alpha S F + (1 - alpha) Y`` on the graph ``S``; the training
    rows' label distributions ``[n, n_classes]``."""
    n = S.shape[0]
    Y = np.zeros((n, n_classes))
    lab = y_idx >= 0
    Y[np.flatnonzero(lab), y_idx[lab]] = 1.0
    F = Y.copy()
    for _ in range(max_iter):
        new = alpha * (S @ F) + (1.0 - alpha) * Y
        done = np.abs(new - F).sum() < tol
        F = new
        if done:
            break
    s = F.sum(1, keepdims=True)
    return np.where(s > 0, F / np.where(s > 0, s, 1), 1.0 / n_classes)


def _spread_scores(Xs, Ds, Xq, k: int = 7, chunk: int = 512):
    """LabelSpreading's own predict_proba for new rows: the mean distribution of the ``k``
    nearest training rows."""
    k = min(k, Xs.shape[0])
    out = np.empty((Xq.shape[0], Ds.shape[1]))
    for s in range(0, Xq.shape[0], chunk):
        D = sq_euclidean_np(Xq[s : s + chunk], Xs)
        idx = np.argpartition(D, k - 1, axis=1)[:, :k] if k < Xs.shape[0] else None
        P = Ds[idx].sum(1) if idx is not None else np.repeat(Ds.sum(0, keepdims=True), len(D), 0)
        out[s : s + chunk] = P
    s = out.sum(1, keepdims=True)
    return np.where(s > 0, out / np.where(s > 0, s, 1), 1.0 / Ds.shape[1])


def fitted_node_scores(est, Z, yz) -> np.ndarray:
    """:func:`node_scores` of a fitted map from its labelled training rows ``Z`` (validated,
    float32) and their class indices ``yz``."""
    C = len(est.classes_)
    if not (Z.shape[0] and est.n_nodes_):
        return np.full((est.n_nodes_, C), 1.0 / C)
    win = est._activations_checked(Z).argmax(1)
    K = est.n_nodes_
    with serial_blas(float(K) * K * C * 200):  # the propagation's products W @ F
        return node_scores(est.prototypes_, est.node_class_index_, est.adjacency_, win, yz, C)


#: Rules whose predictions read the node distributions (``node_scores_``); the others compute
#: them only when ``predict_proba`` asks.
NODE_RULES = ("map", "nodes", "vote")


class _Fitted:
    """What a rule needs from one fitted map (a view on the estimator's attributes)."""

    def __init__(self, est, X, y_idx, with_spread: bool, graph=None):
        self.est = est
        lab = y_idx >= 0
        self.Z = X[lab]
        self.yz = y_idx[lab]
        self.C = len(est.classes_)
        self.F = fitted_node_scores(est, self.Z, self.yz)
        self.Xs = X if with_spread else None
        if with_spread and graph is None:
            graph = spread_graph(X)
        self.Ds = _spread(graph, y_idx, self.C) if with_spread else None

    def scores(self, rule, Xq):
        return rule_scores(self.est, rule, Xq, self.F, self.Z, self.yz, self.Xs, self.Ds, self.C)


def rule_scores(est, rule, Xq, F, Z, yz, Xs, Ds, C):
    """Class scores ``[n, C]`` of rule ``rule`` for rows ``Xq`` (already validated)."""
    if rule == "vote":
        P = sum(w * rule_scores(est, r, Xq, F, Z, yz, Xs, Ds, C) for r, w in VOTE.items())
        return P / P.sum(1, keepdims=True)
    if rule.startswith("knn"):
        return knn_scores(Z, yz, Xq, int(rule[3:]), C)
    if rule == "spread":
        return _spread_scores(Xs, Ds, Xq)
    if est.n_nodes_ == 0:
        return np.full((Xq.shape[0], C), 1.0 / C)
    win = est._activations_checked(Xq).argmax(1)
    if rule == "nodes":
        return F[win]
    idx = est._decide_checked(Xq, decode=False)[0]
    return map_scores(idx, win, F, C)


def fit_with_decision(est, X, y, batch_size: int, fit_map):
    """Fit the map (as ``fit_map(est, X, y)``), then the decision rule (:func:`decide`) on the
    fit's checked arrays; ``fit_map`` refits copies for the cross-validation."""
    fit_map(est, X, y)
    Xn, y_idx = est.__dict__.pop("_checked", (None, None))  # left by _fit.fit_relevance_map
    return decide(est, X, y, fit_map, Xn, y_idx)


def decide(est, X, y, fit_map, Xn=None, y_idx=None):
    """The decision rule of a map already fitted on ``X, y``: stored as ``decision_`` with
    what it needs (labelled rows, node distributions, spread distributions); ``fit_map``
    refits copies for the cross-validation of ``candidates``.  ``Xn, y_idx``: the fit's
    checked arrays (``_prepare_fit``), else ``X`` and ``y`` are checked again."""
    est.cv_scores_ = {}
    est.__dict__.pop("_checked", None)
    graph = est.__dict__.pop("_graph", None)
    for name in ("node_scores_", "labelled_X_", "labelled_y_", "spread_X_", "spread_scores_"):
        est.__dict__.pop(name, None)  # a refit: what the new rule needs is set anew below
    if not est.supervised_:
        est.decision_ = "map"
        return est
    if Xn is None:
        Xn = est._check_X(X, reset=False).astype(np.float32)
        y1, lab = est._split_labels(y, Xn.shape[0])
        y_idx = np.full(Xn.shape[0], -1, dtype=np.int64)
        y_idx[lab] = np.searchsorted(est.classes_, y1[lab])
    if est.decision in ALL_RULES:
        rule = est.decision
    elif auto_applies(est):
        rule = _choose(est, Xn, y_idx, fit_map)
        graph = est.__dict__.pop("_graph", None)
    else:
        rule = "map"  # the paper's rule (explicit settings): its prediction needs nothing more
    est.decision_ = rule
    lab = y_idx >= 0
    est.labelled_X_ = Xn[lab]
    est.labelled_y_ = y_idx[lab]
    if rule in ("vote", "nodes"):  # their predict reads the node distributions
        est.node_scores_ = fitted_node_scores(est, est.labelled_X_, est.labelled_y_)
    if rule in ("spread", "vote"):
        if graph is None:
            graph = spread_graph(Xn)
        est.spread_X_ = np.array(Xn)  # a copy: Xn may be a view of the caller's X
        est.spread_scores_ = _spread(graph, y_idx, len(est.classes_))
    return est


def _choose(est, Xn, y_idx, fit_map) -> str:
    """The rule with the best mean accuracy over stratified folds of the labelled rows."""
    import warnings

    from sklearn.base import clone

    cands = tuple(est.candidates) if est.candidates is not None else DEFAULT_CANDIDATES
    lab = np.flatnonzero(y_idx >= 0)
    yl = y_idx[lab]
    counts = np.bincount(yl)
    counts = counts[counts > 0]
    k = can_cross_validate(yl, int(est.cv)) if counts.min() >= MIN_PER_CLASS else 0
    if k == 0 or len(cands) == 1:
        return PRIOR_RULE if PRIOR_RULE in cands else cands[0]
    seed = est.random_state if isinstance(est.random_state, (int, np.integer)) else 0
    rng = np.random.default_rng(int(seed))
    fold = stratified_folds(yl, k, rng)
    acc = {r: [] for r in cands}
    graph = spread_graph(Xn) if {"spread", "vote"} & set(cands) else None
    est._graph = graph
    for f in range(k):
        y2 = y_idx.copy()
        held = lab[fold == f]
        y2[held] = -1
        # the fold map is fitted on class indices (-1 = unlabelled, held-out rows included)
        sub = clone(est).set_params(decision="map", unlabelled_value=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_map(sub, Xn, y2)
        if len(sub.classes_) != len(est.classes_):
            continue  # a class lost all its labels in this fold: no fair comparison
        fitted = _Fitted(sub, Xn, y2, graph is not None, graph=graph)
        if held.size > MAX_SCORED:  # the accuracy of a random subset: cost bounded in n
            held = np.sort(rng.choice(held, MAX_SCORED, replace=False))
        truth = y_idx[held]
        for r in cands:
            acc[r].append(float(np.mean(fitted.scores(r, Xn[held]).argmax(1) == truth)))
    mean = {r: float(np.mean(v)) for r, v in acc.items() if v}
    est.cv_scores_ = mean
    if not mean:
        return PRIOR_RULE if PRIOR_RULE in cands else cands[0]
    return max(cands, key=lambda r: (mean.get(r, -1.0), -cands.index(r)))


def _constraints(base):
    from numbers import Integral

    from sklearn.utils._param_validation import Interval, StrOptions

    return {
        **base,
        "decision": [StrOptions({"auto", *ALL_RULES})],
        "candidates": ["array-like", None],
        "cv": [Interval(Integral, 2, None, closed="left")],
    }


#: The parameters SS-SOM and Batch SS-SOM add to PARAMETERS.
DECISION_DEFAULTS = {"decision": "auto", "candidates": None, "cv": 3}


class DecisionMixin:
    """predict / predict_proba through the fitted ``decision_`` rule."""

    def _rule(self) -> str:
        return getattr(self, "decision_", "map")  # maps built outside fit: the paper's rule

    def predict_proba(self, X):
        """Class probabilities ``(n_samples, n_classes)``, columns in ``classes_`` order, rows
        summing to 1, argmax = :meth:`predict`.  From the fitted decision rule: node class
        distributions (labelled hits spread over the node graph) for ``"map"`` and
        ``"nodes"``, the vote of the nearest labelled rows for ``"knn<k>"``, the spread
        distributions of the nearest training rows for ``"spread"``."""
        from sklearn.utils.validation import check_is_fitted

        from .._errors import DataError

        check_is_fitted(self, "prototypes_")
        if not self.supervised_:
            raise DataError(
                "predict_proba needs a model fitted with labels; this one saw none "
                "(predict gives cluster ids)"
            )
        Xq = self._check_X(X, reset=False).astype(np.float32)
        C = len(self.classes_)
        F = getattr(self, "node_scores_", None)
        Z = getattr(self, "labelled_X_", None)
        if F is None and Z is not None and self._rule() in NODE_RULES:  # "map": fit left it
            F = fitted_node_scores(self, Z, self.labelled_y_)
        if F is None:  # fitted outside fit (ensemble, distributed): node own classes only
            F = node_scores(
                self.prototypes_,
                self.node_class_index_,
                self.adjacency_,
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                C,
            )
        Xs = getattr(self, "spread_X_", None)
        n_rows = max(len(Z) if Z is not None else 0, len(Xs) if Xs is not None else 0)
        with serial_blas(float(Xq.shape[0]) * max(n_rows, self.n_nodes_) * Xq.shape[1]):
            return rule_scores(
                self,
                self._rule(),
                Xq,
                F,
                Z,
                getattr(self, "labelled_y_", None),
                Xs,
                getattr(self, "spread_scores_", None),
                C,
            )

    def predict(self, X):
        """Class of each sample by the fitted decision rule ``decision_`` (``"map"``: the
        paper's, −1 = no class); cluster ids for a model that saw no label."""
        if self._rule() == "map" or not getattr(self, "supervised_", True):
            return self._decide(X)[0]
        return self.classes_[self.predict_proba(X).argmax(1)]
