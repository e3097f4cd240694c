"""Traps of issue 17: data far from zero, tiny and huge scales, memory, divergence.

Every distance path (SOM in its three modes, SOMEnsemble, streamed and distributed fits, the
metrics) is checked against a float64 ``scipy.spatial.distance.cdist`` oracle on the data the
model sees (the float32 cast of the input for a float32 model).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

import somlab
from somlab import SOM, SOMEnsemble
from somlab._errors import DataError
from somlab.core.distances import best_matching_units, pairwise_distances
from somlab.metrics import quantization_error

# (offset, scale): U(0, 1) * scale + offset, as pressures in hPa, years, tiny and huge units
SHIFTS = [(1000.0, 1.0), (1e5, 1.0), (0.0, 1e-21), (0.0, 1e20), (-3000.0, 1.0)]


def _data(offset, scale, n=300, m=3, seed=0):
    return np.random.default_rng(seed).random((n, m)) * scale + offset


def _seen(X, dtype="float32"):
    """The data a model of ``dtype`` computes on, in float64 for the oracle."""
    return X.astype(np.float32).astype(np.float64) if dtype == "float32" else X


def _check_winners(Xs, W, winners, qe, rtol=1e-5):
    """``winners`` are exact nearest nodes of ``Xs`` up to float32 near-ties and ``qe`` is the
    exact quantization error of ``W``."""
    D = cdist(Xs, W.reshape(-1, Xs.shape[1]).astype(np.float64))
    best = D.min(1)
    got = D[np.arange(len(Xs)), winners]
    spread = np.ptp(Xs, 0).max()
    # a winner may differ from the exact one only where the two distances tie within float32
    assert np.all(got <= best + rtol * spread), np.max((got - best) / spread)
    assert np.mean(got == best) > 0.97
    np.testing.assert_allclose(qe, best.mean(), rtol=rtol)


@pytest.mark.parametrize("offset,scale", SHIFTS)
@pytest.mark.parametrize("mode", ["batch", "minibatch", "online"])
def test_som_exact_far_from_zero_and_scaled(offset, scale, mode):
    X = _data(offset, scale)
    som = SOM((6, 6), mode=mode, epochs=5, random_state=0).fit(X)
    Xs = _seen(X)
    _check_winners(Xs, som.weights_, som.predict(X), som.quantization_error_)
    _check_winners(Xs, som.weights_, som.labels_, som.quantization_error(X))
    # the metric and the model agree
    np.testing.assert_allclose(
        quantization_error(Xs, som.weights_), som.quantization_error_, rtol=1e-5
    )
    # the map is trained as on centred data: same quality as on U(0, 1)
    ref = SOM((6, 6), mode=mode, epochs=5, random_state=0).fit(_data(0.0, 1.0))
    assert som.quantization_error_ / scale < 1.2 * ref.quantization_error_


def test_issue_reproducer_qe_agrees():
    X = np.random.default_rng(0).random((300, 3)) + 1000
    m = SOM((6, 6), random_state=0).fit(X)
    true = quantization_error(_seen(X), m.weights_)
    assert true > 0.1  # the expansion gave 0.0071 against a true 0.300
    np.testing.assert_allclose(m.quantization_error_, true, rtol=1e-5)
    np.testing.assert_allclose(quantization_error(X, m.weights_), true, rtol=1e-4)


@pytest.mark.parametrize("offset,scale", [(1000.0, 1.0), (0.0, 1e-21), (0.0, 1e20)])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_kernel_against_cdist(offset, scale, metric):
    if metric == "sqeuclidean" and scale > 1e19:
        pytest.skip("squared distances of 1e20 exceed float32 (the estimators refuse such data)")
    rng = np.random.default_rng(1)
    X = (rng.random((500, 5)) * scale + offset).astype(np.float32)
    W = (rng.random((40, 5)) * scale + offset).astype(np.float32)
    D = cdist(X.astype(np.float64), W.astype(np.float64))
    if metric == "sqeuclidean":
        D = D * D
    got = pairwise_distances(torch.from_numpy(X), torch.from_numpy(W), metric).double().numpy()
    # float32 holds 1e-42 (a squared 1e-21) only as a subnormal, to within 1.4e-45
    np.testing.assert_allclose(got, D, rtol=2e-3, atol=1e-5 * D.max() + 1.5e-45)
    idx, dist = best_matching_units(torch.from_numpy(X), torch.from_numpy(W), metric, k=2)
    np.testing.assert_allclose(dist[:, 0].double().numpy(), D.min(1), rtol=1e-5, atol=1.5e-45)
    assert np.mean(idx[:, 0].numpy() == D.argmin(1)) > 0.99


def test_kernel_missing_values_far_from_zero():
    rng = np.random.default_rng(2)
    X = (rng.random((200, 4)) + 1000).astype(np.float32)
    X[::3, 1] = np.nan
    W = (rng.random((25, 4)) + 1000).astype(np.float32)
    obs = ~np.isnan(X)
    D = np.sqrt(np.nansum((X[:, None, :].astype(np.float64) - W[None].astype(np.float64)) ** 2, -1))
    got = pairwise_distances(torch.from_numpy(X), torch.from_numpy(W), missing=True).numpy()
    np.testing.assert_allclose(got, D, rtol=1e-3, atol=1e-4)
    idx, dist = best_matching_units(torch.from_numpy(X), torch.from_numpy(W), missing=True)
    np.testing.assert_allclose(dist[:, 0].numpy(), D.min(1), rtol=1e-5)
    assert obs.sum() > 0


def test_cosine_tiny_scale():
    rng = np.random.default_rng(3)
    X = rng.random((100, 4)) * 1e-21
    W = rng.random((9, 4)) * 1e-21
    D = cdist(X, W, "cosine")
    got = pairwise_distances(torch.from_numpy(X).float(), torch.from_numpy(W).float(), "cosine")
    np.testing.assert_allclose(got.double().numpy(), D, atol=1e-5)


@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_ensemble_far_from_zero(mode):
    X = _data(1000.0, 1.0)
    ens = SOMEnsemble((5, 5), sigma=[2.0, 1.0], mode=mode, epochs=4, random_state=0).fit(X)
    for k in range(2):
        _check_winners(_seen(X), ens.weights_[k], ens.labels_[k], ens.quantization_error_[k])
    single = SOM(**ens.get_map_params()[1]).fit(X)
    np.testing.assert_array_equal(single.labels_, ens.labels_[1])
    np.testing.assert_allclose(single.weights_, ens.weights_[1], rtol=1e-6)


def test_streamed_far_from_zero(tmp_path):
    X = _data(1e5, 1.0, n=400).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    a = SOM((5, 5), random_state=0, chunk_size=64).fit(str(path))
    b = SOM((5, 5), random_state=0).fit(X)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    _check_winners(X.astype(np.float64), a.weights_, a.labels_, a.quantization_error_)


def test_timestamps_in_float64():
    X = np.random.default_rng(0).random((300, 2)) * 100 + 1.7e9
    with pytest.raises(DataError, match="dtype='float64'"):
        SOM((5, 5)).fit(X)  # float32 keeps values 128 apart: refused, not silently collapsed
    som = SOM((5, 5), dtype="float64", random_state=0).fit(X)
    D = cdist(X, som.weights_.reshape(-1, 2))
    np.testing.assert_array_equal(som.predict(X), D.argmin(1))
    np.testing.assert_allclose(som.quantization_error_, D.min(1).mean(), rtol=1e-9)
    assert som.quantization_error_ > 1.0  # a real map of the spread, not 0.0


# ---------------------------------------------------------------------- silent divergence
@pytest.mark.parametrize("mode", ["minibatch", "online"])
def test_exploding_finite_map_is_refused_with_a_warning_first(mode):
    X = np.random.default_rng(0).random((300, 3))
    with pytest.warns(RuntimeWarning, match="learning_rate=50 > 2"):
        with pytest.raises(DataError, match="training diverged.*lower learning_rate"):
            SOM((6, 6), mode=mode, learning_rate=50, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sane rate says nothing
        SOM((6, 6), mode=mode, learning_rate=1.0, epochs=2, random_state=0).fit(X)


def test_metrics_refuse_nan_weights():
    X = np.random.default_rng(0).random((20, 3))
    W = np.zeros((2, 2, 3))
    W[0, 1, 2] = np.nan
    with pytest.raises(DataError, match="weights contain NaN or inf"):
        quantization_error(X, W)
    with pytest.raises(DataError, match="weights contain NaN or inf"):
        somlab.metrics.topographic_error(X, W)


def test_dcsomrl_collapse_warns(one_torch_thread):
    rng = np.random.default_rng(0)
    X = np.clip((rng.random((4, 20)) > 0.5)[rng.integers(0, 4, 160)] * 0.8 + 0.1, 0, 1)
    kw = dict(hidden=(16,), n_latent=3, pretrain_epochs=2, epochs=2, batch_size=32)
    with pytest.warns(RuntimeWarning, match="DCSOMRL training diverged or collapsed"):
        somlab.DCSOMRL(**kw, learning_rate=1e6, random_state=0).fit(X.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default rate trains quietly
        somlab.DCSOMRL(**kw, random_state=0).fit(X.astype(np.float32))


# ---------------------------------------------------------------------- memory, fail-fast
def test_huge_map_is_refused_at_once_with_the_size_and_the_way_out():
    X = np.random.default_rng(0).random((60, 50))
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"SOM.fit would need about .*GiB.*smaller map"):
        SOM((10000, 10000)).fit(X)
    with pytest.raises(DataError, match="init='sample'"):  # a DataError too, for the CLI
        SOM((10000, 10000)).partial_fit(X)
    with pytest.raises(MemoryError, match="x 3 maps"):
        SOMEnsemble((10000, 10000), sigma=[1.0, 2.0, 3.0]).fit(X)
    assert time.perf_counter() - t0 < 1.0


def test_memory_check_uses_the_free_memory(monkeypatch, tmp_path):
    import somlab.som._checks as som_module

    X = np.random.default_rng(0).random((200, 8))
    monkeypatch.setattr(som_module, "available_memory", lambda dev: 1 << 20)  # 1 MiB
    with pytest.raises(MemoryError, match="1.0 MiB free on cpu"):
        SOM((40, 40)).fit(X)
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(MemoryError, match="smaller chunk_size"):
        SOM((2, 2), init="sample", chunk_size=10**6).fit(tmp_path / "x.npy")
    monkeypatch.setattr(som_module, "available_memory", lambda dev: None)  # unknown: no check
    SOM((4, 4), epochs=1).fit(X)


def test_fit_memory_estimate_grows_with_the_shapes():
    from somlab.som._som import fit_memory

    small = fit_memory(100, 4, 100)
    assert fit_memory(100, 4, 10_000)["prototypes"] == 100 * small["prototypes"]
    assert fit_memory(10**6, 4, 100)["data"] == 10**4 * small["data"]
    big = fit_memory(60, 4, 10**8)
    assert big["prototypes"] >= 10**8 * 4 * 4 * 5  # five maps' worth of float32
    assert fit_memory(60, 4, 10**8, init="sample")["init"] == 0


def test_wide_pca_init_is_low_rank_and_fast():
    rng = np.random.default_rng(0)
    X = rng.random((5, 20_000))
    t0 = time.perf_counter()
    W = SOM((3, 3)).initialize(X)
    assert time.perf_counter() - t0 < 10  # a 20,000^2 covariance took 60 s and 6.4 GB
    # the two axes match the exact principal components (SVD of the centred data)
    Xc = X - X.mean(0)
    _, sv, Vt = np.linalg.svd(Xc, full_matrices=False)
    W = W.reshape(-1, X.shape[1]).astype(np.float64)
    axis1 = W[6] - W[0]  # rows: PC1 (first column, bottom minus top)
    axis2 = W[2] - W[0]  # columns: PC2
    np.testing.assert_allclose(np.linalg.norm(axis1), 2 * sv[0] / 2, rtol=1e-3)  # 2 sqrt(l1)
    assert abs(axis1 @ Vt[0]) / np.linalg.norm(axis1) > 0.999
    assert abs(axis2 @ Vt[1]) / np.linalg.norm(axis2) > 0.999


@pytest.mark.parametrize("mode", ["online", "minibatch"])
def test_small_init_far_from_the_data_is_not_divergence(mode):
    """A MiniSom-style init in [-1, 1] for data of scale 1e5: the map grows 1e4-fold towards
    the data at learning_rate 0.5, which is convergence, not divergence."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 3)) * 1e5
    init = rng.random((5, 5, 3)) * 2 - 1
    m = SOM((5, 5), mode=mode, init=init, learning_rate=0.5, epochs=3, random_state=0).fit(X)
    assert np.isfinite(m.quantization_error_) and m.quantization_error_ < 1e5


def test_a_near_constant_float64_feature_beside_wide_ones_trains():
    """Noise of 1e-9 around 0.3 is below float32's spacing, but beside features of spread ~0.3
    it weighs nothing in the distances: trained, not refused (timestamps still are)."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 3))
    X[:, 2] = 0.3 + rng.normal(0, 1e-9, 300)
    m = SOM((3, 3), epochs=2, random_state=0).fit(X)
    assert np.isfinite(m.quantization_error_)
    X[:, 0] = 1.7e9 + rng.random(300) * 100  # a feature the cast would erase: still refused
    with pytest.raises(DataError, match="feature 0 .*cannot be held in float32"):
        SOM((3, 3)).fit(X)
