"""somlab.SOM: agreement with plain reference implementations, invariants, errors, sklearn."""

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from somlab import SOM, DataError
from somlab._utils import seeded_generator
from somlab.core.schedules import decay
from somlab.metrics import quantization_error


def _data(n=120, m=3, seed=0):
    return np.random.default_rng(seed).random((n, m))


def _gauss_rect(rows, cols, b, sigma):
    r, c = np.divmod(np.arange(rows * cols), cols)
    br, bc = divmod(int(b), cols)
    return np.exp(-((r - br) ** 2 + (c - bc) ** 2) / (2 * sigma**2))


def _ref_batch(X, W0, rows, cols, sigmas):
    """Kohonen batch SOM written plainly from its definition, one sample at a time."""
    W = W0.copy()
    for sigma in sigmas:
        num = np.zeros_like(W)
        den = np.zeros(len(W))
        for x in X:
            b = np.argmin(((W - x) ** 2).sum(1))
            h = _gauss_rect(rows, cols, b, sigma)
            num += h[:, None] * x
            den += h
        W = np.where(den[:, None] > 0, num / np.maximum(den[:, None], 1e-300), W)
    return W


def _ref_online(X, W0, rows, cols, order, sig, lr):
    W = W0.copy()
    total = len(order)
    for t, i in enumerate(order):
        x = X[i]
        b = np.argmin(((W - x) ** 2).sum(1))
        s = decay("linear", sig[0], sig[1], t, total)
        e = decay("asymptotic", lr, lr / 100, t, total)
        W += (e * _gauss_rect(rows, cols, b, s))[:, None] * (x - W)
    return W


def test_batch_mode_matches_plain_reference():
    X = _data()
    W0 = _data(12, 3, seed=5)
    som = SOM((3, 4), init=W0.reshape(3, 4, 3), epochs=4, sigma=2.0, dtype="float64").fit(X)
    sigmas = [decay("linear", 2.0, 1.0, e, 3) for e in range(4)]
    np.testing.assert_allclose(
        som.weights_.reshape(12, 3), _ref_batch(X, W0, 3, 4, sigmas), rtol=1e-10, atol=1e-12
    )
    assert som.history_["sigma"] == pytest.approx(sigmas)


def test_online_mode_matches_plain_reference():
    X = _data(60)
    W0 = _data(12, 3, seed=5)
    som = SOM(
        (3, 4),
        init=W0,
        mode="online",
        epochs=2,
        sigma=2.0,
        learning_rate=0.4,
        dtype="float64",
        random_state=7,
    ).fit(X)
    gen = seeded_generator(7)
    order = np.concatenate([torch.randperm(60, generator=gen).numpy() for _ in range(2)])
    want = _ref_online(X, W0, 3, 4, order, (2.0, 1.0), 0.4)
    np.testing.assert_allclose(som.weights_.reshape(12, 3), want, rtol=1e-10, atol=1e-12)


def test_minibatch_of_one_equals_online():
    X = _data(50)
    kw = dict(init="sample", epochs=2, random_state=3, dtype="float64", sigma=1.5)
    a = SOM((4, 4), mode="online", **kw).fit(X)
    b = SOM((4, 4), mode="minibatch", batch_size=1, **kw).fit(X)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ["batch", "minibatch", "online"])
@pytest.mark.parametrize("topology", ["rectangular", "hexagonal"])
def test_training_lowers_quantization_error(mode, topology):
    X = _data(300, 4)
    som = SOM(
        (6, 6), topology=topology, mode=mode, epochs=6, init="random", random_state=0, batch_size=32
    ).fit(X)
    qe = som.history_["quantization_error"]
    assert len(qe) == 6 and qe[-1] < qe[0]
    assert som.quantization_error_ == pytest.approx(qe[-1], rel=1e-5)
    assert som.quantization_error_ == pytest.approx(som.quantization_error(X), rel=1e-5)
    assert som.score(X) == pytest.approx(-som.quantization_error_, rel=1e-5)
    assert 0.0 <= som.topographic_error_ <= 1.0


def test_predict_transform_and_labels_are_consistent():
    X = _data(100, 5)
    som = SOM((4, 5), random_state=1).fit(X)
    d = som.transform(X)
    assert d.shape == (100, 20)
    np.testing.assert_array_equal(som.predict(X), d.argmin(1))
    np.testing.assert_array_equal(som.labels_, som.predict(X))
    np.testing.assert_array_equal(som.fit_predict(X), som.labels_)
    rc = som.bmu_coordinates(X)
    np.testing.assert_array_equal(rc[:, 0] * 5 + rc[:, 1], som.predict(X))


