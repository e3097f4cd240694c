"""The compiled engine at batch size 1 (SPEC.md §2) agrees with the plain oracle OracleSSSOM.

Structure must be identical (number of nodes, node classes, adjacency, history counters) and
prototypes / relevances agree to 1e-5; predictions computed from the returned arrays (loaded into
an SSSOM / LARFDSSOM estimator) equal the oracle's.
"""

import warnings

import numpy as np
import pytest
import torch
from oracles import OracleSSSOM

from somlab import LARFDSSOM, SSSOM
from somlab._utils import seeded_generator
from somlab.relevance import _compiled as online
from somlab.relevance._multi_engine import MultiEngine

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
ORACLE_FLAGS = (
    "distance",
    "conn_metric",
    "connection_refresh",
    "convergence",
    "label_fallback",
    "filter_noise",
    "count_all_wins",
    "init",
    "sampling",
)


def _data(seed, n=60, m=4, n_classes=3, frac=0.5):
    rng = np.random.default_rng(seed)
    centres = rng.random((n_classes, m))
    y = rng.integers(0, n_classes, n)
    X = np.clip(centres[y] + rng.normal(0, 0.12, (n, m)), 0, 1).astype(np.float32)
    lab = rng.random(n) < frac
    return X, np.where(lab, y, -1)


def _fit_online(cls, params, seed, X, y):
    """Run the compiled engine the way fit_relevance_map would and store the map in ``cls``."""
    est = cls(**params, random_state=seed)
    Xn, y_idx, _ = est._prepare_fit(X, y)
    p = est._effective(Xn.shape[0])
    p["n_classes"] = len(est.classes_)
    p["batch_size"] = 1
    out = online.run(Xn, y_idx, p, seeded_generator(seed))
    est._store_map(out, out["history"])
    return est, out, y_idx


def _oracle(params, seed, X, y_idx):
    kw = {k: v for k, v in params.items() if k in BASE or k in ORACLE_FLAGS}
    return OracleSSSOM(**kw, seed=seed).fit(X, y_idx)


