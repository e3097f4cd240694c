"""SOM.cluster, predict_cluster, node_members and the node plots (issue 18, point 1)."""

import collections

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from somlab import SOM
from somlab import plotting as P
from somlab.compat import MiniSom
from somlab.core.grids import Grid
from somlab.som._cluster import cluster_prototypes, grid_connectivity

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    X = np.concatenate([rng.normal(c, 0.2, (80, 2)) for c in centres])
    y = np.repeat([0, 1, 2], 80)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = _blobs()
    return SOM((8, 8), random_state=0).fit(X), X, y


def _agree(a, b):
    """The two labellings are the same partition (up to renaming)."""
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b) == 1.0


@pytest.mark.parametrize("method", ["agglomerative", "kmeans", "hdbscan"])
def test_cluster_finds_the_three_blobs(fitted, method):
    som, X, y = fitted
    nodes = som.cluster(method=method, X=X)
    assert nodes.shape == (64,) and nodes.dtype == np.int64
    assert np.array_equal(som.node_clusters_, nodes)
    got = som.predict_cluster(X)
    assert _agree(got, y)
    if method != "hdbscan":
        assert sorted(som.cluster_scores_) == list(range(2, 11))
        assert max(som.cluster_scores_, key=som.cluster_scores_.get) == 3


def test_cluster_given_number_and_renumbering(fitted):
    som, X, _ = fitted
    nodes = som.cluster(5, method="kmeans")
    assert set(nodes.tolist()) == set(range(5))
    first = [nodes.tolist().index(k) for k in range(5)]
    assert first == sorted(first)  # numbered in order of their first node
    assert som.cluster_scores_ == {}
    assert np.all(som.cluster(1) == 0)


def test_agglomerative_clusters_are_connected_regions(fitted):
    som, X, _ = fitted
    grid = som.grid_
    nodes = som.cluster(6)
    A = grid_connectivity(grid)
    from scipy.sparse.csgraph import connected_components

    for k in range(6):
        sel = np.flatnonzero(nodes == k)
        n_comp, _ = connected_components(A[sel][:, sel], directed=False)
        assert n_comp == 1


def test_grid_connectivity_counts():
    A = grid_connectivity(Grid(3, 4))
    deg = np.asarray(A.sum(1)).ravel()
    assert deg.reshape(3, 4)[0, 0] == 3 and deg.reshape(3, 4)[1, 1] == 8
    assert (A != A.T).nnz == 0
    H = grid_connectivity(Grid(4, 4, "hexagonal"))
    assert np.asarray(H.sum(1)).max() == 6


def test_cluster_bad_arguments(fitted):
    som, X, _ = fitted
    with pytest.raises(ValueError, match="n_clusters must be an integer"):
        som.cluster(0)
    with pytest.raises(ValueError, match="n_clusters must be an integer"):
        som.cluster(65)
    with pytest.raises(ValueError, match="HDBSCAN finds"):
        som.cluster(3, method="hdbscan")
    with pytest.raises(ValueError, match="method must be one of"):
        som.cluster(method="dbscan")
    with pytest.raises(ValueError, match="max_clusters"):
        som.cluster(max_clusters=1)
    fresh = SOM((3, 3), random_state=0).fit(X)
    with pytest.raises(ValueError, match="call cluster"):
        fresh.predict_cluster(X)


def test_tiny_maps_need_no_choice():
    labels, scores = cluster_prototypes(np.zeros((2, 3)), Grid(1, 2))
    assert labels.tolist() == [0, 0] and scores == {}


def test_node_members_matches_minisom_win_map():
    X, y = _blobs(1)
    ms = MiniSom(5, 5, 2, sigma=1.5, random_seed=0)
    ms.train_random(X, 500)
    win = ms.win_map(X, return_indices=True)
    labels = ms.labels_map(X, y)
    som = SOM((5, 5), init=ms.get_weights(), epochs=1, random_state=0).fit(X)
    som.weights_ = ms.get_weights().copy()  # the same map, asked natively
    members = som.node_members(X)
    assert sum(len(m) for m in members) == len(X)
    for k, idx in enumerate(members):
        assert np.all(np.diff(idx) > 0)
        r, c = divmod(k, 5)
        assert idx.tolist() == list(win.get((r, c), []))
        if len(idx):
            assert collections.Counter(y[idx].tolist()) == labels[(r, c)]


# ---------------------------------------------------------------- plots
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_plot_node_values_and_clusters(tmp_path, topology):
    X, _ = _blobs()
    som = SOM((4, 6), topology=topology, random_state=0).fit(X)
    vals = np.arange(24, dtype=float)
    vals[3] = np.nan
    ax = P.plot_node_values(som, vals, path=tmp_path / "v.png", label="index", annotate=True)
    assert (tmp_path / "v.png").stat().st_size > 0
    coll = ax.collections[0] if topology == "hexagonal" else ax.images[0]
    arr = np.ma.filled(coll.get_array().astype(float), np.nan).ravel()
    assert np.isnan(arr[3]) and arr[5] == 5.0
    labels = som.cluster(3)
    ax = P.plot_clusters(som, path=tmp_path / "c.png")
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    # one border segment per edge-sharing pair of nodes in different clusters
    layout = Grid(4, 6, topology)
    e = layout.neighbours_within(1.0 + 1e-6).numpy()
    assert len(lines[0].get_segments()) == int((labels[e[:, 0]] != labels[e[:, 1]]).sum())
    with pytest.raises(ValueError, match="one entry per node"):
        P.plot_node_values(som, np.zeros(5))


def test_refit_and_initialize_drop_the_old_clusters():
    """Clusters of the old prototypes do not survive fit, partial_fit or initialize."""
    rng = np.random.default_rng(0)
    X = rng.random((120, 3))
    for again in (
        lambda s: s.fit(X),
        lambda s: s.partial_fit(X),
        lambda s: s.initialize(X),
    ):
        s = SOM((4, 4), epochs=2, random_state=0).fit(X)
        s.cluster(n_clusters=2)
        again(s)
        assert not hasattr(s, "node_clusters_") and not hasattr(s, "cluster_scores_")
    s = SOM((4, 4), epochs=2, random_state=0).fit(X)
    s.cluster(n_clusters=2)
    SOM.fit(s.set_params(grid_shape=(2, 2)), X)  # a smaller grid: no IndexError from old labels
    with pytest.raises(Exception, match="cluster"):
        s.predict_cluster(X)


def test_cluster_scores_survive_save_and_load_as_saved(tmp_path):
    import somlab

    X = np.random.default_rng(1).random((150, 3))
    s = SOM((5, 5), epochs=2, random_state=0).fit(X)
    s.cluster(X=X)
    back = somlab.load(s.save(tmp_path / "m.somlab"))
    assert back.cluster_scores_ == s.cluster_scores_ and all(
        isinstance(k, int) for k in back.cluster_scores_
    )
    np.testing.assert_array_equal(back.predict_cluster(X), s.predict_cluster(X))