def test_seeded_runs_are_identical_and_seeds_matter():
    X = _data()
    a = SOM((5, 5), mode="online", init="random", random_state=3, epochs=2).fit(X)
    b = SOM((5, 5), mode="online", init="random", random_state=3, epochs=2).fit(X)
    c = SOM((5, 5), mode="online", init="random", random_state=4, epochs=2).fit(X)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert not np.allclose(a.weights_, c.weights_)


def test_pca_init_spans_principal_plane():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)) * [5.0, 1.0, 0.01]
    som = SOM((5, 5), epochs=1, sigma=0.1, sigma_decay="constant")
    W0 = som.initialize(X).reshape(-1, 3)
    # the corners lie about +-sqrt(eigenvalue) along the two leading axes; the third is ~mean
    assert abs(W0[:, 2]).max() < 0.05
    assert np.ptp(W0[:, 0]) == pytest.approx(2 * X[:, 0].std(ddof=1), rel=0.1)


def test_toroidal_topographic_error_wraps():
    # prototypes on a ring along one row of a 1x8 torus: neighbours wrap across the ends
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    W = np.stack([np.cos(angles), np.sin(angles)], 1).reshape(1, 8, 2)
    X = np.array([[1.0, -0.05]])  # between node 0 and node 7
    flat = SOM((1, 8), toroidal=False, init=W, epochs=1, sigma=1e-3, sigma_end=1e-3)
    torus = SOM((1, 8), toroidal=True, init=W, epochs=1, sigma=1e-3, sigma_end=1e-3)
    for s in (flat, torus):
        s.fit(np.vstack([W.reshape(8, 2), X]))
        s.weights_ = W.astype(np.float32)
    assert flat.topographic_error(X) == 1.0
    assert torus.topographic_error(X) == 0.0


def test_missing_values_error_by_default_and_ignored_on_request():
    X = _data(80, 4)
    X[5, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        SOM((3, 3)).fit(X)
    som = SOM((3, 3), missing="ignore", random_state=0).fit(X)
    assert np.isfinite(som.weights_).all() and np.isfinite(som.quantization_error_)
    # the BMU of the sample with a hole uses only its observed features
    W = som.weights_.reshape(9, 4)
    keep = [0, 1, 3]
    want = np.argmin(((W[:, keep] - X[5, keep]) ** 2).sum(1))
    assert som.predict(X[5:6])[0] == want


def test_bad_input_gives_clear_errors():
    som = SOM((3, 3)).fit(_data(30, 3))
    with pytest.raises(DataError, match="3 features"):
        som.predict(_data(5, 4))
    with pytest.raises(DataError, match="inf"):
        som.predict(np.full((2, 3), np.inf))
    with pytest.raises(DataError, match="0 sample"):
        SOM().fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="topology"):
        SOM(topology="triangular").fit(_data())
    with pytest.raises(DataError, match="init array"):
        SOM((2, 2), init=np.zeros((3, 3))).fit(_data())


def test_feature_column_nan_in_every_sample_is_refused(tmp_path):
    X = _data(80, 4)
    X[:, 0] = np.nan
    msg = "feature column 0 of X is NaN in every sample"
    with pytest.raises(DataError, match=msg):
        SOM((3, 3), missing="ignore").fit(X)
    with pytest.raises(DataError, match=msg):
        SOM((3, 3), missing="ignore").partial_fit(X)  # the first batch initialises the map
    X[:, 2] = np.nan
    with pytest.raises(DataError, match="feature columns 0, 2 of X are NaN"):
        SOM((3, 3), missing="ignore", init="random").fit(X)
    np.save(tmp_path / "cols.npy", X)
    for init in ("pca", "random", "sample"):  # streamed: found by the initialisation pass
        with pytest.raises(DataError, match="feature columns 0, 2 of X are NaN"):
            SOM((3, 3), missing="ignore", init=init, chunk_size=30).fit(tmp_path / "cols.npy")
    # NaN in every row of one chunk (or one later batch) only is legal
    Y = _data(80, 4)
    Y[:30, 1] = np.nan
    np.save(tmp_path / "chunk.npy", Y)
    som = SOM((3, 3), missing="ignore", chunk_size=30, random_state=0).fit(tmp_path / "chunk.npy")
    assert np.isfinite(som.weights_).all() and np.isfinite(som.quantization_error_)
    som = SOM((3, 3), missing="ignore", random_state=0).partial_fit(Y[30:]).partial_fit(Y[:30])
    assert np.isfinite(som.weights_).all()
    # a prediction may have a feature missing in every sample
    assert som.predict(Y[:5]).shape == (5,)


