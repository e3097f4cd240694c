"""The label-free default: merge the map's nodes into clusters (issue 15 point 4).

A relevance map grows a node wherever a sample is not activated above ``at``, so with the
library defaults it ends with 5-20 nodes on data of 2-5 classes, and each node taken as a
cluster pays in CE and NMI.  When a map is fitted with no label and its hyper-parameters keep
their defaults (:func:`merge_applies`), fit also merges the nodes, as Vesanto & Alhoniemi
(2000) cluster a SOM's prototypes:

1. each node's weight is the number of training samples it wins;
2. for every ``k`` in ``2 .. min(MAX_CLUSTERS, nodes that won a sample - 1)``, weighted
   k-means over the prototypes of the nodes that won samples (``N_INIT`` starts, seeded);
3. the silhouette of each merge on the training samples (each with its winner's cluster; a
   seeded subset of at most ``SILHOUETTE_ROWS`` rows);
4. the kept ``k`` is the largest whose silhouette is within ``TOLERANCE`` (relative) of the
   best one.  Nodes that won no sample join the cluster of their nearest prototype.

The map itself is chosen the same way: with the default ``at`` (0.928) a map of high-dimensional
data may keep one or two nodes (digits: 1-2), so fit also trains the map at ``at`` = 0.95 and
0.97 (:data:`AT_CANDIDATES`; the other parameters as given) and keeps the map whose merge has
the best silhouette (``cluster_at_``; its prototypes replace the first map's).

``node_clusters_[j]`` is then node ``j``'s cluster and ``predict_cluster`` (and ``predict``,
``labels_``) gives each sample its winner's cluster, −1 for noise as before
(``filter_noise``, activation below the estimator's ``at``).  ``cluster_scores_`` holds the
silhouette of every ``k`` tried on the kept map.  A map with fewer than three nodes that won
samples keeps one cluster per node.

How the rule was chosen (benchmarks/unsup_baselines.py --data design: scikit-learn's wine,
iris, breast_cancer, digits, make_blobs / make_classification variants, never the six UCI
sets; mean test CE over 12 sets x 3 splits x both maps): the largest k within 10 % of the
best silhouette gave .756 against .693 for the best silhouette alone and .715-.745 for 5, 15
and 20 % (one map, training rows); choosing among the maps at ``at`` 0.928 / 0.95 / 0.97 by
silhouette gave .712 against .615 for the default map alone, .69 for 0.95 alone, .695 for
0.97 alone.  One cluster per node: ~.42.  k-means / a Gaussian mixture told the true number of
classes: .80 (experiments/results/unsup_defaults/).

Any explicit Table I setting, ``compat`` or (SS-SOM, Batch SS-SOM) ``decision`` other than
"auto" keeps the paper's rule (each node a cluster), so ``somlab reproduce table2`` is
unchanged.  Cost: two more map fits and ``MAX_CLUSTERS - 1`` small weighted k-means fits and
silhouettes per map, ~0.5 s CPU on the design sets (fit alone: ~0.08 s).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.distances import sq_euclidean_np
from ..core.relevance import activation_matrix

#: Largest number of clusters tried.
MAX_CLUSTERS = 10
#: Relative silhouette tolerance: the largest k within it of the best silhouette is kept.
TOLERANCE = 0.10
#: k-means starts per k.
N_INIT = 10
#: Training rows the silhouette is computed on at most (a seeded random subset beyond).
SILHOUETTE_ROWS = 2000
_CHUNK = 4096


def merge_applies(est) -> bool:
    """True for a map fitted without labels whose Table I hyper-parameters, ``compat`` and
    ``decision`` are at their defaults (as ``decision="auto"`` in :mod:`._auto`)."""
    from ._auto import TABLE1
    from ._params import PARAMETERS

    if getattr(est, "supervised_", True) or est.compat is not None:
        return False
    if getattr(est, "decision", "auto") != "auto":
        return False
    return all(getattr(est, k) == PARAMETERS[k] for k in TABLE1)


def winners(X: torch.Tensor, C, omega, distance: str) -> np.ndarray:
    """Winning node of each row of ``X [n, m]`` (no noise filter), chunked over rows."""
    C = torch.as_tensor(C, device=X.device)
    omega = torch.as_tensor(omega, device=X.device)
    out = [
        activation_matrix(X[s : s + _CHUNK], C, omega, distance).argmax(1)
        for s in range(0, X.shape[0], _CHUNK)
    ]
    return torch.cat(out).cpu().numpy()


def merge_nodes(P, X, win, seed: int = 0):
    """Node clusters ``[K]`` (ids 0..k-1 in order of first node) and ``{k: silhouette}``.

    ``P [K, m]``: prototypes; ``X [n, m]``: training rows (numpy); ``win [n]``: their winners.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    K = P.shape[0]
    counts = np.bincount(win, minlength=K)
    used = np.flatnonzero(counts > 0)
    if used.size < 3:
        return np.arange(K, dtype=np.int64), {}
    rng = np.random.default_rng(seed)
    sub = np.arange(X.shape[0])
    if sub.size > SILHOUETTE_ROWS:
        sub = np.sort(rng.choice(sub, SILHOUETTE_ROWS, replace=False))
    Pu = P[used].astype(np.float64)
    labels, scores = {}, {}
    for k in range(2, min(MAX_CLUSTERS, used.size - 1) + 1):
        km = KMeans(k, n_init=N_INIT, random_state=seed).fit(Pu, sample_weight=counts[used])
        node = np.full(K, -1, dtype=np.int64)
        node[used] = km.labels_
        cl = node[win[sub]]
        if np.unique(cl).size < 2:
            continue
        labels[k] = node
        scores[k] = float(silhouette_score(X[sub], cl))
    if not scores:
        return np.arange(K, dtype=np.int64), {}
    best = max(scores.values())
    k = max(q for q, s in scores.items() if s >= best - TOLERANCE * abs(best))
    node = labels[k]
    free = node < 0
    if free.any():  # nodes that won no training sample: their nearest used prototype's cluster
        node[free] = node[used[sq_euclidean_np(P[free], P[used]).argmin(1)]]
    _, first = np.unique(node, return_index=True)
    order = node[np.sort(first)]  # cluster ids in order of their first node
    relabel = np.empty(order.max() + 1, dtype=np.int64)
    relabel[order] = np.arange(order.size)
    return relabel[node], scores