def _assert_agree(est, out, oracle, X):
    K = oracle.n_nodes_
    assert out["C"].shape == (K, X.shape[1]) and out["omega"].dtype == np.float32
    assert out["wins"].dtype == np.int64 and out["adj"].dtype == np.bool_
    np.testing.assert_array_equal(out["classes"], oracle.classes_)
    np.testing.assert_array_equal(out["adj"], oracle.adjacency_)
    np.testing.assert_array_equal(out["wins"], oracle.wins_)
    np.testing.assert_allclose(out["C"], oracle.prototypes_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["omega"], oracle.relevances_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["delta"], oracle.deltas_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(est.predict(X), oracle.predict(X))
    np.testing.assert_array_equal(est.predict_cluster(X), oracle.predict_cluster(X))
    ev = oracle.events_
    h = out["history"]
    assert h["inserted"] == sum(e["kind"] == "insert" and e["source"] != "init_random" for e in ev)
    assert h["removed"] == sum(len(e["nodes"]) for e in ev if e["kind"] == "remove")
    assert h["windows"] == sum(e["kind"] == "window" for e in ev)
    assert h["n_nodes"][-1] == K
    assert h["presented"] == len(oracle.presented_)


CASES = [  # (flags, labelled fraction, data shape)
    ({}, 0.5),
    ({}, 0.0),  # all unlabelled
    ({}, 1.0),  # all labelled
    ({"lp": 0.15}, 0.5),  # removals
    ({"distance": "weighted_sq", "count_all_wins": True, "init": "random"}, 0.0),
    ({"sampling": "replacement", "label_fallback": "within_at", "filter_noise": True}, 0.3),
    ({"connection_refresh": "always", "conn_metric": "sq"}, 0.5),
    ({"convergence": "none", "max_nodes": 5}, 0.5),
    ({"at": 0.95, "max_nodes": 7, "epochs": 4}, 0.7),  # capacity reached, conflicts
    ({"init": "random", "sampling": "replacement", "age_wins": 0.7, "lp": 0.1}, 0.5),
    ({"minwd": 1.2}, 0.5),  # many neighbour pulls
    ({"minwd": 1.5, "at": 0.95, "max_nodes": 30}, 0.5, dict(m=8, n=80)),  # up to 25 nodes
    ({"minwd": 1.0, "at": 0.93, "max_nodes": 20, "connection_refresh": "always"}, 0.5, dict(m=6)),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", CASES)
def test_matches_oracle(seed, case):
    flags, frac, shape = (*case, {})[:3]
    X, y = _data(seed, frac=frac, **shape)
    params = {**BASE, **flags}
    est, out, y_idx = _fit_online(SSSOM, params, seed, X, y)
    _assert_agree(est, out, _oracle(params, seed, X, y_idx), X)


def test_single_class():
    X, y = _data(3, frac=1.0, n_classes=1)
    est, out, y_idx = _fit_online(SSSOM, BASE, 3, X, y)
    _assert_agree(est, out, _oracle(BASE, 3, X, y_idx), X)
    assert set(out["classes"].tolist()) <= {-1, 0}


@pytest.mark.parametrize("seed", [4, 5])
def test_insertion_and_removal_happen(seed):
    params = {**BASE, "lp": 0.15}
    X, y = _data(seed, frac=0.5)
    est, out, y_idx = _fit_online(SSSOM, params, seed, X, y)
    oracle = _oracle(params, seed, X, y_idx)
    _assert_agree(est, out, oracle, X)
    kinds = {e["kind"] for e in oracle.events_}
    assert {"insert", "remove", "push"} <= kinds
    h = out["history"]
    assert h["removed"] > 0 and h["inserted"] > len(out["C"]) and h["windows"] >= 3


def test_keep_most_wins_when_every_node_fails():
    # lp = 1: no node reaches wins >= t in the first window (the init sample wins nothing), so
    # only the node with most wins survives it
    params = {**BASE, "lp": 1.0, "at": 0.97}
    X, y = _data(6, frac=0.5)
    est, out, y_idx = _fit_online(SSSOM, params, 6, X, y)
    oracle = _oracle(params, 6, X, y_idx)
    _assert_agree(est, out, oracle, X)
    first = next(e for e in oracle.events_ if e["kind"] == "window")
    k_before = sum(e["kind"] == "insert" and e["step"] < first["step"] for e in oracle.events_)
    assert k_before > 1 and len(first["removed"]) == k_before - 1
    assert len(out["C"]) == 1 and out["history"]["removed"] > 0


@pytest.mark.parametrize("seed", [0, 2])
def test_larfdssom_matches_oracle(seed):
    X, _ = _data(seed)
    params = {**BASE, "filter_noise": True}
    est, out, y_idx = _fit_online(LARFDSSOM, params, seed, X, None)
    oracle = _oracle(params, seed, X, y_idx)
    _assert_agree(est, out, oracle, X)
    assert (out["classes"] == -1).all()


def test_matches_torch_engine():
    X, y = _data(7, frac=0.5)
    params = {**BASE, "lp": 0.15}
    est, out, y_idx = _fit_online(SSSOM, params, 7, X, y)
    p = est._effective(len(X))
    p["n_classes"] = len(est.classes_)
    p["batch_size"] = 1
    engine = MultiEngine(torch.from_numpy(X), torch.from_numpy(y_idx), [p], [seeded_generator(7)])
    st = engine.run().map_arrays(0)
    K = len(st["C"])
    assert len(out["C"]) == K
    np.testing.assert_allclose(out["C"], st["C"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["omega"], st["omega"], rtol=0, atol=1e-5)
    for key in ("classes", "adj", "wins"):
        np.testing.assert_array_equal(out[key], st[key])
    for key in ("inserted", "removed", "windows", "n_nodes"):
        assert out["history"][key] == engine.history[0][key]


def test_supports_and_rejects():
    p = SSSOM(**BASE)._effective(60)
    assert online.supports({**p, "batch_size": 1})
    for bad in (
        {"batch_size": 8, "capacity": "all_or_nothing"},
        {"batch_size": 8, "unsup_threshold": "mean"},
        {"distance": "reference"},
        {"convergence": "reference"},
        {"labelled_conflict": "clone"},
        {"unsup_threshold": "mean", "count_all_wins": True},
    ):
        q = {**p, "batch_size": 1, **bad}
        assert not online.supports(q)
        with pytest.raises(NotImplementedError):
            online.run(np.zeros((3, 2), np.float32), np.full(3, -1), q, torch.Generator())


def test_same_seed_same_map_and_generator_order():
    X, y = _data(8, frac=0.5)
    _, a, _ = _fit_online(SSSOM, BASE, 8, X, y)
    _, b, _ = _fit_online(SSSOM, BASE, 8, X, y)
    np.testing.assert_array_equal(a["C"], b["C"])
    _, c, _ = _fit_online(SSSOM, BASE, 9, X, y)
    assert a["C"].shape != c["C"].shape or not np.array_equal(a["C"], c["C"])


def test_fit_many_default_maps_keep_the_default_decision_rule():
    """Default SSSOM / BatchSSSOM through fit_many predict as their own fit (the decision rule
    is fixed after the compiled run, as in fit): same decision_, predictions and probabilities."""
    from somlab import BatchSSSOM
    from somlab.relevance._fit import fit_many

    X, y = _data(5, frac=0.3)
    got = fit_many([BatchSSSOM(random_state=0), SSSOM(random_state=1)], X, y)
    for g, ref in zip(got, (BatchSSSOM(random_state=0), SSSOM(random_state=1))):
        ref.fit(X, y)
        assert g.decision_ == ref.decision_ == "vote"
        np.testing.assert_array_equal(g.predict(X), ref.predict(X))
        np.testing.assert_allclose(g.predict_proba(X), ref.predict_proba(X))


def test_fit_many_equals_single_fits_on_threads():
    """fit_many trains the maps together (threads, GIL released) and each equals its own fit;
    a map the compiled engine cannot run falls back to its own est.fit (with the warning)."""
    from somlab import BatchSSSOM
    from somlab.relevance._fit import EngineFallbackWarning, fit_many

    X, y = _data(11, frac=0.5)
    specs = [
        (SSSOM, {**BASE, "random_state": 0}),
        (LARFDSSOM, {**BASE, "lp": 0.15, "random_state": 1}),
        (BatchSSSOM, {**BASE, "batch_size": 8, "random_state": 2}),
        (BatchSSSOM, {**BASE, "batch_size": 8, "labelled_conflict": "clone", "random_state": 3}),
        {"model": "SSSOM", **BASE, "at": 0.95, "random_state": 4},
    ]
    with pytest.warns(EngineFallbackWarning, match="labelled_conflict"):
        got = fit_many(specs, X, y, n_threads=3)
    for spec, g in zip(specs, got):
        if isinstance(spec, dict):
            p = dict(spec)
            cls = {"SSSOM": SSSOM}[p.pop("model")]
        else:
            cls, p = spec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EngineFallbackWarning)
            ref = cls(**p).fit(X, y)
        assert type(g) is cls and g.n_nodes_ == ref.n_nodes_
        np.testing.assert_array_equal(g.prototypes_, ref.prototypes_)
        np.testing.assert_array_equal(g.adjacency_, ref.adjacency_)
        assert g.history_ == ref.history_
    np.testing.assert_array_equal(got[1].labels_, got[1].predict(X))


def test_one_representation_from_validation_to_the_stored_map(monkeypatch):
    """The CPU compiled path stays in numpy: the checked X is a view of a float32 input, the
    kernel's arrays become the model's attributes, and no tensor of the data is made."""
    import somlab.relevance._fit as fit_module

    X, y = _data(8, frac=0.5)
    est = SSSOM(**BASE, random_state=8, engine="compiled")
    Xn, y_idx, _ = est._prepare_fit(X, y)
    assert isinstance(Xn, np.ndarray) and Xn.dtype == np.float32 and np.shares_memory(Xn, X)
    assert isinstance(y_idx, np.ndarray) and y_idx.dtype == np.int64
    Xd, _, _ = est._prepare_fit(X.astype(np.float64), y)  # float64 in: one cast, C-contiguous
    assert Xd.dtype == np.float32 and Xd.flags.c_contiguous and np.array_equal(Xd, X)

    def no_tensors(*args):
        raise AssertionError("the compiled path made tensors of the data")

    monkeypatch.setattr(fit_module, "torch_inputs", no_tensors)
    outs = []
    run = online.run
    monkeypatch.setattr(online, "run", lambda *a: outs.append(run(*a)) or outs[-1])
    model = LARFDSSOM(**BASE, random_state=8, engine="compiled").fit(X)
    (out,) = outs
    for attr, key in (("prototypes_", "C"), ("relevances_", "omega"), ("adjacency_", "adj")):
        assert getattr(model, attr) is out[key]
    with pytest.raises(AssertionError, match="made tensors"):
        LARFDSSOM(**BASE, random_state=8, engine="torch").fit(X)
