"""Issue 16 item 3: the Python around the compiled kernel does each step once per fit (the
checks of X and y, the decision rule), and small products run on one BLAS thread."""

import warnings

import numpy as np
import pytest

from somlab import LARFDSSOM, SSSOM, BatchSSSOM
from somlab._errors import DataError
from somlab.core import distances
from somlab.relevance import _auto, _base

#: a non-default Table I setting: the decision is the paper's rule ("map")
PAPER = dict(at=0.95, lp=0.01, epochs=3, random_state=0)


def _data(n=150, m=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    X = np.clip(rng.random((3, m))[y] + 0.07 * rng.standard_normal((n, m)), 0, 1)
    semi = y.copy()
    semi[rng.random(n) > 0.3] = -1
    return X, semi


def _count_calls(monkeypatch, owner, name):
    calls = []
    real = getattr(owner, name)

    def spy(*a, **k):
        calls.append(name)
        return real(*a, **k)

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.mark.parametrize("cls", [SSSOM, BatchSSSOM, LARFDSSOM])
def test_fit_checks_X_and_y_once(cls, monkeypatch):
    X, y = _data()
    cx = _count_calls(monkeypatch, _base.RelevanceMapBase, "_check_X")
    cy = _count_calls(monkeypatch, _base.RelevanceMapBase, "_split_labels")
    m = cls(**PAPER).fit(X, y)
    assert len(cx) == 1 and len(cy) == 1
    assert "_checked" not in m.__dict__  # the hand-over does not stay on the model
    if cls is LARFDSSOM:
        np.testing.assert_array_equal(m.labels_, m.predict(X))


@pytest.mark.parametrize("cls", [SSSOM, BatchSSSOM])
def test_paper_rule_fit_does_no_decision_work(cls, monkeypatch):
    """Explicit settings give the paper's rule: no kNN graph, no node distributions in fit;
    predict_proba computes them on request and agrees with predict."""
    X, y = _data()

    def boom(*a, **k):
        raise AssertionError("computed during fit")

    with monkeypatch.context() as mp:
        for name in ("spread_graph", "_spread", "node_scores", "knn_scores"):
            mp.setattr(_auto, name, boom)
        m = cls(**PAPER).fit(X, y)
    assert m.decision_ == "map" and "node_scores_" not in m.__dict__
    P = m.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1.0)
    pred = m.predict(X)
    has = pred != -1
    np.testing.assert_array_equal(m.classes_[P.argmax(1)][has], pred[has])
    assert "node_scores_" not in m.__dict__  # predict_proba changes nothing on the model


def test_refit_to_paper_rule_drops_old_node_scores():
    X, y = _data()
    m = SSSOM(random_state=0, epochs=3, decision="vote")
    m.fit(X, y)
    assert m.decision_ == "vote" and "node_scores_" in m.__dict__
    m.set_params(decision="auto").fit(X, y)
    assert m.decision_ == "map" and "node_scores_" not in m.__dict__


def test_plain_array_fast_path_keeps_sklearn_checks():
    X, y = _data()
    m = SSSOM(**PAPER).fit(X, y)
    assert m.n_features_in_ == X.shape[1] and not hasattr(m, "feature_names_in_")
    with pytest.raises(DataError, match="features"):
        m.predict(X[:, :3])
    pd = pytest.importorskip("pandas")
    mf = SSSOM(**PAPER).fit(pd.DataFrame(X, columns=list("abcd")), y)
    with pytest.warns(UserWarning, match="feature names"):
        mf.predict(X)
    mf.fit(X, y)  # refit on an array forgets the names
    assert not hasattr(mf, "feature_names_in_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf.predict(X)


def _blas_threads():
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_serial_blas_limits_small_work_only():
    before = _blas_threads()
    with distances.serial_blas(distances.SERIAL_BLAS_WORK / 10):
        assert _blas_threads() == {1}
    assert _blas_threads() == before
    with distances.serial_blas(distances.SERIAL_BLAS_WORK):
        assert _blas_threads() == before


def test_sq_euclidean_np_unchanged_by_the_thread_limit():
    rng = np.random.default_rng(3)
    A, B = rng.random((50, 6)) + 100.0, rng.random((70, 6)) + 100.0
    D = distances.sq_euclidean_np(A, B)
    ref = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- review fixes (stop 20)
def test_spread_rows_do_not_share_the_callers_memory():
    from sklearn.datasets import load_wine

    from somlab import SSSOM

    X, y = load_wine(return_X_y=True)
    X32 = np.ascontiguousarray((X - X.mean(0)) / X.std(0), dtype=np.float32)
    Xq = X32[:5].copy()
    m = SSSOM(random_state=0).fit(X32, y)
    before = m.predict_proba(Xq)
    assert not np.shares_memory(m.spread_X_, X32)
    X32[:] = 0
    np.testing.assert_array_equal(m.predict_proba(Xq), before)


def test_unlabelled_refit_drops_the_supervised_decision_state(tmp_path):
    from sklearn.datasets import load_wine

    import somlab
    from somlab import SSSOM

    X, y = load_wine(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    s = SSSOM(random_state=0).fit(X, y)
    assert hasattr(s, "spread_X_")
    s.fit(X[:, :5])
    for name in ("labelled_X_", "labelled_y_", "spread_X_", "spread_scores_", "node_scores_"):
        assert not hasattr(s, name), name
    r = somlab.load(s.save(tmp_path / "m.somlab"))
    np.testing.assert_array_equal(r.predict(X[:, :5]), s.predict(X[:, :5]))


def test_serial_blas_restores_the_thread_limit_after_overlapping_threads():
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    from somlab.core.distances import sq_euclidean_np

    def blas():
        return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    before = blas()
    rng = np.random.default_rng(0)
    A, B = rng.random((50, 8)), rng.random((40, 8))

    def work(_):
        for _ in range(300):
            sq_euclidean_np(A, B)

    with ThreadPoolExecutor(8) as ex:
        list(ex.map(work, range(8)))
    assert blas() == before


def test_torch_ensemble_merges_every_default_map_as_its_own_fit():
    from sklearn.datasets import load_wine

    from somlab import BatchSSSOM, BatchSSSOMEnsemble

    X = load_wine(return_X_y=True)[0]
    X = ((X - X.mean(0)) / X.std(0))[::2]
    ens = BatchSSSOMEnsemble(random_state=[0, 1], engine="torch").fit(X)
    for k, m in enumerate(ens.models_):
        assert hasattr(m, "node_clusters_")
        single = BatchSSSOM(random_state=k, engine="torch").fit(X)
        np.testing.assert_array_equal(m.predict_cluster(X), single.predict_cluster(X))