#: Activation thresholds of the candidate maps (the first: the estimator's own ``at``).
AT_CANDIDATES = (None, 0.95, 0.97)
#: The map attributes taken from the chosen candidate map.
_MAP = (
    "prototypes_",
    "relevances_",
    "distance_averages_",
    "node_class_index_",
    "node_classes_",
    "node_wins_",
    "adjacency_",
    "n_nodes_",
    "history_",
)


def _merged(m, X: torch.Tensor, Xn: np.ndarray, distance: str, seed: int):
    """``(silhouette of the kept merge, node clusters, {k: silhouette})`` of a fitted map."""
    if m.n_nodes_ == 0:
        return -1.0, np.zeros(0, dtype=np.int64), {}
    win = winners(X, m.prototypes_, m.relevances_, distance)
    nc, scores = merge_nodes(m.prototypes_, Xn, win, seed)
    return scores.get(int(np.unique(nc).size), -1.0), nc, scores


def store(est, X: np.ndarray | None, distance: str) -> None:
    """After a fit: when :func:`merge_applies` (``X``: the training rows as the fit saw
    them), fit the other candidate maps (``at`` in :data:`AT_CANDIDATES`, the rest as the
    estimator), merge each map's nodes, keep the map whose merge has the best silhouette
    (ties: the earlier) and set ``node_clusters_``, ``cluster_scores_``, ``cluster_at_``;
    else remove stale ones."""
    import warnings

    from sklearn.base import clone

    for name in ("node_clusters_", "cluster_scores_", "cluster_at_"):
        est.__dict__.pop(name, None)
    if X is None or not merge_applies(est) or est.n_nodes_ == 0:
        return
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return  # a shard's rows would give each rank its own merge: keep one cluster per node
    seed = est.random_state if isinstance(est.random_state, (int, np.integer)) else 0
    Xn = np.asarray(X)
    X = torch.from_numpy(Xn)
    best = (*_merged(est, X, Xn.astype(np.float64), distance, int(seed)), float(est.at), None)
    for at in AT_CANDIDATES[1:]:
        if at == est.at:
            continue
        m = clone(est).set_params(at=at)  # not the defaults: no merge inside
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(Xn)
        got = _merged(m, X, Xn.astype(np.float64), distance, int(seed))
        if got[0] > best[0]:
            best = (*got, float(at), m)
    sil, nc, scores, at, m = best
    if m is not None:
        for name in _MAP:
            if name in m.__dict__:
                setattr(est, name, getattr(m, name))
    est.node_clusters_ = nc
    est.cluster_scores_ = {str(k): v for k, v in scores.items()}
    est.cluster_at_ = at


def apply(est, pred: np.ndarray, node: np.ndarray):
    """``pred, node`` of ``_decide`` with nodes replaced by their merged clusters (only for
    a label-free model that has ``node_clusters_``; −1 stays −1)."""
    nc = est.__dict__.get("node_clusters_")
    if nc is None or est.supervised_:
        return pred, node
    nc = np.asarray(nc)
    merged = np.where(node >= 0, nc[np.maximum(node, 0)], -1)
    return merged.copy(), merged
