"""Working with a fitted map: clustering its prototypes, node members, clusters of samples.

A trained SOM is often a first stage: its prototypes are clustered (Vesanto & Alhoniemi, 2000,
"Clustering of the self-organizing map") and every sample takes the cluster of its
best-matching unit.  :class:`MapAnalysisMixin` adds that to :class:`~somlab.SOM`:

* :meth:`~MapAnalysisMixin.cluster` clusters the prototypes with scikit-learn
  (agglomerative clustering with the grid as connectivity, k-means or HDBSCAN) and picks the
  number of clusters by the silhouette when it is not given;
* :meth:`~MapAnalysisMixin.predict_cluster` gives each sample its node's cluster;
* :meth:`~MapAnalysisMixin.node_members` lists the samples each node wins (MiniSom's
  ``win_map`` / ``labels_map`` without going through :mod:`somlab.compat`).

The functions here use only the estimator's public surface (``weights_``, ``grid_``,
``predict``), so they work for any fitted map with those.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.utils.validation import check_is_fitted

from ..core.grids import Grid

CLUSTER_METHODS = ("agglomerative", "kmeans", "hdbscan")


def grid_connectivity(grid: Grid) -> sparse.csr_matrix:
    """Node adjacency of ``grid`` as a symmetric sparse ``[n_nodes, n_nodes]`` 0/1 matrix.

    Two nodes are connected when they are adjacent as the topographic error counts them
    (:meth:`Grid.adjacency_radius`: the 8-neighbourhood on rectangular maps, the six lattice
    neighbours on hexagonal maps, wrapped on toroidal maps).
    """
    edges = grid.neighbours_within(grid.adjacency_radius()).numpy()
    n = grid.n_nodes
    i, j = edges[:, 0], edges[:, 1]
    data = np.ones(2 * len(i))
    return sparse.csr_matrix((data, (np.r_[i, j], np.r_[j, i])), shape=(n, n))


def _fit_labels(method, P, k, connectivity, linkage, random_state, min_cluster_size):
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans

    if method == "agglomerative":
        model = AgglomerativeClustering(n_clusters=k, connectivity=connectivity, linkage=linkage)
    elif method == "kmeans":
        model = KMeans(n_clusters=k, n_init=10, random_state=random_state)
    else:
        model = HDBSCAN(min_cluster_size=min_cluster_size, copy=True)
    return np.asarray(model.fit_predict(P), dtype=np.int64)


def _silhouette(P, node_labels, X_nodes, random_state) -> float:
    """Silhouette of a node labelling: on the samples (each with its node's label) when
    ``X_nodes = (X, bmu)`` is given, else on the prototypes; NaN when it is undefined."""
    from sklearn.metrics import silhouette_score

    if X_nodes is None:
        data, labels = P, node_labels
    else:
        X, bmu = X_nodes
        data, labels = X, node_labels[bmu]
    keep = labels >= 0  # HDBSCAN noise is left out
    data, labels = data[keep], labels[keep]
    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(labels):
        return float("nan")
    size = 5000 if len(labels) > 5000 else None
    return float(silhouette_score(data, labels, sample_size=size, random_state=random_state))


def cluster_prototypes(
    prototypes,
    grid: Grid,
    n_clusters=None,
    method="agglomerative",
    *,
    max_clusters=10,
    linkage="ward",
    min_cluster_size=None,
    X_nodes=None,
    random_state=0,
):
    """Cluster the prototypes ``[n_nodes, m]`` of a map on ``grid``.

    Returns ``(labels [n_nodes] int64, scores)`` where ``scores`` maps every number of
    clusters tried to its silhouette (empty when ``n_clusters`` was given).  See
    :meth:`MapAnalysisMixin.cluster` for the parameters.
    """
    P = np.asarray(prototypes, dtype=np.float64)
    n = P.shape[0]
    if method not in CLUSTER_METHODS:
        raise ValueError(f"method must be one of {CLUSTER_METHODS}, got {method!r}")
    if method == "hdbscan":
        if n_clusters is not None:
            raise ValueError(
                "HDBSCAN finds the number of clusters itself: leave n_clusters=None, or use "
                "method='agglomerative' or 'kmeans' to ask for a number"
            )
        if min_cluster_size is None:
            min_cluster_size = max(2, n // 20)
        if n < 2:
            return np.zeros(n, dtype=np.int64), {}
        labels = _fit_labels(method, P, None, None, linkage, random_state, int(min_cluster_size))
        return labels, {}
    connectivity = grid_connectivity(grid) if method == "agglomerative" else None
    if n_clusters is not None:
        if (
            not isinstance(n_clusters, Integral)
            or isinstance(n_clusters, bool)
            or not 1 <= n_clusters <= n
        ):
            raise ValueError(
                f"n_clusters must be an integer from 1 to the number of nodes ({n}), "
                f"got {n_clusters!r}"
            )
        if n_clusters == 1:
            return np.zeros(n, dtype=np.int64), {}
        labels = _fit_labels(method, P, int(n_clusters), connectivity, linkage, random_state, None)
        return labels, {}
    if not isinstance(max_clusters, Integral) or isinstance(max_clusters, bool) or max_clusters < 2:
        raise ValueError(f"max_clusters must be an integer >= 2, got {max_clusters!r}")
    top = min(int(max_clusters), n - 1)
    if top < 2:  # a map of 1 or 2 nodes: no choice to make
        return np.zeros(n, dtype=np.int64), {}
    best, best_score, scores = None, -np.inf, {}
    for k in range(2, top + 1):
        labels = _fit_labels(method, P, k, connectivity, linkage, random_state, None)
        s = _silhouette(P, labels, X_nodes, random_state)
        scores[k] = s
        if np.isfinite(s) and s > best_score + 1e-12:  # ties: the fewest clusters
            best, best_score = labels, s
    if best is None:  # no labelling had a defined silhouette (e.g. identical prototypes)
        best = np.zeros(n, dtype=np.int64)
    return best, scores


class MapAnalysisMixin:
    """Clustering and node membership for a fitted map (``weights_``, ``grid_``, ``predict``)."""

    def _restore_state(self, arrays, scalars):
        """As saved: ``cluster_scores_`` keyed by the number of clusters (JSON made them
        strings)."""
        super()._restore_state(arrays, scalars)
        scores = getattr(self, "cluster_scores_", None)
        if isinstance(scores, dict):
            self.cluster_scores_ = {int(k): v for k, v in scores.items()}

    def node_members(self, X) -> list[np.ndarray]:
        """Indices of the samples of ``X`` that each node wins.

        Returns a list of ``n_nodes`` int64 arrays (ascending): ``members[k]`` are the rows of
        ``X`` whose best-matching unit is node ``k`` (row-major, ``r * cols + c``).  MiniSom's
        ``win_map(X)[(r, c)]`` is ``X[members[r * cols + c]]``, and its ``labels_map(X, y)``
        is ``collections.Counter(y[members[k]])``.

        Examples
        --------
        >>> import numpy as np
        >>> from somlab import SOM
        >>> X = np.random.default_rng(0).random((50, 2))
        >>> som = SOM((3, 3), random_state=0).fit(X)
        >>> members = som.node_members(X)
        >>> len(members), sum(len(m) for m in members)
        (9, 50)
        """
        check_is_fitted(self, "weights_")
        bmu = np.asarray(self.predict(X), dtype=np.int64)
        n_nodes = self.grid_.n_nodes
        order = np.argsort(bmu, kind="stable")
        bounds = np.searchsorted(bmu[order], np.arange(n_nodes + 1))
        return [order[bounds[k] : bounds[k + 1]] for k in range(n_nodes)]

    def cluster(
        self,
        n_clusters=None,
        method="agglomerative",
        *,
        X=None,
        max_clusters=10,
        linkage="ward",
        min_cluster_size=None,
        random_state=0,
    ) -> np.ndarray:
        """Cluster the map's prototypes; returns each node's cluster, shape ``(n_nodes,)``.

        Parameters
        ----------
        n_clusters : int or None, default=None
            Number of clusters.  None chooses it: every k from 2 to ``max_clusters`` (at most
            ``n_nodes - 1``) is tried and the one with the highest silhouette
            (:func:`sklearn.metrics.silhouette_score`, Euclidean) is kept; the silhouette is
            computed on the samples of ``X`` (each with its node's cluster, at most 5,000
            sampled) when ``X`` is given, else on the prototypes.  The scores are kept in
            ``cluster_scores_``.  Must be None for "hdbscan".
        method : {"agglomerative", "kmeans", "hdbscan"}, default="agglomerative"
            "agglomerative": :class:`sklearn.cluster.AgglomerativeClustering` with the grid as
            connectivity (a node merges only with adjacent nodes, so every cluster is a
            connected region of the map, as in Vesanto & Alhoniemi); "kmeans":
            :class:`sklearn.cluster.KMeans` (``n_init=10``); "hdbscan":
            :class:`sklearn.cluster.HDBSCAN` on the prototypes, which finds the number of
            clusters itself and labels nodes it sees as noise ``-1``.
        X : array-like of shape (n_samples, n_features), optional
            Data for the silhouette when ``n_clusters`` is chosen (recommended: prototypes of
            empty nodes then count for nothing).
        max_clusters : int, default=10
            Largest number of clusters tried when ``n_clusters`` is None.
        linkage : {"ward", "complete", "average", "single"}, default="ward"
            Linkage of the agglomerative method.
        min_cluster_size : int or None, default=None
            HDBSCAN's smallest cluster, in nodes; None: ``max(2, n_nodes // 20)``.
        random_state : int, default=0
            Seeds k-means and the silhouette's subsample.

        Returns
        -------
        ndarray of shape (n_nodes,), int64
            Cluster of every node (row-major, ``r * cols + c``), also kept in
            ``node_clusters_``; ``.reshape(rows, cols)`` gives it as a map.  Clusters are
            numbered 0, 1, ... (HDBSCAN noise: -1).

        Examples
        --------
        >>> import numpy as np
        >>> from somlab import SOM
        >>> rng = np.random.default_rng(0)
        >>> X = np.r_[rng.normal(0, 0.1, (100, 2)), rng.normal(3, 0.1, (100, 2))]
        >>> som = SOM((6, 6), random_state=0).fit(X)
        >>> nodes = som.cluster(X=X)            # number of clusters by the silhouette
        >>> len(np.unique(som.predict_cluster(X)))
        2
        """
        check_is_fitted(self, "weights_")
        grid = self.grid_
        P = np.asarray(self.weights_, dtype=np.float64).reshape(grid.n_nodes, -1)
        X_nodes = None
        if X is not None and n_clusters is None and method != "hdbscan":
            Xa = np.asarray(self._check_X(X, reset=False), dtype=np.float64)
            X_nodes = (Xa, np.asarray(self.predict(X), dtype=np.int64))
        labels, scores = cluster_prototypes(
            P,
            grid,
            n_clusters,
            method,
            max_clusters=max_clusters,
            linkage=linkage,
            min_cluster_size=min_cluster_size,
            X_nodes=X_nodes,
            random_state=random_state,
        )
        self.node_clusters_ = _renumber(labels)
        self.cluster_scores_ = scores
        return self.node_clusters_.copy()

    def predict_cluster(self, X) -> np.ndarray:
        """Cluster of each sample: the :meth:`cluster` label of its best-matching unit.

        Call :meth:`cluster` first.  Returns an int64 array of shape (n_samples,).
        """
        check_is_fitted(self, "weights_")
        if getattr(self, "node_clusters_", None) is None:
            raise ValueError("call cluster() before predict_cluster(): the nodes have no clusters")
        return np.asarray(self.node_clusters_)[np.asarray(self.predict(X), dtype=np.int64)]


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Clusters renumbered 0, 1, ... in order of their first node (noise, -1, kept), so that
    the numbering does not depend on the clustering library's internal order."""
    out = np.full_like(labels, -1)
    seen: dict[int, int] = {}
    for i, lab in enumerate(labels.tolist()):
        if lab < 0:
            continue
        if lab not in seen:
            seen[lab] = len(seen)
        out[i] = seen[lab]
    return out
