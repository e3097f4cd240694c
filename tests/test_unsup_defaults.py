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
    nc = m.node_clusters_
    assert nc.shape == (m.n_nodes_,)
    k = np.unique(nc).size
    assert 2 <= k < m.n_nodes_  # fewer clusters than nodes
    assert set(np.unique(nc)) == set(range(k))
    assert m.cluster_scores_ and all(np.isfinite(list(m.cluster_scores_.values())))
    # predict_cluster gives the winner's merged cluster
    m.set_params(filter_noise=False)
    merged = m.predict_cluster(X)
    m.__dict__.pop("node_clusters_")
    nodes = m.predict_cluster(X)
    np.testing.assert_array_equal(merged, nc[nodes])
    # on three well separated blobs the merge finds them (the nodes alone do not)
    assert clustering_error(y, merged) > 0.95
    assert clustering_error(y, nodes) < clustering_error(y, merged)


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
    assert not hasattr(m, "node_clusters_")
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
    assert hasattr(m, "node_clusters_")
    m.fit(X, y)
    assert not hasattr(m, "node_clusters_")
    assert set(np.unique(m.predict(X))) <= set(np.unique(y))


@pytest.mark.parametrize("cls", [LARFDSSOM, BatchSSSOM])
def test_same_seed_same_clusters(cls, blobs):
    X, _ = blobs
    a = cls(random_state=7).fit(X)
    b = cls(random_state=7).fit(X)
    np.testing.assert_array_equal(a.node_clusters_, b.node_clusters_)
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
    assert r.cluster_scores_ == m.cluster_scores_
    np.testing.assert_array_equal(r.predict_cluster(X), m.predict_cluster(X))


def test_merge_nodes_small_maps_keep_nodes():
    P = np.array([[0.0, 0.0], [1.0, 1.0]])
    X = np.array([[0.0, 0.1], [0.9, 1.0], [1.0, 0.9]])
    nc, scores = _clusters.merge_nodes(P, X, np.array([0, 1, 1]))
    np.testing.assert_array_equal(nc, [0, 1])
    assert scores == {}


def test_merge_nodes_unused_node_joins_nearest():
    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1], [0.9, 0.9]])
    P = np.vstack([centres + d for d in ([0, 0], [0.03, 0], [0, 0.03])] + [[[0.12, 0.1]]])
    X = np.vstack([c + 0.02 * rng.standard_normal((40, 2)) for c in centres])
    win = ((X[:, None] - P[None, :6]) ** 2).sum(-1).argmin(1)  # node 6 wins nothing
    nc, _ = _clusters.merge_nodes(P, X, win)
    assert np.unique(nc[:6]).size == 2
    assert nc[6] == nc[0]  # nearest prototype: node 0
    assert np.unique(nc[[0, 2, 4]]).size == 1 and np.unique(nc[[1, 3, 5]]).size == 1
