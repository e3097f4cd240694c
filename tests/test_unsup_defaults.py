"""The label-free default (relevance/_clusters.py): a map fitted with no labels and default
Table I parameters merges its nodes into clusters; explicit settings keep the paper's rule."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.preprocessing import MinMaxScaler

import somlab
from somlab.metrics import clustering_error
from somlab.relevance import LARFDSSOM, BatchSSSOM, _clusters


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(300, 4, centers=3, cluster_std=0.6, random_state=3)
    return MinMaxScaler().fit_transform(X).astype(np.float32), y


@pytest.mark.parametrize("cls", [LARFDSSOM, BatchSSSOM])
def test_default_merges_nodes(cls, blobs):
    X, y = blobs
    m = cls(random_state=0).fit(X)
    C = m.cluster_centers_
    k = C.shape[0]
    assert C.shape == (k, X.shape[1]) and 2 <= k < m.n_nodes_  # fewer clusters than nodes
    nc = m.node_clusters_
    assert nc.shape == (m.n_nodes_,) and set(np.unique(nc)) <= set(range(k))
    assert m.cluster_scores_ and all(np.isfinite(list(m.cluster_scores_.values())))
    assert str(k) in m.cluster_scores_ and m.cluster_at_ in (0.928, 0.95, 0.97)
    # every row not noise gets its nearest centre (float64 reference)
    m.set_params(filter_noise=False)
    merged = m.predict_cluster(X)
    ref = ((X.astype(np.float64)[:, None] - C.astype(np.float64)[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(merged, ref)
    # node_clusters_: the cluster most of each node's rows fall in
    dist = m._activation_args()[0]
    win = _clusters.winners(torch.as_tensor(X), m.prototypes_, m.relevances_, dist)
    for j in np.unique(win):
        assert nc[j] == np.bincount(merged[win == j], minlength=k).argmax()
    # a model saved before clusters had centres (node_clusters_ only): each row its winning
    # node's merged cluster, not the bare node id
    m.__dict__.pop("cluster_centers_")
    np.testing.assert_array_equal(m.predict_cluster(X), nc[win])
    # on three well separated blobs the merge finds them (the nodes alone do not)
    assert k == 3 and clustering_error(y, merged) > 0.95
    assert clustering_error(y, win) < clustering_error(y, merged)


def test_constant_data_fits_quietly():
    """All columns constant: one point, no partition and no k-means warnings."""
    import warnings

    X = np.full((100, 3), 0.5, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = LARFDSSOM(random_state=0).fit(X)
    assert "cluster_centers_" not in m.__dict__
    assert (m.predict(X) >= -1).all() and _clusters.gap_reference(X.astype(np.float64)) == {}


def test_gap_reference_only_when_a_map_has_partitions(monkeypatch):
    """Maps with fewer than three nodes that won rows need no gap reference."""
    calls = []
    real = _clusters.gap_reference
    monkeypatch.setattr(
        _clusters, "gap_reference", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    X = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32) * 1e-3 + 0.5
    m = LARFDSSOM(random_state=0).fit(X)
    assert (len(calls) == 0) == ("cluster_centers_" not in m.__dict__)
    assert len(calls) <= 1


def test_noise_stays_noise(blobs):
    X, _ = blobs
    m = LARFDSSOM(random_state=0).fit(X)
    Z = np.vstack([X, np.full((1, X.shape[1]), 5.0, dtype=np.float32)])  # far from every node
    p = m.predict(Z)
    assert p[-1] == -1
    assert (m.activations(Z).max(1) < m.at).sum() == (p == -1).sum()


def test_labels_and_predict_follow_the_merge(blobs):
    X, _ = blobs
    m = LARFDSSOM(random_state=0).fit(X)
    np.testing.assert_array_equal(m.labels_, m.predict_cluster(X))
    np.testing.assert_array_equal(m.predict(X), m.predict_cluster(X))
    assert set(np.unique(m.labels_)) - {-1} <= set(m.node_clusters_.tolist())
    b = BatchSSSOM(random_state=0).fit(X)
    np.testing.assert_array_equal(b.predict(X), b.predict_cluster(X))


@pytest.mark.parametrize(
    "cls,params",
    [
        (LARFDSSOM, {"at": 0.9}),
        (LARFDSSOM, {"epochs": 5}),
        (LARFDSSOM, {"compat": "reference"}),
        (BatchSSSOM, {"lp": 0.01}),
        (BatchSSSOM, {"decision": "map"}),
    ],
)
def test_explicit_settings_keep_one_cluster_per_node(cls, params, blobs):
    X = blobs[0][::4]  # a quarter of the rows: compat="reference" trains on the torch engine
    m = cls(random_state=0, **params).fit(X)
    assert not hasattr(m, "node_clusters_") and not hasattr(m, "cluster_centers_")
    m.set_params(filter_noise=False)
    c = m.predict_cluster(X)
    assert c.max() < m.n_nodes_
    win = _clusters.winners(
        torch.as_tensor(X), m.prototypes_, m.relevances_, m._activation_args()[0]
    )
    np.testing.assert_array_equal(c, win)  # each node its own cluster


def test_labels_give_no_merge(blobs):
    X, y = blobs
    m = BatchSSSOM(random_state=0).fit(X, y)
    assert m.supervised_ and not hasattr(m, "node_clusters_")
    # a refit with labels drops the clusters of an earlier label-free fit
    m = BatchSSSOM(random_state=0).fit(X)
    assert hasattr(m, "node_clusters_") and hasattr(m, "cluster_centers_")
    m.fit(X, y)
    assert not hasattr(m, "node_clusters_") and not hasattr(m, "cluster_centers_")
    assert set(np.unique(m.predict(X))) <= set(np.unique(y))


@pytest.mark.parametrize("cls", [LARFDSSOM, BatchSSSOM])
def test_same_seed_same_clusters(cls, blobs):
    X, _ = blobs
    a = cls(random_state=7).fit(X)
    b = cls(random_state=7).fit(X)
    np.testing.assert_array_equal(a.node_clusters_, b.node_clusters_)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    np.testing.assert_array_equal(a.predict_cluster(X), b.predict_cluster(X))


@pytest.mark.parametrize("cls", [LARFDSSOM, BatchSSSOM])
def test_save_load_round_trip(cls, blobs, tmp_path):
    X, _ = blobs
    m = cls(random_state=0).fit(X)
    path = tmp_path / "m.somlab"
    m.save(path)
    r = somlab.load(path)
    assert r.cluster_at_ == m.cluster_at_
    np.testing.assert_array_equal(r.node_clusters_, m.node_clusters_)
    np.testing.assert_array_equal(r.cluster_centers_, m.cluster_centers_)
    assert r.cluster_scores_ == m.cluster_scores_
    np.testing.assert_array_equal(r.predict_cluster(X), m.predict_cluster(X))


def test_merge_nodes_small_maps_give_no_partition():
    P = np.array([[0.0, 0.0], [1.0, 1.0]])
    X = np.array([[0.0, 0.1], [0.9, 1.0], [1.0, 0.9]])
    assert _clusters.merge_nodes(P, X, np.array([0, 1, 1])) == {}


def _two_groups():
    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1], [0.9, 0.9]])
    P = np.vstack([centres + d for d in ([0, 0], [0.03, 0], [0, 0.03])] + [[[0.12, 0.1]]])
    X = np.vstack([c + 0.02 * rng.standard_normal((40, 2)) for c in centres])
    win = ((X[:, None] - P[None, :6]) ** 2).sum(-1).argmin(1)  # node 6 wins nothing
    return P, X, win


def test_merge_nodes_partitions_the_rows():
    P, X, win = _two_groups()
    parts = _clusters.merge_nodes(P, X, win)
    assert set(parts) == {2, 3, 4, 5}  # 2 .. used nodes - 1
    centres, labels, inertia = parts[2]
    assert np.unique(labels[:40]).size == 1 and np.unique(labels[40:]).size == 1
    # Lloyd's fixed point: each centre the mean of its rows, the inertia their spread
    for c in range(2):
        np.testing.assert_allclose(centres[c], X[labels == c].mean(0), atol=1e-12)
    np.testing.assert_allclose(inertia, ((X - centres[labels]) ** 2).sum(), rtol=1e-9)


def test_node_majority_unused_node_joins_nearest():
    P, X, win = _two_groups()
    labels = (X[:, 0] > 0.5).astype(np.int64)
    nc = _clusters.node_majority(P, win, labels, 2)
    np.testing.assert_array_equal(nc[:6], [0, 1, 0, 1, 0, 1])
    assert nc[6] == nc[0]  # nearest prototype: node 0


def test_gap_rule_known_values():
    # gap(k) = E log W_k - log W_k: 0.5, 1.0, 1.05, 1.1 with s = 0.1: gap(3) >= gap(4) - s
    ref = {k: (np.log(10.0), 0.1) for k in (2, 3, 4, 5)}
    parts = {k: (None, None, 10.0 / np.exp(g)) for k, g in zip((2, 3, 4, 5), (0.5, 1.0, 1.05, 1.1))}
    k, gaps = _clusters.gap_k(parts, ref)
    assert k == 3
    np.testing.assert_allclose([gaps[q] for q in (2, 3, 4, 5)], [0.5, 1.0, 1.05, 1.1])
    # a steadily rising gap: the largest k tried
    parts = {k: (None, None, 10.0 / np.exp(k)) for k in (2, 3, 4)}
    assert _clusters.gap_k(parts, ref)[0] == 4


def test_gap_reference_uniform_box():
    X = np.random.default_rng(1).random((300, 2))
    ref = _clusters.gap_reference(X, seed=0, kmax=6)
    assert set(ref) == set(range(2, 7))
    m = [ref[k][0] for k in range(2, 7)]
    assert all(a > b for a, b in zip(m, m[1:]))  # more clusters, less spread
    assert all(ref[k][1] >= 0 for k in ref)


def test_one_node_maps_keep_one_cluster_per_node():
    # standardised wine: every candidate map keeps a single node, so no partition to choose
    from sklearn.datasets import load_wine

    X = load_wine(return_X_y=True)[0]
    X = (((X - X.mean(0)) / X.std(0))[::2]).astype(np.float32)
    m = BatchSSSOM(random_state=0).fit(X)
    assert not hasattr(m, "cluster_centers_")
    np.testing.assert_array_equal(m.node_clusters_, np.arange(m.n_nodes_))
    assert m.cluster_scores_ == {} and m.cluster_at_ == m.at
    win = _clusters.winners(torch.as_tensor(X), m.prototypes_, m.relevances_, "weighted")
    np.testing.assert_array_equal(m.predict(X), win)
