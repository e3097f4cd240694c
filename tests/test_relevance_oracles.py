"""LARFDSSOM, SS-SOM and Batch SS-SOM agree with the plain SPEC.md oracles in tests/oracles."""

import numpy as np
import pytest
from oracles import OracleBatchSSSOM, OracleSSSOM

import somlab.relevance._fit as fit_module
from somlab import LARFDSSOM, SSSOM, BatchSSSOM

BASE = dict(
    at=0.9,
    lp=0.05,
    beta=0.3,
    age_wins=1.5,
    eb=0.1,
    en=0.3,
    s=0.05,
    minwd=0.6,
    epochs=3,
    epush=0.4,
    max_nodes=12,
)


@pytest.fixture(params=["torch", "auto"])
def engine(request, monkeypatch):
    """Run the tests on the tensorized engine and on the compiled ones (numba)."""
    if request.param == "auto" and not fit_module._online_numba.available():
        pytest.skip("numba is not installed")
    monkeypatch.setattr(fit_module, "ONLINE_ENGINE", request.param)
    return request.param


def _data(seed, n=60, m=4, n_classes=3, frac=0.5):
    rng = np.random.default_rng(seed)
    centres = rng.random((n_classes, m))
    y = rng.integers(0, n_classes, n)
    X = np.clip(centres[y] + rng.normal(0, 0.12, (n, m)), 0, 1).astype(np.float32)
    lab = rng.random(n) < frac
    return X, np.where(lab, y, -1), y


def _assert_same(model, oracle, X):
    assert model.n_nodes_ == oracle.n_nodes_
    np.testing.assert_allclose(model.prototypes_, oracle.prototypes_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(model.relevances_, oracle.relevances_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(model.adjacency_, oracle.adjacency_)
    np.testing.assert_array_equal(model.node_classes_, oracle.classes_)
    np.testing.assert_array_equal(model.predict(X), oracle.predict(X))
    np.testing.assert_array_equal(model.predict_cluster(X), oracle.predict_cluster(X))


def _oracle_kw(params, seed):
    kw = dict(params)
    kw["seed"] = seed
    return kw


ONLINE_CASES = [
    ({}, 0.5),
    ({}, 0.0),  # all unlabelled
    ({}, 1.0),  # all labelled
    ({"distance": "weighted_sq", "count_all_wins": True, "init": "random"}, 0.0),
    ({"sampling": "replacement", "label_fallback": "within_at", "filter_noise": True}, 0.3),
    ({"connection_refresh": "always", "conn_metric": "sq"}, 0.5),
    ({"convergence": "none", "max_nodes": 5}, 0.5),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("flags,frac", ONLINE_CASES)
def test_sssom_matches_oracle(seed, flags, frac, engine):
    X, y, _ = _data(seed, frac=frac)
    params = {**BASE, **flags}
    model = SSSOM(**params, random_state=seed).fit(X, y)
    oracle = OracleSSSOM(**_oracle_kw(params, seed)).fit(X, y)
    _assert_same(model, oracle, X)


def test_single_class_and_events_happen(engine):
    X, y, _ = _data(3, frac=1.0, n_classes=1)
    model = SSSOM(**BASE, random_state=3).fit(X, y)
    oracle = OracleSSSOM(**_oracle_kw(BASE, 3)).fit(X, y)
    _assert_same(model, oracle, X)
    params = {**BASE, "lp": 0.15}
    X, y, _ = _data(4, frac=0.5)
    model = SSSOM(**params, random_state=4).fit(X, y)
    oracle = OracleSSSOM(**_oracle_kw(params, 4)).fit(X, y)
    _assert_same(model, oracle, X)
    kinds = {e["kind"] for e in oracle.events_}
    assert {"insert", "remove", "push"} <= kinds  # the comparison covers structure changes
    assert model.history_["removed"] > 0 and model.history_["inserted"] > model.n_nodes_


@pytest.mark.parametrize("seed", [0, 2])
def test_larfdssom_matches_oracle(seed, engine):
    X, _, _ = _data(seed)
    model = LARFDSSOM(**BASE, random_state=seed).fit(X)
    oracle = OracleSSSOM(**_oracle_kw(BASE, seed), filter_noise=True).fit(X)
    _assert_same(model, oracle, X)
    np.testing.assert_array_equal(model.labels_, oracle.predict(X))


BATCH_CASES = [
    {},
    {"batch_size": 7},
    {"batch_size": 16, "capacity": "all_or_nothing"},
    {"batch_size": 8, "unsup_insert": "per_sample", "conflict_update": "per_sample"},
    {"batch_size": 8, "count_unit": "batch", "clone_wins": "copy"},
    {"batch_size": 8, "labelled_conflict": "clone"},
    {"batch_size": 8, "connection_refresh": "always", "max_nodes": 6},
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("flags", BATCH_CASES)
@pytest.mark.parametrize("frac", [0.0, 0.5, 1.0])
def test_batch_sssom_matches_oracle(seed, flags, frac, engine):
    X, y, _ = _data(seed, frac=frac)
    params = {**BASE, "batch_size": 32, **flags}
    model = BatchSSSOM(**params, random_state=seed).fit(X, y)
    if engine == "auto":  # the compiled engine where it implements the flags
        p = model._effective(len(X))
        assert fit_module._batch_numba.supports(p) == (
            flags.get("capacity") != "all_or_nothing" and "labelled_conflict" not in flags
        )
    bs = params.pop("batch_size")
    oracle_flags = {k: params.pop(k) for k in list(params) if k not in BASE}
    oracle = OracleBatchSSSOM(**_oracle_kw(params, seed), batch_size=bs, **oracle_flags)
    oracle.fit(X, y)
    _assert_same(model, oracle, X)


@pytest.mark.parametrize("seed", [0, 5])
def test_batch_of_one_equals_sssom(seed, monkeypatch):
    X, y, _ = _data(seed, frac=0.4)
    monkeypatch.setattr(fit_module, "ONLINE_ENGINE", "torch")
    a = BatchSSSOM(**BASE, batch_size=1, random_state=seed).fit(X, y)
    b = SSSOM(**BASE, random_state=seed).fit(X, y)
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)  # one kernel: bit for bit
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    if fit_module._online_numba.available():  # SSSOM as shipped (compiled engine)
        monkeypatch.setattr(fit_module, "ONLINE_ENGINE", "auto")
        c = SSSOM(**BASE, random_state=seed).fit(X, y)
        assert c.n_nodes_ == a.n_nodes_
        np.testing.assert_allclose(c.prototypes_, a.prototypes_, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(c.predict(X), a.predict(X))
