"""The label-free default: merge the map's nodes into clusters (issue 15 point 4).

A relevance map grows a node wherever a sample is not activated above ``at``, so with the
library defaults it ends with 5-20 nodes on data of 2-5 classes, and each node taken as a
cluster pays in CE and NMI.  When a map is fitted with no label and its hyper-parameters keep
their defaults (:func:`merge_applies`), fit also clusters the rows from the map's prototypes,
as Vesanto & Alhoniemi (2000) cluster a SOM's prototypes, then refines on the rows:

1. each node's weight is the number of training rows it wins;
2. for every ``k`` in ``2 .. min(MAX_CLUSTERS, nodes that won a row - 1)``, weighted k-means
   over the prototypes of the nodes that won rows (``N_INIT`` seeded starts); each row takes
   its winner's cluster, and Lloyd's iterations on the rows start from those clusters' row
   means (:func:`merge_nodes`);
3. the kept ``k`` is the gap statistic's (Tibshirani, Walther & Hastie 2001: the smallest k
   with gap(k) >= gap(k+1) - s_(k+1), against ``GAP_REFS`` uniform samples of the rows'
   bounding box), or 2 when the 2-cluster partition's silhouette is at least ``TWO_GROUPS``
   times that of the gap's k (:func:`choose_k`).

The map itself is chosen the same way: with the default ``at`` (0.928) a map of
high-dimensional data may keep one or two nodes (digits: 1-2), so fit also trains the map at
``at`` = 0.95 and 0.97 (:data:`AT_CANDIDATES`; the other parameters as given) and keeps the
map whose kept partition has the best silhouette on the training rows (``cluster_at_``; its
prototypes replace the first map's).

``cluster_centers_ [k, m]`` are the clusters' row means; ``predict_cluster`` (and
``predict``, ``labels_``) gives each row its nearest centre (squared Euclidean), −1 for noise
as before (``filter_noise``: the winner's activation below the estimator's ``at``).
``node_clusters_[j]`` is the cluster most of node ``j``'s training rows fall in (a node that
wins none: its nearest winning prototype's), for display; ``cluster_scores_`` the gap of
every ``k`` tried on the kept map.  When no map has three nodes that won rows, each node stays
a cluster (``node_clusters_`` the identity, no ``cluster_centers_``).

How the rule was chosen (experiments/results/unsup_defaults/: criteria.py and
benchmarks/unsup_baselines.py --data design: scikit-learn's wine, iris, breast_cancer,
digits, make_blobs / make_classification variants, never the six UCI sets; mean test CE /
NMI over 12 sets x 3 splits x both maps): predicting by node (each node its merged cluster)
caps CE at .755 even with k told (the nodes are too coarse), the row centres at .793; over
those partitions the gap statistic gave .758 / .611, with the two-group check .775 / .622,
the silhouette (largest k within 0-20 % of the best) .736-.749, BIC of a diagonal Gaussian
mixture on the rows .660, agreement of the three maps .59-.64; k up to 20 or sqrt(n) and five
maps (``at`` to 0.99) no better.  The previous rule (node clusters, k by silhouette): .701 /
.540.  With the estimators' full fits: LARFDSSOM() .741 / .598 (its noise filter costs .04;
``filter_noise=False`` .777 / .624), BatchSSSOM() .774 / .620; k-means / a Gaussian
mixture told the number of classes .800 / .615, .798 / .625; with the map's k .773-.786 /
.619-.626.

Any explicit Table I setting, ``compat`` or (SS-SOM, Batch SS-SOM) ``decision`` other than
"auto" keeps the paper's rule (each node a cluster), so ``somlab reproduce table2`` is
unchanged.  Cost: two more map fits, per map and k one small weighted k-means (``N_INIT``
starts) and one row k-means from a given start, ``GAP_REFS x (MAX_CLUSTERS - 1)`` k-means on
reference rows and a few silhouettes: ~0.2-0.27 s CPU median on the design and UCI sets
(the map fit alone: ~0.002 s).
"""

from __future__ import annotations

import numpy as np
import torch

from ..core.distances import sq_euclidean_np
from ..core.relevance import activation_matrix

#: Largest number of clusters tried.
MAX_CLUSTERS = 10
#: k-means starts per k over the prototypes.
N_INIT = 10
#: Uniform reference sets of the gap statistic.
GAP_REFS = 5
#: k = 2 replaces the gap's k when its silhouette is at least this factor above that k's.
TWO_GROUPS = 1.5
#: Training rows the silhouette and the gap references use at most (a seeded subset beyond).
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


