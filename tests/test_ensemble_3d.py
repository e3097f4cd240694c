"""SOMEnsemble on 3-D rectangular grids (issue 18.5): every map equals its own SOM fit bit for
bit on the CPU, in batch and mini-batch mode (batch size 1: the online rule), on plain and
toroidal grids; per-map 5-axis init arrays; predict / persistence on a 3-D ensemble."""

import numpy as np
import pytest
from test_multi_som import _assert_same_as_separate

from somlab import SOM, load
from somlab.core.grids import make_grid
from somlab.som._multi import SOMEnsemble

SETTINGS = {  # three maps with their own radii, decays, rates and radius cut-offs
    "sigma": [2.5, 1.5, 1.0],
    "sigma_end": [0.5, 0.3, None],
    "sigma_decay": ["linear", "exponential", "inverse_time"],
    "learning_rate": [0.5, 0.2, 0.9],
    "learning_rate_decay": ["asymptotic", "linear", "exponential"],
    "radius": [None, 1.0, 2.0],
}


def _data(n=200, m=4, seed=0):
    return np.random.default_rng(seed).random((n, m))


def _assert_maps_are_soms(ens, X):
    """Map k is SOM(**params_k).fit(X) (test_multi_som's check: weights and winners bit for
    bit; metrics, history), on a 3-D map."""
    assert ens.weights_.ndim == 5  # (maps, rows, cols, layers, n_features)
    _assert_same_as_separate(ens, X)


GRIDS = [
    {"grid_shape": (3, 4, 2)},
    {"grid_shape": (3, 3, 4), "toroidal": True},
    {"grid_shape": "2x5x3", "neighbourhood": "bubble"},
    {"grid_shape": (4, 2, 3), "neighbourhood": "triangle", "distance": "manhattan"},
]
GRID_IDS = ["cube", "cube-torus", "bubble", "triangle-manhattan"]


@pytest.mark.parametrize("grid", GRIDS, ids=GRID_IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_3d_maps_equal_separate_soms(grid, dtype):
    X = _data(seed=1).astype(dtype)
    ens = SOMEnsemble(**grid, **SETTINGS, epochs=5, dtype=dtype, random_state=0).fit(X)
    K = len(SETTINGS["sigma"])
    shape = make_grid(grid["grid_shape"]).shape
    assert ens.n_maps_ == K and ens.weights_.shape == (K, *shape, 4)
    _assert_maps_are_soms(ens, X)
    assert not np.array_equal(ens.weights_[0], ens.weights_[1])  # the settings matter


@pytest.mark.parametrize(
    ("batch_size", "seed"),
    [(16, 3), (1, 3), (16, [3, 4, 5]), (1, [3, 4, 5])],
    ids=["shared-seed", "shared-seed-online-rule", "own-seeds", "own-seeds-online-rule"],
)
@pytest.mark.parametrize("grid", GRIDS[:2], ids=GRID_IDS[:2])
def test_minibatch_3d_maps_equal_separate_soms(grid, batch_size, seed):
    """Mini-batches larger and smaller than the map; batch_size=1 is the online rule."""
    X = _data(n=60, seed=2).astype(np.float32)
    ens = SOMEnsemble(
        **grid,
        **SETTINGS,
        epochs=2,
        mode="minibatch",
        batch_size=batch_size,
        init="sample",
        random_state=seed,
    ).fit(X)
    _assert_maps_are_soms(ens, X)


def test_minibatch_of_one_is_the_online_som_to_rounding():
    """SOMEnsemble has no mode="online": its mini-batches of one sample take the steps of
    SOM's online mode (one sample at a time, SOM's order), to float64 rounding."""
    X = _data(n=50, seed=3)
    kw = dict(sigma=1.5, epochs=2, init="sample", dtype="float64", random_state=7)
    ens = SOMEnsemble((3, 2, 2), mode="minibatch", batch_size=1, **kw).fit(X)
    online = SOM((3, 2, 2), mode="online", **kw).fit(X)
    np.testing.assert_allclose(ens.weights_[0], online.weights_, rtol=0, atol=1e-12)


def test_per_map_init_arrays_on_a_3d_grid():
    """On a 3-D grid a shared init array has 4 axes (rows, cols, layers, features) and a
    per-map one 5 (K first); each map starts from its own."""
    X = _data(n=80, m=3, seed=4)
    W0 = np.random.default_rng(0).random((2, 2, 3, 2, 3))
    ens = SOMEnsemble((2, 3, 2), sigma=[1.0, 2.0], init=W0, epochs=2, dtype="float64")
    assert ens.n_maps() == 2
    np.testing.assert_array_equal(ens.get_map_params()[1]["init"], W0[1])
    _assert_maps_are_soms(ens.fit(X), X)
    shared = SOMEnsemble((2, 3, 2), sigma=[1.0, 2.0], init=W0[0], epochs=2, dtype="float64")
    assert shared.n_maps() == 2
    np.testing.assert_array_equal(shared.get_map_params()[1]["init"], W0[0])
    _assert_maps_are_soms(shared.fit(X), X)
    with pytest.raises(ValueError, match="init has 3"):
        SOMEnsemble((2, 3, 2), sigma=[1.0, 2.0], init=np.zeros((3, 2, 3, 2, 3))).fit(X)


def test_3d_predict_metrics_persistence_and_to_soms(tmp_path):
    X = _data(n=120, m=3, seed=5).astype(np.float32)
    ens = SOMEnsemble((2, 3, 4), sigma=[1.5, 1.0], epochs=3, random_state=0).fit(X)
    assert ens.weights_.shape == (2, 2, 3, 4, 3) and ens.labels_.shape == (2, 120)
    pred = ens.predict(X[:7])
    assert pred.shape == (2, 7) and pred.max() < 24
    np.testing.assert_array_equal(ens.predict(X), ens.labels_)
    np.testing.assert_array_equal(ens.quantization_error(X), ens.quantization_error_)
    np.testing.assert_array_equal(ens.topographic_error(X), ens.topographic_error_)
    som = ens.to_soms()[1]
    assert som.transform(X[:5]).shape == (5, 24)
    assert som.bmu_coordinates(X[:5]).shape == (5, 3)
    np.testing.assert_array_equal(som.predict(X), ens.labels_[1])
    back = load(ens.save(tmp_path / "cube.somlab"))
    assert type(back) is SOMEnsemble and back.weights_.shape == ens.weights_.shape
    np.testing.assert_array_equal(back.weights_, ens.weights_)
    np.testing.assert_array_equal(back.predict(X), ens.labels_)
    np.testing.assert_array_equal(back.topographic_error(X), ens.topographic_error_)
    one = load(som.save(tmp_path / "map1.somlab"))
    np.testing.assert_array_equal(one.predict(X), ens.labels_[1])


def test_3d_grid_errors():
    X = _data(n=40, m=3)
    with pytest.raises(ValueError, match="only topology='rectangular'"):
        SOMEnsemble((2, 2, 2), topology="hexagonal").fit(X)
    with pytest.raises(ValueError, match="2 or 3 positive integers"):
        SOMEnsemble((2, 2, 2, 2)).fit(X)
    with pytest.raises(ValueError, match="share one grid shape"):
        SOMEnsemble([(2, 2, 2), (3, 3, 3)], sigma=[1.0, 2.0]).fit(X)
