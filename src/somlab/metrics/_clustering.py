"""External clustering metrics: clustering error (CE), accuracy, purity, NMI and ARI (SPEC §8).

All functions take label vectors as lists, numpy arrays or torch tensors (any device), check that
they are 1-D, non-empty and of equal length (else :class:`~somlab._errors.DataError`), and return
plain python floats. Cluster ids equal to ``noise`` (default ``-1``) mark samples that were left
unassigned: they count in the number of samples N but belong to no cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._errors import DataError

__all__ = [
    "accuracy",
    "ari",
    "clustering_error",
    "clustering_report",
    "contingency",
    "nmi",
    "purity",
    "subspace_clustering_error",
]


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _as_labels(x: Any, name: str) -> np.ndarray:
    """Convert ``x`` to a 1-D numpy label array, raising DataError on bad input."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise DataError(f"{name} could not be read as a 1-D label array: {exc}") from exc
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise DataError(f"{name} is empty")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contains NaN or inf labels")
    if arr.dtype.kind == "c":
        raise DataError(f"{name} has complex labels")
    return arr


def _pair(a: Any, b: Any, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a_arr, b_arr = _as_labels(a, name_a), _as_labels(b, name_b)
    if a_arr.shape[0] != b_arr.shape[0]:
        raise DataError(
            f"{name_a} and {name_b} differ in length: {a_arr.shape[0]} != {b_arr.shape[0]}"
        )
    return a_arr, b_arr


def _noise_mask(clusters: np.ndarray, noise: Any) -> np.ndarray:
    """Boolean mask of the samples whose cluster id equals ``noise`` (none if noise is None)."""
    if noise is None:
        return np.zeros(clusters.shape[0], dtype=bool)
    if clusters.dtype.kind in "iufb" and not isinstance(noise, (int, float, np.number)):
        return np.zeros(clusters.shape[0], dtype=bool)
    if clusters.dtype.kind in "USO" and isinstance(noise, (int, float, np.number)):
        # string ids: compare elementwise with python equality (no numpy str/int comparison)
        return np.fromiter((c == noise for c in clusters.tolist()), bool, clusters.shape[0])
    return np.asarray(clusters == noise, dtype=bool).reshape(clusters.shape[0])


# --------------------------------------------------------------------------------------------
# contingency table and the metrics built on it
# --------------------------------------------------------------------------------------------


def contingency(
    y_true: Any, clusters: Any, noise: Any = -1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cluster x class contingency table, noise samples left out.

    ``table[k, c] = |F_k ∩ T_c|``, the number of samples in found cluster ``cluster_ids[k]`` whose
    true class is ``class_ids[c]``. Samples with ``clusters == noise`` are in no row (they still
    count towards the class list, so a class seen only among noise samples gets a zero column).

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True class labels.
    clusters : array-like of shape (n,)
        Found cluster ids; ``noise`` marks unassigned samples (``None``: no noise id).
    noise : scalar or None, default -1

    Returns
    -------
    table : ndarray of int64, shape (n_clusters, n_classes)
    cluster_ids : ndarray, shape (n_clusters,)
        Sorted distinct non-noise cluster ids.
    class_ids : ndarray, shape (n_classes,)
        Sorted distinct class labels.
    """
    y, c = _pair(y_true, clusters, "y_true", "clusters")
    keep = ~_noise_mask(c, noise)
    class_ids, y_idx = np.unique(y, return_inverse=True)
    cluster_ids, c_idx = np.unique(c[keep], return_inverse=True)
    n_k, n_c = cluster_ids.shape[0], class_ids.shape[0]
    flat = c_idx.reshape(-1) * n_c + y_idx.reshape(-1)[keep]
    table = np.bincount(flat, minlength=n_k * n_c).astype(np.int64).reshape(n_k, n_c)
    return table, cluster_ids, class_ids


def _best_matching(table: np.ndarray) -> float:
    """Maximum total weight of a one-to-one row/column matching of ``table`` (Hungarian)."""
    if table.size == 0:
        return 0.0
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum())


def clustering_error(y_true: Any, clusters: Any, noise: Any = -1) -> float:
    """Clustering error CE (OpenSubspace "1.0-ClusErr", Patrikainen & Meila), higher is better.

    Full-space, disjoint form used by the papers (SPEC §8)::

        CE = Dmax / N,   Dmax = max over one-to-one matchings m of  sum_k |F_k ∩ T_m(k)|

    with ``F_k`` the found clusters, ``T_c`` the true classes and N the number of samples. The
    matching is the Hungarian assignment on the cluster x class contingency table, so clusters
    beyond the number of classes (or left unmatched) contribute 0, and noise samples count in N
    but never in Dmax. One cluster holding everything gives the majority-class share.

    Parameters
    ----------
    y_true, clusters : array-like of shape (n,)
    noise : scalar or None, default -1
        Cluster id of unassigned samples.

    Returns
    -------
    float in [0, 1].
    """
    table, _, _ = contingency(y_true, clusters, noise)
    n = len(_as_labels(y_true, "y_true"))
    return _best_matching(table) / n


def purity(y_true: Any, clusters: Any, noise: Any = -1) -> float:
    """Purity = (1/N) sum_k max_c |F_k ∩ T_c|.

    Each found cluster is credited with its majority class (several clusters may share one);
    noise samples count in N but are in no cluster.

    Parameters
    ----------
    y_true, clusters : array-like of shape (n,)
    noise : scalar or None, default -1

    Returns
    -------
    float in [0, 1].
    """
    table, _, _ = contingency(y_true, clusters, noise)
    n = len(_as_labels(y_true, "y_true"))
    if table.shape[0] == 0:
        return 0.0
    return float(table.max(axis=1).sum()) / n


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Accuracy = #(y_pred == y_true) / N; a prediction of -1 ("no class") is always wrong.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)

    Returns
    -------
    float in [0, 1].
    """
    y, p = _pair(y_true, y_pred, "y_true", "y_pred")
    no_class = _noise_mask(p, -1)
    correct = np.asarray(y == p, dtype=bool).reshape(-1) & ~no_class
    return float(correct.sum()) / y.shape[0]


def nmi(y_true: Any, clusters: Any, average: str = "arithmetic") -> float:
    """Normalized mutual information, NMI = I(Y;C) / mean(H(Y), H(C)).

    ``average`` is sklearn's ``average_method``: "arithmetic" (SPEC default, (H(Y)+H(C))/2),
    "geometric" (sqrt(H(Y) H(C)), used by DESOM/DPSOM), "min" or "max". Computed with
    :func:`sklearn.metrics.normalized_mutual_info_score`; a noise id is just one more cluster.

    Returns
    -------
    float in [0, 1].
    """
    if average not in ("arithmetic", "geometric", "min", "max"):
        raise DataError(
            f"unknown NMI average {average!r}; use 'arithmetic', 'geometric', 'min' or 'max'"
        )
    from sklearn.metrics import normalized_mutual_info_score  # lazy: sklearn import is slow

    y, c = _pair(y_true, clusters, "y_true", "clusters")
    return float(normalized_mutual_info_score(y, c, average_method=average))


def ari(y_true: Any, clusters: Any) -> float:
    """Adjusted Rand index (Hubert & Arabie), via :func:`sklearn.metrics.adjusted_rand_score`.

    ARI = (RI - E[RI]) / (max RI - E[RI]); 1 for identical partitions, about 0 for random ones
    (can be negative). A noise id is just one more cluster.

    Returns
    -------
    float in [-0.5, 1].
    """
    from sklearn.metrics import adjusted_rand_score  # lazy: sklearn import is slow

    y, c = _pair(y_true, clusters, "y_true", "clusters")
    return float(adjusted_rand_score(y, c))


def clustering_report(
    y_true: Any, clusters: Any, y_pred: Any = None, noise: Any = -1
) -> dict[str, float | int]:
    """All clustering metrics at once.

    Returns
    -------
    dict
        ``ce``, ``purity`` (noise-aware), ``nmi`` (arithmetic), ``nmi_geometric``, ``ari``,
        ``n_clusters`` (distinct non-noise cluster ids; report it beside CE, since a 1-cluster
        map already scores the majority share) and, when ``y_pred`` is given, ``accuracy``.
    """
    table, cluster_ids, _ = contingency(y_true, clusters, noise)
    n = len(_as_labels(y_true, "y_true"))
    out: dict[str, float | int] = {
        "ce": _best_matching(table) / n,
        "purity": float(table.max(axis=1).sum()) / n if table.shape[0] else 0.0,
        "nmi": nmi(y_true, clusters, "arithmetic"),
        "nmi_geometric": nmi(y_true, clusters, "geometric"),
        "ari": ari(y_true, clusters),
        "n_clusters": int(cluster_ids.shape[0]),
    }
    if y_pred is not None:
        out["accuracy"] = accuracy(y_true, y_pred)
    return out


# --------------------------------------------------------------------------------------------
# general (overlapping, subspace) clustering error
# --------------------------------------------------------------------------------------------

_Cluster = tuple[Iterable[int], Iterable[int]]


def _coverage(
    clusters: Sequence[_Cluster], n_samples: int, n_dims: int, name: str
) -> tuple[np.ndarray, list[tuple[set[int], set[int]]]]:
    """Count array cov[i, d] = #clusters covering (i, d), plus the clusters as python sets."""
    cov = np.zeros((n_samples, n_dims), dtype=np.int64)
    sets: list[tuple[set[int], set[int]]] = []
    for k, item in enumerate(clusters):
        try:
            samples, dims = item
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{name}[{k}] must be a (sample_indices, dim_indices) pair: {exc}"
            ) from exc
        s = {int(i) for i in samples}
        d = {int(j) for j in dims}
        if s and (min(s) < 0 or max(s) >= n_samples):
            raise DataError(f"{name}[{k}] has a sample index outside [0, {n_samples})")
        if d and (min(d) < 0 or max(d) >= n_dims):
            raise DataError(f"{name}[{k}] has a dimension index outside [0, {n_dims})")
        if s and d:
            cov[np.ix_(sorted(s), sorted(d))] += 1
        sets.append((s, d))
    return cov, sets


def subspace_clustering_error(
    found: Sequence[_Cluster], true: Sequence[_Cluster], n_samples: int, n_dims: int
) -> float:
    """General clustering error for overlapping subspace clusters (SPEC §8).

    Each cluster is a pair ``(sample_index_set, dim_index_set)``; it covers the cells (i, d) of
    its samples x dimensions. With cov_F / cov_T the number of found / true clusters covering
    a cell::

        U    = sum_i sum_d max(cov_F(i, d), cov_T(i, d))
        Dmax = max over one-to-one matchings m of  sum_k |F_k ∩ T_m(k)| * |dims_k ∩ dims_m(k)|
        CE   = 1 - (U - Dmax) / U = Dmax / U

    With full-space dims for every cluster, disjoint found clusters and true classes that
    partition the samples, this equals :func:`clustering_error`.

    Parameters
    ----------
    found, true : sequence of (iterable of int, iterable of int)
    n_samples, n_dims : int
        Size of the sample x dimension grid the indices refer to.

    Returns
    -------
    float in [0, 1].
    """
    if int(n_samples) <= 0 or int(n_dims) <= 0:
        raise DataError(f"n_samples and n_dims must be positive, got {n_samples}, {n_dims}")
    cov_f, f_sets = _coverage(found, int(n_samples), int(n_dims), "found")
    cov_t, t_sets = _coverage(true, int(n_samples), int(n_dims), "true")
    union = int(np.maximum(cov_f, cov_t).sum())
    if union == 0:
        raise DataError("found and true clusters cover no (sample, dimension) cell; CE undefined")
    weights = np.zeros((len(f_sets), len(t_sets)), dtype=np.int64)
    for k, (fs, fd) in enumerate(f_sets):
        for c, (ts, td) in enumerate(t_sets):
            weights[k, c] = len(fs & ts) * len(fd & td)
    return _best_matching(weights) / union
