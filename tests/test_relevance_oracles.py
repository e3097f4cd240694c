"""LARFDSSOM, SS-SOM and Batch SS-SOM agree with the plain SPEC.md oracles in tests/oracles."""

import numpy as np
import pytest
from oracles import OracleBatchSSSOM, OracleSSSOM

import somlab.relevance._fit as fit_module
from somlab import LARFDSSOM, SSSOM, BatchSSSOM
from somlab.relevance._fit import EngineFallbackWarning

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


@pytest.fixture(params=["torch", "compiled"])
def engine(request):
    """Run the tests on the tensorized engine and on the compiled one (the ``engine`` parameter,
    as scikit-learn's KMeans tests run over ``algorithm``)."""
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
    model = SSSOM(**params, random_state=seed, engine=engine).fit(X, y)
    oracle = OracleSSSOM(**_oracle_kw(params, seed)).fit(X, y)
    _assert_same(model, oracle, X)


def test_single_class_and_events_happen(engine):
    X, y, _ = _data(3, frac=1.0, n_classes=1)
    model = SSSOM(**BASE, random_state=3, engine=engine).fit(X, y)
    oracle = OracleSSSOM(**_oracle_kw(BASE, 3)).fit(X, y)
    _assert_same(model, oracle, X)
    params = {**BASE, "lp": 0.15}
    X, y, _ = _data(4, frac=0.5)
    model = SSSOM(**params, random_state=4, engine=engine).fit(X, y)
    oracle = OracleSSSOM(**_oracle_kw(params, 4)).fit(X, y)
    _assert_same(model, oracle, X)
    kinds = {e["kind"] for e in oracle.events_}
    assert {"insert", "remove", "push"} <= kinds  # the comparison covers structure changes
    assert model.history_["removed"] > 0 and model.history_["inserted"] > model.n_nodes_


@pytest.mark.parametrize("seed", [0, 2])
def test_larfdssom_matches_oracle(seed, engine):
    X, _, _ = _data(seed)
    model = LARFDSSOM(**BASE, random_state=seed, engine=engine).fit(X)
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
    compiled_ok = flags.get("capacity") != "all_or_nothing" and "labelled_conflict" not in flags
    if engine == "compiled" and not compiled_ok:  # a clear error, or auto's named fallback
        with pytest.raises(ValueError, match="engine='compiled' cannot run"):
            BatchSSSOM(**params, random_state=seed, engine="compiled").fit(X, y)
        with pytest.warns(EngineFallbackWarning, match="capacity|labelled_conflict"):
            model = BatchSSSOM(**params, random_state=seed, engine="auto").fit(X, y)
    else:
        model = BatchSSSOM(**params, random_state=seed, engine=engine).fit(X, y)
    bs = params.pop("batch_size")
    oracle_flags = {k: params.pop(k) for k in list(params) if k not in BASE}
    oracle = OracleBatchSSSOM(**_oracle_kw(params, seed), batch_size=bs, **oracle_flags)
    oracle.fit(X, y)
    _assert_same(model, oracle, X)


@pytest.mark.parametrize("seed", [0, 5])
def test_batch_of_one_equals_sssom(seed, engine):
    X, y, _ = _data(seed, frac=0.4)
    a = BatchSSSOM(**BASE, batch_size=1, random_state=seed, engine=engine).fit(X, y)
    b = SSSOM(**BASE, random_state=seed, engine=engine).fit(X, y)
    for name in ("prototypes_", "relevances_", "distance_averages_", "adjacency_", "node_wins_"):
        # one kernel: bit for bit
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.history_ == b.history_
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    # and the two engines agree at B = 1 (to float rounding, structure exactly)
    c = SSSOM(**BASE, random_state=seed, engine="torch").fit(X, y)
    assert c.n_nodes_ == a.n_nodes_
    np.testing.assert_allclose(c.prototypes_, a.prototypes_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(c.adjacency_, a.adjacency_)
    np.testing.assert_array_equal(c.predict(X), a.predict(X))


def test_allow_lists_cover_flags():
    """Every FLAGS value is implemented by some engine; a new one no engine lists fails."""
    fit_module.check_allow_lists()
    flags = {**fit_module.FLAGS, "distance": (*fit_module.FLAGS["distance"], "new_metric")}
    with pytest.raises(ImportError, match="no engine implements distance='new_metric'"):
        fit_module.check_allow_lists(flags=flags)
    flags = {**fit_module.FLAGS, "new_flag": ("a", "b")}
    with pytest.raises(ImportError, match="missing \\['new_flag'\\]"):
        fit_module.check_allow_lists(flags=flags)


def test_engine_parameter_is_validated():
    X, y, _ = _data(0)
    with pytest.raises(ValueError, match="engine"):
        SSSOM(engine="numba").fit(X, y)
    assert SSSOM().get_params()["engine"] == "auto"
    with pytest.raises(ValueError, match="distance='reference'"):
        SSSOM(**BASE, distance="reference", engine="compiled").fit(X, y)
    with pytest.warns(EngineFallbackWarning, match="distance='reference'"):
        m = SSSOM(**BASE, distance="reference", random_state=0).fit(X, y)
    assert m.n_nodes_ >= 1