def test_diverging_training_and_overflowing_data_are_refused(tmp_path):
    X = _data(150, 4)
    with pytest.raises(
        DataError, match="training diverged: the prototypes are not finite.*lower learning_rate"
    ):
        with pytest.warns(RuntimeWarning, match="learning_rate=100 > 2"):
            SOM((3, 3), mode="online", learning_rate=100, random_state=0).fit(X)
    big = X * 1e20
    # Euclidean distances are centred and scaled before the expansion: 1e20 trains in float32
    som = SOM((3, 3), random_state=0).fit(big)
    assert np.isfinite(som.quantization_error_) and len(set(som.labels_)) > 1
    huge = X * 1e30  # the per-node sums of the updates would overflow
    with pytest.raises(DataError, match="overflow float32.*dtype='float64'"):
        SOM((3, 3)).fit(huge)
    with pytest.raises(DataError, match="squared distances overflow float32.*dtype='float64'"):
        SOM((3, 3), distance="sqeuclidean").fit(big)
    with pytest.raises(DataError, match="squared distances overflow float32"):
        SOM((3, 3), distance="cosine").fit(big.astype(np.float32))
    som = SOM((3, 3), dtype="float64", random_state=0).fit(big)
    assert np.isfinite(som.quantization_error_) and len(set(som.labels_)) > 1
    assert len(set(SOM((3, 3), distance="manhattan", random_state=0).fit(big).labels_)) > 1
    with pytest.raises(DataError, match="overflow float32"):
        SOM((3, 3)).fit(X).predict(huge)
    # streamed data is not scanned for its magnitude: the overflow shows in the first epochs
    np.save(tmp_path / "big.npy", big.astype(np.float32))
    for mode in ("batch", "minibatch", "online"):
        with pytest.raises(DataError, match="distances to the prototypes overflow float32"):
            SOM((3, 3), mode=mode, distance="sqeuclidean", chunk_size=50).fit(tmp_path / "big.npy")
    W0 = np.zeros((3, 3, 4))
    W0[1, 1, 2] = np.nan
    with pytest.raises(DataError, match="init array contains NaN or inf"):
        SOM((3, 3), init=W0).fit(X)
    W0[1, 1, 2] = np.inf
    with pytest.raises(DataError, match="init array contains NaN or inf"):
        SOM((3, 3), init=W0, chunk_size=50).fit([X[:75], X[75:]])


def test_grid_shape_and_init_shape_are_checked():
    X = _data(60, 4)
    for bad in [(2.5, 3), (True, 3), (0, 3), (3, 3, 3, 3), [2, 3.0]]:  # (3, 3, 3): 3-D grid
        with pytest.raises(ValueError, match=r"grid_shape must be 2 or 3 positive integers.*got"):
            SOM(bad).fit(X)
    assert SOM((np.int64(2), 3), epochs=1).fit(X).weights_.shape == (2, 3, 4)
    assert SOM("2x3", epochs=1).fit(X).weights_.shape == (2, 3, 4)
    with pytest.raises(
        DataError,
        match=r"init array must have shape \(3, 3, 4\) \(rows, cols, "
        r"n_features\) or \(9, 4\) \(n_nodes, n_features\), got \(4, 3, 3\)",
    ):
        SOM((3, 3), init=np.zeros((4, 3, 3))).fit(X)
    W0 = _data(9, 4, seed=3)
    ref = SOM((3, 3), init=W0.reshape(3, 3, 4), epochs=2, dtype="float64").fit(X)
    for init in (torch.tensor(W0).reshape(3, 3, 4), torch.tensor(W0, requires_grad=True), W0):
        som = SOM((3, 3), init=init, epochs=2, dtype="float64").fit(X)
        np.testing.assert_array_equal(som.weights_, ref.weights_)


def test_tensors_that_require_grad_are_accepted():
    X = _data(60, 3)
    Xt = torch.tensor(X, requires_grad=True)
    ref = SOM((3, 3), random_state=0).fit(X)
    som = SOM((3, 3), random_state=0).fit(Xt)
    np.testing.assert_array_equal(som.weights_, ref.weights_)
    np.testing.assert_array_equal(som.predict(Xt), ref.predict(X))
    np.testing.assert_array_equal(som.transform(Xt), ref.transform(X))
    assert som.score(Xt) == ref.score(X)
    assert som.topographic_error(Xt) == ref.topographic_error(X)
    assert som.bmu_coordinates(Xt).shape == (60, 2)
    assert SOM((3, 3)).partial_fit(Xt).partial_fit(Xt).n_iter_ == 2