def merge_nodes(P, X, win, seed: int = 0, kmax: int = MAX_CLUSTERS):
    """The map's candidate partitions of the rows, ``{k: (centres [k, m], labels [n],
    inertia)}``.

    ``P [K, m]``: prototypes; ``X [n, m]``: training rows (numpy float64); ``win [n]``: their
    winners.  For each ``k`` in ``2 .. min(kmax, nodes that won a sample - 1)``: weighted
    k-means over the prototypes of the nodes that won samples (weights: their wins,
    ``N_INIT`` seeded starts), then Lloyd's iterations on the rows from the merged clusters'
    row means.  Empty when fewer than three nodes won samples.
    """
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    K = P.shape[0]
    counts = np.bincount(win, minlength=K)
    used = np.flatnonzero(counts > 0)
    out = {}
    if used.size < 3:
        return out
    Pu = P[used].astype(np.float64)
    for k in range(2, min(kmax, used.size - 1) + 1):
        with warnings.catch_warnings():  # fewer distinct prototypes than k: no partition
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(k, n_init=N_INIT, random_state=seed).fit(Pu, sample_weight=counts[used])
        node = np.full(K, -1, dtype=np.int64)
        node[used] = km.labels_
        lab = node[win]
        ids = np.unique(lab)
        if ids.size != k:
            continue
        centres = np.stack([X[lab == c].mean(0) for c in ids])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            rows = KMeans(k, init=centres, n_init=1).fit(X)
        if np.unique(rows.labels_).size == k:
            out[k] = (rows.cluster_centers_, rows.labels_.astype(np.int64), float(rows.inertia_))
    return out


def gap_reference(X, seed: int = 0, kmax: int = MAX_CLUSTERS) -> dict:
    """``{k: (E log W_k, s_k)}`` of the gap statistic (Tibshirani, Walther & Hastie 2001):
    k-means (one start) on ``GAP_REFS`` uniform samples of the rows' bounding box, with
    ``s_k = sd(log W_k) sqrt(1 + 1/B)``; W_k of a subset scaled to ``len(X)`` rows."""
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n = X.shape[0]
    rng = np.random.default_rng(seed)
    r = min(n, SILHOUETTE_ROWS)
    lo, hi = X.min(0), X.max(0)
    if not (hi > lo).any():  # every column constant: one point, nothing to compare with
        return {}
    logw = {k: [] for k in range(2, kmax + 1)}
    for b in range(GAP_REFS):
        R = rng.uniform(lo, hi, size=(r, X.shape[1]))
        for k in logw:
            if k >= r:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                inertia = KMeans(k, n_init=1, random_state=b).fit(R).inertia_
            logw[k].append(np.log(max(inertia, 1e-300) * n / r))
    return {
        k: (float(np.mean(v)), float(np.std(v) * np.sqrt(1 + 1 / GAP_REFS)))
        for k, v in logw.items()
        if v
    }


def gap_k(parts: dict, ref: dict):
    """``(k, {k: gap})``: the smallest k with ``gap(k) >= gap(k+1) - s_{k+1}`` (the largest
    k tried when none), ``gap(k) = E log W_k - log W_k`` with W_k the partition's inertia."""
    gaps = {k: ref[k][0] - np.log(max(p[2], 1e-300)) for k, p in sorted(parts.items()) if k in ref}
    if not gaps:
        return None, {}
    for k in gaps:
        if k + 1 in gaps and gaps[k] >= gaps[k + 1] - ref[k + 1][1]:
            return k, gaps
    return max(gaps), gaps


def choose_k(parts: dict, ref: dict, X, seed: int = 0):
    """``(k, {k: gap}, silhouette of k)``: the gap statistic's k (:func:`gap_k`), or 2 when
    the silhouette of the 2-cluster partition is at least ``TWO_GROUPS`` times that of the
    gap's k (the uniform reference overestimates k for two elongated groups)."""
    k, gaps = gap_k(parts, ref)
    if k is None:
        return None, {}, -1.0
    sil = _silhouette(X, parts[k][1], seed)
    if k != 2 and 2 in parts:
        s2 = _silhouette(X, parts[2][1], seed)
        if s2 > 0 and s2 >= TWO_GROUPS * sil:
            return 2, gaps, s2
    return k, gaps, sil


def node_majority(P, win, labels, n_clusters: int) -> np.ndarray:
    """Each node's cluster ``[K]``: the one most of the rows it wins fall in; a node that wins
    no row takes its nearest winning prototype's."""
    K = P.shape[0]
    tab = np.zeros((K, n_clusters))
    np.add.at(tab, (win, labels), 1)
    node = tab.argmax(1)
    used = tab.sum(1) > 0
    if not used.all():
        ui = np.flatnonzero(used)
        node[~used] = node[ui[sq_euclidean_np(P[~used], P[ui]).argmin(1)]]
    return node.astype(np.int64)


def _silhouette(X, labels, seed: int) -> float:
    from sklearn.metrics import silhouette_score

    sub = np.arange(X.shape[0])
    if sub.size > SILHOUETTE_ROWS:
        sub = np.sort(np.random.default_rng(seed).choice(sub, SILHOUETTE_ROWS, replace=False))
    if np.unique(labels[sub]).size < 2:
        return -1.0
    return float(silhouette_score(X[sub], labels[sub]))


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


