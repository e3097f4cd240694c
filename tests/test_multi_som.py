"""SOMEnsemble: K maps trained at once equal K separate SOM fits; batched kernels; errors."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import ParameterGrid

from somlab import SOM, DataError, load
from somlab.core.grids import Grid
from somlab.core.neighbourhoods import NEIGHBOURHOODS, CutOff
from somlab.core.updates import accumulate, spread, winner_sums
from somlab.som import _multi
from somlab.som._multi import SOMEnsemble

SETTINGS = {  # three maps with different radii, decays and learning rates
    "sigma": [3.0, 2.0, 1.2],
    "sigma_end": [1.0, 0.4, None],
    "sigma_decay": ["linear", "exponential", "inverse_time"],
    "learning_rate": [0.5, 0.2, 0.9],
    "learning_rate_decay": ["asymptotic", "linear", "exponential"],
}


def _data(n=240, m=4, seed=0):
    return np.random.default_rng(seed).random((n, m))


def _assert_same_as_separate(ens, X):
    """Map k of the ensemble is SOM(**params_k).fit(X): weights, winners, metrics, history."""
    soms = ens.to_soms()
    for k, params in enumerate(ens.get_map_params()):
        ref = SOM(**params).fit(X)
        # the update sums are SOM's own (core.updates.spread per map): equal bit for bit on CPU
        np.testing.assert_array_equal(ens.weights_[k], ref.weights_)
        np.testing.assert_array_equal(ens.labels_[k], ref.labels_)
        # and so are the metrics: each map's winner search is SOM's own call
        assert ens.quantization_error_[k] == ref.quantization_error_
        assert ens.topographic_error_[k] == ref.topographic_error_
        for key in ("sigma", "quantization_error", "topographic_error"):
            np.testing.assert_array_equal(soms[k].history_[key], ref.history_[key])
        assert soms[k].history_["learning_rate"] == pytest.approx(ref.history_["learning_rate"])


@pytest.mark.parametrize(
    "grid",
    [
        {"grid_shape": (6, 7)},
        {"grid_shape": (6, 7), "topology": "hexagonal"},
        {"grid_shape": (5, 5), "toroidal": True},
        {"grid_shape": (6, 8), "topology": "hexagonal", "toroidal": True},
    ],
    ids=["rect", "hex", "rect-torus", "hex-torus"],
)
def test_batch_maps_equal_separate_soms(grid):
    X = _data().astype(np.float32)
    ens = SOMEnsemble(**grid, **SETTINGS, epochs=6, random_state=0).fit(X)
    assert ens.n_maps_ == 3
    _assert_same_as_separate(ens, X)


def test_clustered_data_and_small_radii_keep_the_same_winners():
    """Small radii on clustered data leave many units with nearly equal prototypes: winners
    there are decided by the last bits, and the ensemble's arithmetic must be SOM's."""
    from sklearn.datasets import make_blobs

    X = make_blobs(400, n_features=12, centers=3, random_state=0)[0].astype(np.float32)
    ens = SOMEnsemble(
        (10, 8),
        sigma=[1.6, 2.0, 5.0],
        sigma_end=[0.1, 0.3, 0.3],
        sigma_decay=["inverse_time", "exponential", "exponential"],
        epochs=8,
        random_state=0,
    ).fit(X)
    _assert_same_as_separate(ens, X)


@pytest.mark.parametrize(
    "kw",
    [
        {"distance": "manhattan", "neighbourhood": "bubble"},
        {"distance": "cosine", "neighbourhood": "mexican_hat"},
        {"distance": "chebyshev", "neighbourhood": "triangle"},
        {"distance": "sqeuclidean", "init": "random"},
    ],
    ids=lambda kw: "-".join(str(v) for v in kw.values()),
)
def test_batch_other_distances_neighbourhoods_and_seeds(kw):
    X = _data(seed=1)
    kw = {"init": "sample", **kw}
    ens = SOMEnsemble(
        (5, 6), **SETTINGS, **kw, epochs=4, dtype="float64", random_state=[3, 4, 5]
    ).fit(X)
    _assert_same_as_separate(ens, X)
    assert not np.allclose(ens.weights_[0], ens.weights_[1])


@pytest.mark.parametrize(
    ("batch_size", "seed"),
    [(32, 7), (5, 7), (40, [7, 8, 9]), (5, [7, 8, 9])],
    ids=["shared-seed", "shared-seed-per-sample", "own-seeds", "own-seeds-per-sample"],
)
def test_minibatch_maps_equal_separate_soms(batch_size, seed):
    """A shared seed gives every map SOM's sample order; a list gives each map its own.

    Batches smaller than the map (5 < 30 nodes) and larger ones; the weights equal the
    separate fits' bit for bit (the steps are SOM's, with a map axis).
    """
    X = _data(n=80, seed=2)
    ens = SOMEnsemble(
        (5, 6),
        **SETTINGS,
        epochs=2,
        mode="minibatch",
        batch_size=batch_size,
        init="sample",
        dtype="float64",
        random_state=seed,
    ).fit(X)
    _assert_same_as_separate(ens, X)


def test_minibatch_float32_agrees():
    X = _data(n=150, seed=3).astype(np.float32)
    ens = SOMEnsemble(
        (4, 5), **SETTINGS, epochs=3, mode="minibatch", batch_size=16, random_state=0
    ).fit(X)
    _assert_same_as_separate(ens, X)


def test_small_blocks_give_the_same_maps(monkeypatch):
    """Blocks of neighbourhood rows do not change the result (to rounding)."""
    X = _data(n=100, seed=4)
    kw = dict(grid_shape=(4, 5), **SETTINGS, epochs=3, dtype="float64", random_state=0)
    ref = SOMEnsemble(**kw).fit(X)
    monkeypatch.setitem(_multi._BLOCK_ELEMENTS, "cpu", 3 * 20)  # 3 rows of 20 nodes a block
    small = SOMEnsemble(**kw).fit(X)
    np.testing.assert_allclose(small.weights_, ref.weights_, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(small.labels_, ref.labels_)
    mb_kw = {**kw, "mode": "minibatch", "batch_size": 11, "init": "sample"}
    mb = SOMEnsemble(**mb_kw).fit(X)
    monkeypatch.undo()
    np.testing.assert_allclose(mb.weights_, SOMEnsemble(**mb_kw).fit(X).weights_, atol=1e-12)


def test_shapes_inference_and_to_soms(tmp_path):
    X = _data(n=120, m=3, seed=5)
    ens = SOMEnsemble((3, 4), sigma=[1.5, 1.0], epochs=3, random_state=0).fit(X)
    assert ens.weights_.shape == (2, 3, 4, 3)
    assert ens.quantization_error_.shape == ens.topographic_error_.shape == (2,)
    assert ens.labels_.shape == (2, 120)
    for key in ("sigma", "learning_rate", "quantization_error", "topographic_error"):
        assert ens.history_[key].shape == (3, 2)
    assert np.isnan(ens.history_["learning_rate"]).all()  # the batch SOM has none
    np.testing.assert_array_equal(ens.predict(X), ens.labels_)
    np.testing.assert_allclose(ens.quantization_error(X), ens.quantization_error_, rtol=1e-6)
    np.testing.assert_allclose(ens.topographic_error(X), ens.topographic_error_)
    som = ens.to_soms()[1]
    assert isinstance(som, SOM) and som.sigma == 1.0 and som.n_iter_ == 3
    np.testing.assert_array_equal(som.predict(X), ens.labels_[1])
    assert som.quantization_error(X) == pytest.approx(ens.quantization_error_[1], rel=1e-6)
    path = som.save(tmp_path / "map1.somlab")
    np.testing.assert_array_equal(load(path).predict(X), ens.labels_[1])
    back = load(ens.save(tmp_path / "ens.somlab"))  # the whole ensemble
    assert type(back) is SOMEnsemble and back.get_params()["sigma"] == (1.5, 1.0)
    np.testing.assert_array_equal(back.predict(X), ens.labels_)
    for key, h in ens.history_.items():
        np.testing.assert_array_equal(back.history_[key], h)
    with pytest.raises(DataError):
        ens.predict(X[:, :2])


def test_one_map_and_one_node():
    X = _data(n=80, m=2, seed=6)
    ens = SOMEnsemble((4, 4), epochs=3, random_state=0).fit(X)
    ref = SOM((4, 4), epochs=3, random_state=0).fit(X)
    np.testing.assert_allclose(ens.weights_[0], ref.weights_, atol=1e-6)
    tiny = SOMEnsemble((1, 1), sigma=[1.0, 2.0], epochs=2).fit(X)
    assert np.isnan(tiny.topographic_error_).all()
    np.testing.assert_allclose(tiny.weights_[:, 0, 0], np.tile(X.mean(0), (2, 1)), atol=1e-6)


def test_from_settings_and_per_map_init():
    X = _data(n=90, m=3, seed=7)
    grid = ParameterGrid({"sigma": [1.0, 2.0], "sigma_decay": ["linear", "exponential"]})
    ens = SOMEnsemble.from_settings(grid, grid_shape=(3, 3), epochs=2, random_state=0)
    assert ens.n_maps() == 4
    assert [p["sigma"] for p in ens.get_map_params()] == [1.0, 1.0, 2.0, 2.0]
    assert ens.get_map_params()[0]["grid_shape"] == (3, 3)
    W0 = np.random.default_rng(0).random((2, 3, 3, 3))
    ens = SOMEnsemble((3, 3), sigma=[1.0, 2.0], init=W0, epochs=2, dtype="float64").fit(X)
    _assert_same_as_separate(ens, X)


def test_bad_input_errors():
    X = _data(n=50, m=3)
    with pytest.raises(ValueError, match="sigma has 2, learning_rate has 3"):
        SOMEnsemble(sigma=[1.0, 2.0], learning_rate=[0.1, 0.2, 0.3]).fit(X)
    with pytest.raises(ValueError, match="at least one map"):
        SOMEnsemble(sigma=[]).fit(X)
    with pytest.raises(ValueError, match="map 1: .*sigma"):
        SOMEnsemble((3, 3), sigma=[1.0, -1.0]).fit(X)
    with pytest.raises(ValueError, match="map 0: .*sigma_decay"):
        SOMEnsemble((3, 3), sigma_decay=["nope"]).fit(X)
    with pytest.raises(ValueError, match="mode"):
        SOMEnsemble((3, 3), mode="online").fit(X)
    with pytest.raises(ValueError, match="per-map parameters"):
        SOMEnsemble.from_settings([{"epochs": 3}])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        SOMEnsemble((3, 3)).fit(Xn)
    with pytest.raises(DataError):
        SOMEnsemble((3, 3)).fit(X[:, 0])
    with pytest.raises(DataError, match="init array"):
        SOMEnsemble((3, 3), init=np.zeros((2, 2, 3))).fit(X)
    with pytest.raises(NotFittedError):
        SOMEnsemble((3, 3)).predict(X)


def test_grid_shapes_inputs_and_divergence_are_checked():
    X = _data(n=60, m=3)
    with pytest.raises(ValueError, match=r"share one grid shape.*got \[\(5, 5\), \(3, 3\)\]"):
        SOMEnsemble([(5, 5), (3, 3)], sigma=[1.0, 2.0]).fit(X)
    with pytest.raises(ValueError, match="grid_shape must be 2 or 3 positive integers"):
        SOMEnsemble((2.5, 3)).fit(X)
    Xt = torch.tensor(X, requires_grad=True)
    ens = SOMEnsemble((3, 3), sigma=[1.0, 2.0], epochs=2, random_state=0).fit(Xt)
    ref = SOMEnsemble((3, 3), sigma=[1.0, 2.0], epochs=2, random_state=0).fit(X)
    np.testing.assert_array_equal(ens.weights_, ref.weights_)
    np.testing.assert_array_equal(ens.predict(Xt), ref.predict(X))
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(DataError, match="X contains NaN; clean the data") as info:
        SOMEnsemble((3, 3)).fit(Xn)
    assert "HistGradientBoosting" not in str(info.value)
    with pytest.raises(DataError, match="overflow float32"):
        SOMEnsemble((3, 3)).fit(X * 1e30)
    with pytest.raises(DataError, match="squared distances overflow float32"):
        SOMEnsemble((3, 3), distance="sqeuclidean").fit(X * 1e20)
    with pytest.raises(DataError, match="map 1: training diverged.*lower learning_rate"):
        SOMEnsemble(
            (3, 3), mode="minibatch", batch_size=1, learning_rate=[0.5, 100.0], random_state=0
        ).fit(X)


# ---------------------------------------------------------------------- K-map kernels
@pytest.mark.parametrize("n", [5, 40])  # fewer samples than nodes, and more
def test_k_map_accumulate_equals_each_map_alone(n):
    """winner_sums / spread / accumulate with a map axis are the one-map calls, map by map,
    bit for bit (each map its own radius and, here, neighbourhood function)."""
    grid = Grid(4, 5)
    coords = grid.coordinates(torch.float64)
    fn = NEIGHBOURHOODS["gaussian"]
    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, 3, generator=g, dtype=torch.float64)
    bmus = torch.randint(0, 20, (2, n), generator=g)
    sigmas = torch.tensor([0.8, 2.5], dtype=torch.float64)
    S, C = winner_sums(bmus, X, 20)
    assert S.shape == (2, 20, 3) and C.shape == (2, 20, 1)
    assert C.sum().item() == 2 * n
    fns = [fn, CutOff(NEIGHBOURHOODS["bubble"], 0.8)]
    num, den = accumulate(coords, bmus, X, fns, sigmas)
    for k in range(2):
        ref_num, ref_den = accumulate(coords, bmus[k], X, fns[k], float(sigmas[k]))
        assert torch.equal(num[k], ref_num) and torch.equal(den[k], ref_den)
        assert not torch.equal(num[k], torch.zeros_like(num[k]))
    assert not torch.allclose(num[0], num[1])
    Xk = torch.stack([X, X.flip(0)])  # each map its own samples
    num, den = accumulate(coords, bmus, Xk, fn, sigmas)
    assert torch.equal(num[1], accumulate(coords, bmus[1], Xk[1], fn, 2.5)[0])
    # K = 1: the same addmm as the one-map call, bit for bit (NaN: per-feature counts)
    Xn = X.clone()
    Xn[1, 2] = float("nan")
    S1, C1 = winner_sums(bmus[:1], Xn, 20)
    S0, C0 = winner_sums(bmus[0], Xn, 20)
    assert C1.shape == (1, 20, 3) and torch.equal(S1[0], S0) and torch.equal(C1[0], C0)
    a = spread(coords, S1, C1, fn, sigmas[:1])
    b = spread(coords, S0, C0, fn, float(sigmas[0]))
    assert torch.equal(a[0][0], b[0]) and torch.equal(a[1][0], b[1])


@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_radius_cut_off_per_map_equals_separate_soms(mode):
    """SOM's radius parameter: each map's neighbourhood cut at its radius (shrinking with its
    own sigma), as the map's SOM cuts it; a cut changes the map."""
    X = _data(n=150, seed=4)
    kw = dict(sigma=[2.0, 2.0, 3.0], epochs=3, mode=mode, batch_size=16, random_state=1)
    ens = SOMEnsemble((5, 6), radius=[None, 1.0, 2.5], **kw).fit(X)
    _assert_same_as_separate(ens, X)
    assert ens.get_map_params()[1]["radius"] == 1.0
    assert not np.allclose(ens.weights_[0], ens.weights_[1])
    shared = SOMEnsemble((5, 6), radius=1.0, **kw).fit(X)
    np.testing.assert_array_equal(shared.weights_[1], ens.weights_[1])
    with pytest.raises(ValueError, match="map 0: radius"):
        SOMEnsemble((5, 6), neighbourhood="winner", radius=1.0).fit(X)


def test_winner_only_maps_record_sigma_zero_as_som_does():
    """neighbourhood="winner" has no sigma: SOM records 0 in its history, and so does each
    map of an ensemble (it once recorded the default sigma, half the longest grid axis)."""
    from somlab import SOM
    from somlab.som._multi import SOMEnsemble

    X = np.random.default_rng(3).random((120, 3)).astype(np.float32)
    kw = dict(neighbourhood="winner", epochs=3, mode="batch", random_state=0)
    ens = SOMEnsemble((4, 5), learning_rate=[0.5, 0.3], **kw).fit(X)
    for k, lr in enumerate([0.5, 0.3]):
        som = SOM((4, 5), learning_rate=lr, **kw).fit(X)
        assert np.all(np.asarray(ens.history_["sigma"])[k] == 0.0)
        assert som.history_["sigma"] == [0.0, 0.0, 0.0]
        np.testing.assert_array_equal(ens.to_soms()[k].weights_, som.weights_)