def test_nan_inf_and_float32_overflow_messages():
    X = _data(40, 3)
    X[2, 1] = np.nan
    with pytest.raises(DataError, match="X contains NaN; clean the data or pass missing='ignore'"):
        SOM((2, 2)).fit(X)
    with pytest.raises(DataError, match="X contains NaN; .*missing='ignore'"):
        SOM((2, 2)).fit(_data(40, 3)).predict(X)
    X[3, 0] = np.inf
    with pytest.raises(DataError, match="X contains inf; only NaN is accepted"):
        SOM((2, 2), missing="ignore").fit(X)
    huge = _data(40, 3)
    huge[0, 0] = 1e300  # finite in float64, inf once cast to float32
    with pytest.raises(
        DataError, match="overflow when cast to dtype='float32'; pass dtype='float64'"
    ):
        SOM((2, 2)).fit(huge)
    with pytest.raises(DataError, match="squared distances overflow float64"):
        SOM((2, 2), dtype="float64").fit(huge)


def test_quantization_error_is_in_the_maps_distance():
    X = _data(100, 3)
    som = SOM((3, 3), distance="sqeuclidean", random_state=0).fit(X)
    assert som.quantization_error_ == pytest.approx(som.transform(X).min(1).mean(), rel=1e-5)
    euclid = quantization_error(X, som.weights_)
    assert som.quantization_error_ < euclid  # squared distances below 1
    doc = " ".join(SOM.__doc__.split())
    assert "somlab.metrics.quantization_error` is always Euclidean" in doc


def test_partial_fit_streams_and_checks_features():
    X = _data(400, 3)
    som = SOM((5, 5), epochs=4, random_state=0)
    for chunk in np.array_split(X, 4):
        som.partial_fit(chunk)
    assert som.n_iter_ == 4
    assert som.quantization_error(X) < SOM((5, 5), epochs=1, init="random", random_state=0).fit(
        X[:1]
    ).quantization_error(X)
    with pytest.raises(DataError, match="features"):
        som.partial_fit(_data(10, 2))


@pytest.mark.parametrize(("mode", "rows"), [("minibatch", 100), ("online", 256)])
def test_shuffled_epochs_gathered_in_blocks_equal_one_block(monkeypatch, mode, rows):
    # an in-memory epoch gathers the shuffled rows a block at a time; steps span the blocks
    # (mini-batch) or refresh on block edges (online), so any block size gives the same map
    from somlab.som import _sources as _som

    X = _data(1000, 3).astype(np.float32)
    kw = dict(mode=mode, batch_size=32, epochs=2, random_state=0)
    ref = SOM((4, 4), **kw).fit(X)
    monkeypatch.setattr(_som, "_PERMUTED_ROWS", rows)
    som = SOM((4, 4), **kw).fit(X)
    np.testing.assert_array_equal(som.weights_, ref.weights_)
    assert som.history_ == ref.history_


@pytest.mark.parametrize(
    "kw",
    [
        dict(mode="batch", init="pca"),
        dict(mode="minibatch", init="sample", batch_size=16),
        dict(mode="batch", init="random", missing="ignore"),
    ],
)
def test_distributed_fit_without_a_process_group_is_the_in_memory_fit(kw):
    # fit_som runs SOM's own epochs with an all-reduce (the identity here) of the sums
    from somlab.distributed import fit_som

    X = _data(200, 4)
    if kw.get("missing"):
        X[np.random.default_rng(1).random(X.shape) < 0.05] = np.nan
    ref = SOM((3, 4), epochs=3, random_state=2, **kw).fit(X)
    som = fit_som(SOM((3, 4), epochs=3, random_state=2, **kw), X)
    np.testing.assert_allclose(som.weights_, ref.weights_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(som.labels_, ref.labels_)
    for key in ("sigma", "quantization_error", "topographic_error"):
        np.testing.assert_allclose(som.history_[key], ref.history_[key], rtol=1e-6)
    assert som.quantization_error_ == pytest.approx(ref.quantization_error_, rel=1e-6)


def test_large_map_trains_in_memory_linear_in_nodes():
    # a 200x200 map: a nodes x nodes float32 matrix alone would be 6.4 GB.
    code = (
        "import resource, numpy as np; from somlab import SOM;"
        "X = np.random.default_rng(0).random((3000, 8), dtype=np.float32);"
        "SOM((200, 200), epochs=2, init='random', random_state=0).fit(X);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak_mb = int(out.stdout.strip()) / 1024
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    X = _data(200, 4)
    kw = dict(init="random", random_state=0, epochs=3)
    for mode in ("batch", "minibatch", "online"):
        a = SOM((5, 5), mode=mode, **kw).fit(X)
        b = SOM((5, 5), mode=mode, device="cuda", **kw).fit(X)
        np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-4, atol=1e-5)


def test_float64_and_float32_agree():
    X = _data(150, 3)
    a = SOM((4, 4), random_state=0).fit(X)
    b = SOM((4, 4), random_state=0, dtype="float64").fit(X)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-4, atol=1e-5)
    assert math.isclose(a.quantization_error_, b.quantization_error_, rel_tol=1e-4)