def _candidate(m, X: torch.Tensor, Xd: np.ndarray, distance: str, seed: int, ref):
    """``(silhouette, k, centres, labels, {k: gap}, winners)`` of a fitted map's chosen
    partition, or None when the map has fewer than three nodes that won rows.  ``ref()``
    gives the gap statistic's reference (computed once, when a map first has partitions)."""
    if m.n_nodes_ == 0:
        return None
    win = winners(X, m.prototypes_, m.relevances_, distance)
    parts = merge_nodes(m.prototypes_, Xd, win, seed)
    if not parts:
        return None
    k, gaps, sil = choose_k(parts, ref(), Xd, seed)
    if k is None:
        return None
    centres, labels, _ = parts[k]
    return sil, k, centres, labels, gaps, win


def store(est, X: np.ndarray | None, distance: str) -> None:
    """After a fit: when :func:`merge_applies` (``X``: the training rows as the fit saw
    them), fit the other candidate maps (``at`` in :data:`AT_CANDIDATES`, the rest as the
    estimator), choose each map's partition (:func:`merge_nodes`, :func:`choose_k`), keep the
    map whose partition has the best silhouette (ties: the earlier) and set
    ``cluster_centers_``, ``node_clusters_``, ``cluster_scores_``, ``cluster_at_``; else
    remove stale ones."""
    import warnings

    from sklearn.base import clone

    for name in ("cluster_centers_", "node_clusters_", "cluster_scores_", "cluster_at_"):
        est.__dict__.pop(name, None)
    if X is None or not merge_applies(est) or est.n_nodes_ == 0:
        return
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return  # a shard's rows would give each rank its own merge: keep one cluster per node
    seed = int(est.random_state) if isinstance(est.random_state, (int, np.integer)) else 0
    Xn = np.asarray(X)
    X = torch.from_numpy(Xn)
    Xd = Xn.astype(np.float64)
    cache = {}

    def ref():
        if "ref" not in cache:
            cache["ref"] = gap_reference(Xd, seed)
        return cache["ref"]

    best, best_at, best_m = _candidate(est, X, Xd, distance, seed, ref), float(est.at), None
    for at in AT_CANDIDATES[1:]:
        if at == est.at:
            continue
        m = clone(est).set_params(at=at)  # not the defaults: no merge inside
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(Xn)
        got = _candidate(m, X, Xd, distance, seed, ref)
        if got is not None and (best is None or got[0] > best[0]):
            best, best_at, best_m = got, float(at), m
    if best is None:  # no map with three nodes that won rows: one cluster per node
        est.node_clusters_ = np.arange(est.n_nodes_, dtype=np.int64)
        est.cluster_scores_ = {}
        est.cluster_at_ = float(est.at)
        return
    _, k, centres, labels, gaps, win = best
    if best_m is not None:
        for name in _MAP:
            if name in best_m.__dict__:
                setattr(est, name, getattr(best_m, name))
    nc = node_majority(est.prototypes_, win, labels, k)
    # cluster ids in order of their first node, then the clusters no node is the majority of
    order = list(dict.fromkeys(nc.tolist())) + [c for c in range(k) if c not in set(nc.tolist())]
    relabel = np.empty(k, dtype=np.int64)
    relabel[order] = np.arange(k)
    est.cluster_centers_ = centres[order].astype(np.float32)
    # each node's majority on the new ids (ties: the lower new id)
    est.node_clusters_ = node_majority(est.prototypes_, win, relabel[labels], k)
    est.cluster_scores_ = {str(q): float(v) for q, v in gaps.items()}
    est.cluster_at_ = best_at


def nearest_centre(X, centres) -> np.ndarray:
    """Index of each row's nearest centre (squared Euclidean), chunked over rows."""
    X = np.asarray(X)
    out = [
        sq_euclidean_np(X[s : s + _CHUNK], centres).argmin(1) for s in range(0, X.shape[0], _CHUNK)
    ]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def apply(est, pred: np.ndarray, node: np.ndarray, X: np.ndarray):
    """``pred, node`` of ``_decide`` for rows ``X`` with every non-noise row given its
    nearest cluster centre (only for a label-free model that has ``cluster_centers_``;
    −1 stays −1)."""
    if est.supervised_:
        return pred, node
    centres = est.__dict__.get("cluster_centers_")
    if centres is None:
        nc = est.__dict__.get("node_clusters_")
        if nc is None:
            return pred, node
        # a model saved before clusters had centres: its nodes' merged clusters
        merged = np.where(node >= 0, nc[np.maximum(node, 0)], -1)
        return merged.copy(), merged
    merged = np.where(node >= 0, nearest_centre(X, centres), -1)
    return merged.copy(), merged
