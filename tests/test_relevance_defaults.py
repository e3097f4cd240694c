"""The relevance maps' default decision (issue 15) and the {-1, +1} label warning (issue 17)."""

import warnings

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from somlab import SSSOM, BatchSSSOM, load
from somlab.relevance import _auto


def _blobs(n=120, seed=0, n_classes=3, frac=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.random((n_classes, 5))
    y = rng.integers(n_classes, size=n)
    X = np.clip(centres[y] + 0.08 * rng.standard_normal((n, 5)), 0, 1)
    semi = y.copy()
    semi[rng.random(n) > frac] = -1
    return X, y, semi


@pytest.fixture(scope="module")
def split():
    X, y, semi = _blobs(180, seed=1)
    return X[:120], semi[:120], X[120:], y[120:]


def _state(m):
    return (
        m.decision_,
        m.prototypes_.tobytes(),
        m.node_class_index_.tobytes(),
        tuple(sorted(m.cv_scores_.items())),
    )


@pytest.mark.parametrize("cls", [BatchSSSOM, SSSOM])
def test_default_never_sees_test_labels(cls, split):
    """Permuting the test labels changes nothing: the selection uses training rows only."""
    Xtr, ytr, Xte, yte = split
    for cands in (None, _auto.ALL_RULES):
        a = cls(random_state=0, candidates=cands).fit(Xtr, ytr)
        # a test set whose labels are permuted: nothing about it reaches fit, so the model
        # (rule, CV scores, nodes) and its predictions are the same
        b = cls(random_state=0, candidates=cands).fit(Xtr, ytr)
        assert _state(a) == _state(b)
        np.testing.assert_array_equal(a.predict(Xte), b.predict(Xte))
        perm = np.random.default_rng(5).permutation(yte)
        assert a.score(Xte, perm) != a.score(Xte, yte)


def test_cv_holds_out_labels_only_from_training_rows(split, monkeypatch):
    """Every fold map is fitted on the training X with some training labels hidden."""
    Xtr, ytr, _, _ = split
    seen = []
    from somlab.relevance import batch_sssom

    real = batch_sssom.fit_relevance_map

    def spy(est, X, y, batch_size):
        seen.append((np.asarray(X).shape, None if y is None else np.asarray(y).copy()))
        return real(est, X, y, batch_size=batch_size)

    monkeypatch.setattr(batch_sssom, "fit_relevance_map", spy)
    m = BatchSSSOM(random_state=0, cv=3, candidates=_auto.ALL_RULES).fit(Xtr, ytr)
    assert m.cv_scores_, "selection did not run"
    assert len(seen) == 1 + 3
    lab = ytr >= 0
    for shape, y in seen[1:]:
        assert shape == Xtr.shape
        hidden = lab & (y == -1)
        assert hidden.any() and not (y[~lab] != -1).any()


@pytest.mark.parametrize("cls", [BatchSSSOM, SSSOM])
@pytest.mark.parametrize("decision", ["auto", *_auto.ALL_RULES])
def test_predict_proba_invariants(cls, decision, split):
    Xtr, ytr, Xte, _ = split
    m = cls(random_state=0, decision=decision).fit(Xtr, ytr)
    P = m.predict_proba(Xte)
    assert P.shape == (len(Xte), len(m.classes_))
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(m.classes_[P.argmax(1)], m.predict(Xte))


def test_predict_proba_string_labels_column_order():
    X, y, semi = _blobs(90, seed=3)
    names = np.array(["zeta", "alpha", "mid"])
    ys = np.where(semi >= 0, names[np.maximum(semi, 0)], "-1").astype(object)
    m = BatchSSSOM(random_state=0).fit(X, ys)
    assert list(m.classes_) == ["alpha", "mid", "zeta"]
    P = m.predict_proba(X)
    np.testing.assert_array_equal(m.classes_[P.argmax(1)], m.predict(X))


@pytest.mark.parametrize("cls", [BatchSSSOM, SSSOM])
def test_same_seed_same_model(cls, split):
    Xtr, ytr, Xte, _ = split
    a = cls(random_state=3).fit(Xtr, ytr)
    b = cls(random_state=3).fit(Xtr, ytr)
    assert _state(a) == _state(b)
    np.testing.assert_array_equal(a.predict_proba(Xte), b.predict_proba(Xte))


def test_explicit_paper_setting_keeps_the_paper_rule(split):
    """Any Table I value or compat preset gives decision_ == "map" and the paper's predict."""
    Xtr, ytr, Xte, _ = split
    for kw in ({"at": 0.9}, {"epochs": 4}, {"compat": "reference"}, {"decision": "map"}):
        m = BatchSSSOM(random_state=0, **kw).fit(Xtr, ytr)
        assert m.decision_ == "map" and m.cv_scores_ == {}
        np.testing.assert_array_equal(m.predict(Xte), m._decide(Xte)[0])


def test_too_few_labels_keeps_the_prior(split):
    Xtr, ytr, _, _ = split
    y = np.full_like(ytr, -1)
    y[:2], y[2:4] = 0, 1  # two per class: no fold with 3 per class
    Xs = Xtr.copy()
    m = BatchSSSOM(random_state=0).fit(Xs, y)
    assert m.decision_ == _auto.PRIOR_RULE and m.cv_scores_ == {}
    m = BatchSSSOM(random_state=0, candidates=_auto.ALL_RULES).fit(Xs, y)
    assert m.decision_ == _auto.PRIOR_RULE and m.cv_scores_ == {}


def test_default_is_the_vote(split):
    Xtr, ytr, Xte, _ = split
    m = BatchSSSOM(random_state=0).fit(Xtr, ytr)
    assert m.decision_ == "vote"
    assert set(_auto.VOTE) == {"map", "knn3", "spread"}
    assert abs(sum(_auto.VOTE.values()) - 1) < 1e-12
    parts = []
    for r, w in _auto.VOTE.items():
        p = BatchSSSOM(random_state=0, decision=r).fit(Xtr, ytr).predict_proba(Xte)
        parts.append(w * p)
    np.testing.assert_allclose(m.predict_proba(Xte), sum(parts), atol=1e-12)


def test_candidates_and_cv_are_parameters(split):
    Xtr, ytr, _, _ = split
    m = BatchSSSOM(random_state=0, candidates=("knn1", "nodes"), cv=2).fit(Xtr, ytr)
    assert set(m.cv_scores_) == {"knn1", "nodes"} and m.decision_ in ("knn1", "nodes")


def test_unlabelled_fit_has_no_proba(split):
    Xtr, _, _, _ = split
    m = BatchSSSOM(random_state=0).fit(Xtr)
    assert m.decision_ == "map"
    with pytest.raises(Exception, match="predict_proba needs"):
        m.predict_proba(Xtr)


def test_save_load_keeps_the_rule(tmp_path, split):
    Xtr, ytr, Xte, _ = split
    m = BatchSSSOM(random_state=0, decision="spread").fit(Xtr, ytr)
    back = load(m.save(tmp_path / "m.somlab"))
    assert back.decision_ == "spread"
    np.testing.assert_array_equal(back.predict(Xte), m.predict(Xte))
    np.testing.assert_allclose(back.predict_proba(Xte), m.predict_proba(Xte))


def test_knn_scores_known_values():
    Z = np.array([[0.0], [1.0], [3.0]])
    yz = np.array([0, 1, 1])
    P = _auto.knn_scores(Z, yz, np.array([[0.1], [2.9]]), 1, 2)
    np.testing.assert_array_equal(P, [[1, 0], [0, 1]])
    P3 = _auto.knn_scores(Z, yz, np.array([[0.5]]), 3, 2)
    w = 1 / np.array([0.5, 0.5, 2.5])
    w[0] *= 1 + 1e-6
    np.testing.assert_allclose(P3[0], [w[0] / w.sum(), (w[1] + w[2]) / w.sum()])


def test_node_scores_propagate_over_the_graph():
    """A chain 0 - 1 - 2 - 3, labelled ends: the harmonic solution is linear in between."""
    C = np.array([[0.0], [1.0], [2.0], [3.0]])
    adj = np.zeros((4, 4), bool)
    for i in range(3):
        adj[i, i + 1] = adj[i + 1, i] = True
    F = _auto.node_scores(
        C, np.array([0, -1, -1, 1]), adj, np.zeros(0, int), np.zeros(0, int), 2, n_neighbours=1
    )
    np.testing.assert_allclose(F[1], [2 / 3, 1 / 3], atol=1e-4)
    np.testing.assert_allclose(F[2], [1 / 3, 2 / 3], atol=1e-4)


# ---------------------------------------------------------------- issue 17: {-1, +1} labels
def _pm_one(n=80, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.5, -1, 1)
    X = np.clip(0.5 + 0.3 * y[:, None] * np.ones((n, 3)) + 0.05 * rng.standard_normal((n, 3)), 0, 1)
    return X, y


def test_minus_one_plus_one_warns():
    X, y = _pm_one()
    with pytest.warns(UserWarning, match="unlabelled_value=None"):
        BatchSSSOM(random_state=0, decision="map").fit(X, y)


def test_unlabelled_value_none_keeps_minus_one_a_class():
    X, y = _pm_one()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = BatchSSSOM(random_state=0, unlabelled_value=None).fit(X, y)
    assert list(m.classes_) == [-1, 1]
    assert m.score(X, y) > 0.9


def test_ordinary_semi_supervised_labels_do_not_warn():
    X, y, semi = _blobs(90, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BatchSSSOM(random_state=0).fit(X, semi)


@parametrize_with_checks(
    [BatchSSSOM(random_state=0), SSSOM(random_state=0, candidates=("map", "knn1"), cv=2)],
    expected_failed_checks=lambda e: {
        "check_classifiers_classes": "-1 means unlabelled, as in sklearn.semi_supervised"
    },
)
def test_default_estimators_pass_sklearn_checks(estimator, check):
    check(estimator)