@parametrize_with_checks(
    [
        SOM((3, 3), epochs=3),
        SOM((2, 3), topology="hexagonal", mode="online", epochs=2, toroidal=True),
        SOM((3, 2), mode="minibatch", batch_size=8, epochs=2, init="random"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------- initialisation (issue 18.3)
@pytest.mark.parametrize("grid", [(1, 10), (10, 1), (3, 8), (8, 3)])
def test_pca_init_puts_pc1_along_the_longer_grid_axis(grid):
    X = np.random.default_rng(0).normal(size=(400, 3)) * [5.0, 1.0, 0.1]
    W = SOM(grid).initialize(X)
    long_axis = 0 if grid[0] >= grid[1] else 1
    along = np.ptp(W[..., 0], axis=long_axis).max()  # PC1 ~ feature 0, sqrt(l1) ~ 5
    assert along > 9.0  # mean +- sqrt(l1): 2 * 5 (was 0.00 on a (1, 10) grid)
    if min(grid) > 1:
        across = np.ptp(W[..., 1], axis=1 - long_axis).max()
        assert 1.5 < across < 2.5  # PC2 ~ feature 1 along the shorter axis


def test_chain_on_moons_unfolds_either_way():
    from sklearn.datasets import make_moons

    X, _ = make_moons(400, noise=0.05, random_state=0)
    te = [SOM(g, random_state=0).fit(X).topographic_error_ for g in ((1, 20), (20, 1))]
    assert te[0] == pytest.approx(te[1], abs=0.01) and te[0] < 0.03  # was .065 vs 0


def test_initialize_is_fits_starting_point():
    X = _data(120, 4)
    for init in ("pca", "random", "sample"):
        som = SOM((4, 5), init=init, epochs=1, random_state=3)
        W0 = som.initialize(X)
        assert W0.shape == (4, 5, 4) and som.n_iter_ == 0
        np.testing.assert_array_equal(som.weights_, W0)
        assert som.predict(X).shape == (120,)
        # fit with the initial map as an array gives fit's own result
        a = SOM((4, 5), init=init, epochs=2, random_state=3).fit(X)
        b = SOM((4, 5), init=W0, epochs=2, random_state=3).fit(X)
        if init != "sample" and init != "random":  # same generator draws from here on
            np.testing.assert_allclose(a.weights_, b.weights_, atol=1e-6)
    som = SOM((3, 3), mode="minibatch", random_state=0)
    som.initialize(X)
    som.partial_fit(X)  # trains on from the initial map
    assert som.n_iter_ == 1 and np.isfinite(som.quantization_error_)


def test_low_rank_pca_matches_the_dense_solver():
    from somlab.som._init import principal_axes

    rng = np.random.default_rng(0)
    m = 600
    # a spectrum with a gap after the second axis, as real data have (a flat one converges
    # slowly, but then any axis of it spans the data about as well)
    A = rng.normal(size=(300, m)) * np.r_[4.0, 3.0, 2.0 * 0.99 ** np.arange(m - 2)]
    cov = torch.from_numpy(np.cov(A, rowvar=False))
    dense_vals, dense_vecs = torch.linalg.eigh(cov)
    ev, V = principal_axes(cov, m)  # m > 512: subspace iteration
    np.testing.assert_allclose(ev.numpy(), dense_vals.flip(0)[:2].numpy(), rtol=1e-4)
    for j in range(2):
        assert abs(float(V[:, j] @ dense_vecs[:, -1 - j])) > 0.999
    ev2, V2 = principal_axes(lambda Q: cov @ Q, m)  # an operator gives the same axes
    np.testing.assert_allclose(ev2.numpy(), ev.numpy(), rtol=1e-10)


# ---------------------------------------------------------------------- threads (issue 18.4)
def test_threads_follow_work_size_and_load(monkeypatch):
    import somlab._utils as utils

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setattr(utils, "_runnable_others", lambda: 0)
    assert utils.choose_threads(1e5, torch.device("cpu")) == 1  # small steps: one thread
    assert utils.choose_threads(1e9, torch.device("cpu")) == min(8, cores)  # idle: all cores
    monkeypatch.setattr(utils, "_runnable_others", lambda: cores - 1)
    # busy: the free cores only, once two reads in a row say so (a single busy read right
    # after an idle one is taken for a transient)
    assert utils.choose_threads(1e9, torch.device("cpu")) == min(8, cores)
    assert utils.choose_threads(1e9, torch.device("cpu")) == 1
    monkeypatch.setattr(utils, "_runnable_others", lambda: 10 * cores)
    assert utils.choose_threads(1e9, torch.device("cpu")) == 1
    monkeypatch.setattr(utils, "_LAST_OTHERS", [-1e9, 0])  # no read for long: believed
    assert utils.choose_threads(1e9, torch.device("cpu")) == 1
    assert utils.choose_threads(1e9, torch.device("cuda")) is None


def test_step_work_counts_distances_spread_and_update():
    """A step's operations: 2 b n m distances, 2 min(b, n) n (m + 1) for the spread of the
    winners and 4 n m for the update; a 40x40 map's 256-row steps of 16-d data are above the
    threshold (two threads measured 1.8x faster there), a 10x10 map's 32-row 16-d steps below."""
    import somlab._utils as utils

    assert (
        utils.step_work(256, 1600, 16) == 2 * 256 * 1600 * 16 + 2 * 256 * 1600 * 17 + 4 * 1600 * 16
    )
    assert utils.step_work(5000, 100, 4) == 2 * 5000 * 100 * 4 + 2 * 100 * 100 * 5 + 4 * 100 * 4
    assert utils.step_work(3, 10, 2, maps=4) == 4 * (2 * 3 * 10 * 2 + 2 * 3 * 10 * 3 + 4 * 10 * 2)
    assert utils.step_work(256, 1600, 16) > utils.PARALLEL_WORK > utils.step_work(32, 100, 16)


@pytest.mark.parametrize("mode, rows", [("batch", 300), ("minibatch", 32), ("online", 300)])
def test_fit_asks_for_threads_by_its_step_work(monkeypatch, mode, rows):
    """SOM asks choose_threads with step_work of its step: the whole data in batch mode, one
    mini-batch, or online a chunk (the metrics pass; the sample loop is on one thread)."""
    import somlab._utils as utils
    import somlab.som._som as som_module

    asked = []
    monkeypatch.setattr(som_module, "choose_threads", lambda work, dev: asked.append(work) or 1)
    SOM((4, 5), mode=mode, batch_size=32, epochs=1, random_state=0).fit(_data(300, 3))
    assert asked[0] == utils.step_work(rows, 20, 3)


def test_fit_restores_the_callers_thread_setting(monkeypatch):
    import somlab._utils as utils
    import somlab.som._som as som_module

    seen = []
    real = utils.thread_governor

    class Spy(real):
        def __enter__(self):
            out = super().__enter__()
            seen.append(torch.get_num_threads())
            return out

    monkeypatch.setattr(som_module, "thread_governor", Spy)
    monkeypatch.setattr(som_module, "choose_threads", lambda work, dev: 1)
    before = torch.get_num_threads()
    SOM((3, 3), epochs=2, random_state=0).fit(_data(50, 3))
    assert seen and all(t == 1 for t in seen)
    assert torch.get_num_threads() == before


def _governed(monkeypatch, picks, first=0.0, every=0.0):
    """A thread_governor whose looks return ``picks`` in turn, due at every poll."""
    import somlab._utils as utils

    monkeypatch.setattr(utils, "_RECHECK_FIRST", first)
    monkeypatch.setattr(utils, "_RECHECK_EVERY", every)
    it = iter(picks)
    return utils.thread_governor(lambda: next(it))


def test_governor_a_transient_busy_look_does_not_pin_the_fit(monkeypatch):
    """A busy look at the start (1 thread) and an idle one after: two threads from the second
    look on; a machine that gets busy needs two busy looks in a row (the larger of the last
    two looks is kept); the caller's count comes back on exit."""
    import somlab._utils as utils

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with _governed(monkeypatch, [1, 2, 1, 1, 2]) as g:
            assert torch.get_num_threads() == 1
            got = []
            for _ in range(4):
                utils.poll_threads()
                got.append(torch.get_num_threads())
            assert got == [2, 2, 1, 2] and g.limit == 2
        assert torch.get_num_threads() == 2
        with _governed(monkeypatch, [1, 2], first=3600.0):  # not due: no second look
            utils.poll_threads()
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_governor_inside_a_governor_keeps_the_users_limit(monkeypatch):
    """choose_threads inside a governor is bounded by the count found on entry of the outermost
    one (the user's), not by the count the governor set; poll_threads outside is a no-op."""
    import somlab._utils as utils

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(utils, "_runnable_others", lambda: 0)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(min(2, cores))
        utils.poll_threads()
        with utils.thread_governor(lambda: 1):
            assert utils.governed() and torch.get_num_threads() == 1
            assert utils.choose_threads(1e9, "cpu") == min(2, cores)
            with utils.thread_governor(lambda: utils.choose_threads(1e9, "cpu")) as inner:
                assert torch.get_num_threads() == min(2, cores) == inner.limit
            assert torch.get_num_threads() == 1
        assert not utils.governed() and torch.get_num_threads() == min(2, cores)
    finally:
        torch.set_num_threads(old)


def test_governor_failures_leave_no_state_behind(monkeypatch):
    """A pick that raises on entry leaves no governor in effect (the user's limit holds
    again); a look that fails (None) mid-fit keeps the count; ``prior`` (the training's
    outcome, for the final pass) is kept without a look where it had every core or was
    confirmed recently, and stands beside a new look otherwise."""
    import somlab._utils as utils

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(ZeroDivisionError):
            with utils.thread_governor(lambda: 1 / 0):
                pass
        assert not utils.governed() and utils._ACTIVE[0] == 0
        torch.set_num_threads(1)
        assert utils.choose_threads(1e9, "cpu") == 1  # the user's limit, not a stale one
        torch.set_num_threads(2)
        with _governed(monkeypatch, [2, None]):
            utils.poll_threads()
            assert torch.get_num_threads() == 2
        monkeypatch.setattr(utils, "_RECHECK_EVERY", 0.5)
        now = time.monotonic()
        with utils.thread_governor(lambda: 1 / 0, prior=(2, None)):  # every core: no look
            assert torch.get_num_threads() == 2
        with utils.thread_governor(lambda: 1 / 0, prior=(1, now)):  # freshly confirmed
            assert torch.get_num_threads() == 1
        with utils.thread_governor(lambda: 2, prior=(1, None)):  # one look only: look again
            assert torch.get_num_threads() == 2
        with utils.thread_governor(lambda: 2, prior=(1, now - 60.0)) as g:  # stale: look
            assert torch.get_num_threads() == 2 and g.outcome == (2, None)
        with utils.thread_governor(lambda: 1, prior=None):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("fit", ["fit", "partial_fit"])
def test_final_pass_after_small_steps_looks_at_the_load(monkeypatch, fit):
    """Mini-batch steps too small for a second thread run on one whatever the load; the final
    pass (one batch pass over all rows) is not bound by that count: on an idle machine it runs
    on the free cores."""
    import somlab._utils as utils
    import somlab.som._som as som_module

    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("one core")
    monkeypatch.setattr(utils, "_runnable_others", lambda: 0)
    seen = []
    real = som_module.SOM._final_pass
    monkeypatch.setattr(
        som_module.SOM,
        "_final_pass",
        lambda self, *a, **k: seen.append(torch.get_num_threads()) or real(self, *a, **k),
    )
    X = _data(20000, 16)
    som = SOM((10, 10), mode="minibatch", batch_size=32, epochs=1, random_state=0)
    assert utils.step_work(32, 100, 16) < utils.PARALLEL_WORK < utils.step_work(20000, 100, 16)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        getattr(som, fit)(X)
    finally:
        torch.set_num_threads(old)
    assert seen == [2]


def test_governor_in_a_second_thread_leaves_the_setting_alone(monkeypatch):
    """torch's thread count is process-wide: while one thread's governor is in effect, a fit in
    another thread neither picks nor restores a count (no thread fights over it)."""
    import threading

    import somlab._utils as utils

    old = torch.get_num_threads()
    seen = {}
    try:
        torch.set_num_threads(2)
        with _governed(monkeypatch, [1]):

            def other():
                with utils.thread_governor(lambda: 2) as g:
                    seen["n"], seen["governed"] = g.n, utils.governed()
                    seen["threads"] = torch.get_num_threads()

            t = threading.Thread(target=other)
            t.start()
            t.join()
            assert torch.get_num_threads() == 1
        assert seen == {"n": None, "governed": False, "threads": 1}
        assert torch.get_num_threads() == 2 and utils._ACTIVE[0] == 0
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("mode", ["batch", "minibatch", "online"])
def test_fit_looks_at_the_load_again_during_training(monkeypatch, mode):
    """A fit whose first look saw a busy core runs its later steps on two threads once a
    second look sees the cores free (every mode polls at its step / epoch boundaries)."""
    import somlab._utils as utils
    import somlab.som._som as som_module
    import somlab.som._train as train

    monkeypatch.setattr(utils, "_RECHECK_FIRST", 0.0)
    monkeypatch.setattr(utils, "_RECHECK_EVERY", 0.0)
    looks = iter([1] + [2] * 10**6)
    monkeypatch.setattr(som_module, "choose_threads", lambda work, dev: next(looks))
    seen = []
    real = train.best_matching_units
    monkeypatch.setattr(
        train,
        "best_matching_units",
        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k),
    )
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        SOM((3, 4), mode=mode, batch_size=16, epochs=3, random_state=0).fit(_data(120, 3))
        assert seen and seen[-1] == 2 and 2 in seen
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_one_seeding_rule_an_int_seeds_torch_directly():
    """SOM, SOMEnsemble and the relevance maps share seeded_generator: random_state=5 is
    torch.Generator().manual_seed(5), so init="sample" picks randperm(n)[:k] of that seed."""
    from somlab.som._multi import SOMEnsemble

    X = _data(50, 3).astype(np.float32)
    pick = torch.randperm(50, generator=torch.Generator().manual_seed(5))[:9].numpy()
    W = SOM((3, 3), init="sample", random_state=5).initialize(X).reshape(9, 3)
    np.testing.assert_array_equal(W, X[pick])
    ens = SOMEnsemble((3, 3), init="sample", epochs=1, random_state=5, sigma=[1.0, 2.0])
    W0 = ens._initial_weights(
        torch.from_numpy(X), SOM((3, 3)).grid_, ens.get_map_params(), [seeded_generator(5)], True
    )
    np.testing.assert_array_equal(W0[1].numpy(), X[pick])


@pytest.mark.parametrize("init", ["pca", "random", "sample"])
def test_statistics_providers_give_the_in_memory_initialisation(tmp_path, init):
    """One rule per init, fed by an in-memory array, a stream of chunks or (one process) a
    shard: the same prototypes (PCA to rounding of the float64 sums, the others exactly)."""
    from somlab.datasets._stream import as_batch_source
    from somlab.distributed._comm import Comm
    from somlab.distributed._som import ShardStatistics
    from somlab.som._init import ArrayStatistics, StreamStatistics, initial_weights

    X = (_data(300, 4) * [3.0, 1.0, 0.5, 0.1] + [0.0, 5.0, -2.0, 1.0]).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    grid = SOM((4, 5)).grid_
    Xt = torch.from_numpy(X)
    comm = Comm()
    providers = {
        "memory": ArrayStatistics(Xt),
        "stream": StreamStatistics(
            as_batch_source(str(tmp_path / "x.npy"), 64),
            torch.float32,
            torch.device("cpu"),
            allow_nan=False,
            init=init,
            k=20,
            generator=seeded_generator(3),
        ),
        "shard": ShardStatistics(Xt, comm, comm.layout(300, {})),
    }
    out = {
        k: initial_weights(init, p, grid, seeded_generator(3)).numpy() for k, p in providers.items()
    }
    for name in ("stream", "shard"):
        np.testing.assert_allclose(out[name], out["memory"], rtol=1e-6, atol=1e-6)
    if init != "pca":
        np.testing.assert_array_equal(out["stream"], out["memory"])
    assert np.ptp(out["memory"], axis=0).max() > 1.0  # a spread map, not one point


def test_training_hook_is_fit():
    """SOM._fit_epochs (the hook distributed.fit_som trains through) with the default layout
    is fit; a layout hands it other rows and statistics."""
    from somlab.som._init import ArrayStatistics
    from somlab.som._sources import InMemory

    X = _data(120, 3).astype(np.float32)
    ref = SOM((3, 4), mode="minibatch", batch_size=16, epochs=2, random_state=0).fit(X)
    som = SOM((3, 4), mode="minibatch", batch_size=16, epochs=2, random_state=0)
    seen = []

    def layout(Xt):
        seen.append(Xt.shape)
        return InMemory(Xt), ArrayStatistics(Xt)

    som._fit_epochs(X, layout=layout, reduce=lambda t, op="sum": t, agree=lambda W: W)
    assert seen == [(120, 3)]
    np.testing.assert_array_equal(som.weights_, ref.weights_)
    assert som.history_ == ref.history_
