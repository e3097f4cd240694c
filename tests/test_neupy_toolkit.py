"""The NeuPy article's toolkit (issue 18, point 5): winner-only training, a radius cut-off,
staircase schedules and the map drawn in data space."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from somlab import SOM
from somlab import plotting as P
from somlab.core.grids import Grid
from somlab.core.schedules import decay, parse_schedule

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _data(n=150, m=2, seed=0):
    return np.random.default_rng(seed).random((n, m))


def _init(rows, cols, m, seed=1):
    return np.random.default_rng(seed).random((rows * cols, m))


def _batch_reference(X, W, coords, h):
    """One exact batch epoch in float64: w_j = sum_i h(b_i, j) x_i / sum_i h(b_i, j)."""
    d = ((X[:, None, :] - W[None]) ** 2).sum(-1)
    b = d.argmin(1)
    g = ((coords[b][:, None, :] - coords[None]) ** 2).sum(-1) ** 0.5  # [n, k] grid distance
    H = h(g)
    den = H.sum(0)
    out = W.copy()
    ok = den > 0
    out[ok] = (H.T @ X)[ok] / den[ok][:, None]
    return out


def test_winner_only_batch_is_a_kmeans_step():
    X, W0 = _data(), _init(3, 4, 2)
    som = SOM((3, 4), neighbourhood="winner", sigma=0, init=W0, epochs=1, dtype="float64")
    som.fit(X)
    coords = Grid(3, 4).coordinates().numpy()
    want = _batch_reference(X, W0, coords, lambda g: (g == 0).astype(float))
    np.testing.assert_allclose(som.weights_.reshape(12, 2), want, rtol=1e-12, atol=1e-12)
    assert som.history_["sigma"] == [0.0]


@pytest.mark.parametrize("mode", ["online", "minibatch"])
def test_winner_only_moves_only_the_winner(mode):
    X, W0 = _data(1), _init(3, 3, 2)
    som = SOM(
        (3, 3),
        neighbourhood="winner",
        mode=mode,
        init=W0,
        epochs=1,
        batch_size=1,
        learning_rate=0.5,
        learning_rate_decay="constant",
        dtype="float64",
    ).fit(X)
    W = som.weights_.reshape(9, 2)
    b = ((X[0] - W0) ** 2).sum(1).argmin()
    moved = np.flatnonzero(np.any(W != W0, axis=1))
    assert moved.tolist() == [b]
    np.testing.assert_allclose(W[b], W0[b] + 0.5 * (X[0] - W0[b]))


def test_sigma_zero_only_for_winner_only_training():
    X = _data()
    with pytest.raises(ValueError, match="neighbourhood='winner'"):
        SOM((3, 3), sigma=0).fit(X)
    with pytest.raises(ValueError, match="radius cuts"):
        SOM((3, 3), neighbourhood="winner", radius=2).fit(X)
    SOM((3, 3), neighbourhood="winner", sigma_decay="exponential", mode="online").fit(X)


@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_radius_cuts_the_gaussian(topology):
    X, W0 = _data(200), _init(5, 5, 2)
    sigma, radius = 2.0, 1.0
    som = SOM(
        (5, 5),
        topology=topology,
        sigma=sigma,
        sigma_decay="constant",
        radius=radius,
        init=W0,
        epochs=1,
        dtype="float64",
    ).fit(X)
    coords = Grid(5, 5, topology).coordinates().numpy()
    want = _batch_reference(
        X, W0, coords, lambda g: np.exp(-(g**2) / (2 * sigma**2)) * (g <= radius + 1e-9)
    )
    np.testing.assert_allclose(som.weights_.reshape(25, 2), want, rtol=1e-12, atol=1e-12)
    plain = SOM(
        (5, 5),
        topology=topology,
        sigma=sigma,
        sigma_decay="constant",
        init=W0,
        epochs=1,
        dtype="float64",
    ).fit(X)
    assert not np.allclose(plain.weights_, som.weights_)


def test_radius_below_one_keeps_the_neighbours_still_online():
    # the cut-off (0.95 grid units) is inside the nearest neighbours: only the winner moves
    X, W0 = _data(1), _init(3, 3, 2)
    som = SOM(
        (3, 3),
        mode="online",
        sigma=1.9,
        sigma_end=1.9,
        sigma_decay="linear",
        radius=0.95,
        init=W0,
        epochs=1,
        dtype="float64",
    ).fit(X)
    W = som.weights_.reshape(9, 2)
    assert np.flatnonzero(np.any(W != W0, axis=1)).size == 1


def test_staircase_schedules():
    assert parse_schedule("linear@5") == ("linear", 5)
    assert parse_schedule("constant") == ("constant", None)
    for bad in ["linear@0", "linear@x", "linear@2.5", "stairs@3"]:
        with pytest.raises(ValueError, match="schedule"):
            parse_schedule(bad)
    vals = [decay("linear@5", 4.0, 0.0, e, 9) for e in range(10)]
    assert vals == [4.0, 4.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 0.0, 0.0]
    steps = [decay("exponential@2", 4.0, 1.0, t, 100) for t in range(100)]
    assert set(steps[:50]) == {4.0} and set(steps[50:]) == {1.0}
    assert decay("asymptotic@1", 3.0, 0.0, 77, 100) == 3.0
    som = SOM((4, 4), sigma=3.0, sigma_end=1.0, sigma_decay="linear@3", epochs=6).fit(_data())
    assert som.history_["sigma"] == [3.0, 3.0, 2.0, 2.0, 1.0, 1.0]
    online = SOM((4, 4), mode="online", learning_rate_decay="linear@2", epochs=4).fit(_data())
    lr = online.history_["learning_rate"]
    assert lr[0] == lr[1] == 0.5 and lr[2] == lr[3] < 0.5
    with pytest.raises(ValueError, match="sigma_decay"):
        SOM((3, 3), sigma_decay="linear@").fit(_data())


@pytest.mark.parametrize("topology, toroidal", [("rectangular", False), ("hexagonal", True)])
def test_map_in_data_space_2d(tmp_path, topology, toroidal):
    X = _data(200)
    som = SOM((4, 6), topology=topology, toroidal=toroidal, random_state=0).fit(X)
    ax = P.plot_data_space(som, X, y=(X[:, 0] > 0.5), path=tmp_path / "d.png")
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    segs = np.asarray(lines[0].get_segments())
    e = P.grid_edges(som.grid_)
    assert len(segs) == len(e) == len(Grid(4, 6, topology).neighbours_within(1 + 1e-6))
    W = som.weights_.reshape(24, 2)
    np.testing.assert_allclose(segs[:, 0], W[e[:, 0]])
    np.testing.assert_allclose(segs[:, 1], W[e[:, 1]])
    assert (tmp_path / "d.png").stat().st_size > 0


def test_map_in_data_space_3d_and_feature_choice():
    X = _data(200, 4)
    som = SOM((3, 3), random_state=0).fit(X)
    with pytest.raises(ValueError, match="pass features"):
        P.plot_data_space(som, X)
    ax = P.plot_data_space(som, X, features=(0, 2, 3))
    assert ax.name == "3d"
    ax2 = P.plot_data_space(som, None, features=(1, 3))
    assert ax2.get_xlabel() == "feature 1"
    with pytest.raises(ValueError, match="features must be"):
        P.plot_data_space(som, X, features=(0, 9))


def test_new_options_survive_save_load_and_clone(tmp_path):
    from sklearn.base import clone

    import somlab

    X = _data()
    som = SOM(
        (4, 4), radius=1.5, sigma_decay="linear@3", mode="online", epochs=3, random_state=0
    ).fit(X)
    som.cluster(2)
    path = som.save(tmp_path / "m.somlab")
    back = somlab.load(path)
    assert back.radius == 1.5 and back.sigma_decay == "linear@3"
    np.testing.assert_array_equal(back.predict(X), som.predict(X))
    np.testing.assert_array_equal(back.predict_cluster(X), som.predict_cluster(X))
    again = clone(som).fit(X)
    np.testing.assert_array_equal(again.weights_, som.weights_)


def test_one_dimensional_chains_and_no_3d_grids():
    from somlab.core.grids import parse_grid

    assert parse_grid((7,)) == (7, 1) and parse_grid([4]) == (4, 1)
    X = _data(200)
    chain = SOM((12,), random_state=0).fit(X)
    assert chain.weights_.shape == (12, 1, 2)
    with pytest.raises(ValueError, match="3 dimensions, which only topology='rectangular'"):
        SOM((3, 3, 3), topology="hexagonal").fit(X)  # 3-D rectangular grids: test_grids_3d.py
    with pytest.raises(ValueError, match="grid_shape must be 2 or 3 positive integers"):
        SOM((0,)).fit(X)
