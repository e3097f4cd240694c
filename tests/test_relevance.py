"""The relevance maps as estimators: invariants, determinism, labels, errors, save/load."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from somlab import LARFDSSOM, SSSOM, BatchSSSOM, DataError, load
from somlab.core.relevance import relevance_from_delta
from somlab.datasets import load_uci


@pytest.fixture(scope="module")
def glass():
    return load_uci("glass", fold="x1_k1", labelled=0.25)


FAST = dict(epochs=3, age_wins=2.0)


def test_invariants_on_uci(glass):
    m = BatchSSSOM(**FAST, random_state=0).fit(glass.X_train, glass.y_train)
    assert 1 <= m.n_nodes_ <= m.max_nodes
    assert ((m.relevances_ >= 0) & (m.relevances_ <= 1)).all()
    A = m.adjacency_
    assert (A == A.T).all() and not A.diagonal().any()
    assert set(m.node_classes_.tolist()) <= set(m.classes_.tolist()) | {-1}
    pred = m.predict(glass.X_test)
    assert set(pred.tolist()) <= set(m.classes_.tolist()) | {-1}
    acts = m.activations(glass.X_test)
    assert acts.shape == (len(glass.X_test), m.n_nodes_) and (acts > 0).all() and (acts <= 1).all()
    member, dims = m.subspace_clusters(glass.X_test)
    assert member[np.arange(len(member)), acts.argmax(1)].all() and dims.shape == (m.n_nodes_, 9)


def test_same_seed_same_result_whatever_ran_before(glass):
    kw = dict(**FAST, random_state=7)
    a = BatchSSSOM(**kw).fit(glass.X_train, glass.y_train)
    SSSOM(epochs=1, random_state=1).fit(glass.X_train[:30])  # unrelated work in between
    b = BatchSSSOM(**kw).fit(glass.X_train, glass.y_train)
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    c = BatchSSSOM(**{**kw, "random_state": 8}).fit(glass.X_train, glass.y_train)
    assert c.n_nodes_ != a.n_nodes_ or not np.array_equal(c.prototypes_, a.prototypes_)


def test_unlabelled_value_999_and_string_labels(glass):
    y999 = np.where(glass.y_train < 0, 999, glass.y_train)
    a = BatchSSSOM(**FAST, random_state=0).fit(glass.X_train, glass.y_train)
    b = BatchSSSOM(**FAST, random_state=0, unlabelled_value=999).fit(glass.X_train, y999)
    np.testing.assert_array_equal(a.predict(glass.X_test), b.predict(glass.X_test))
    names = np.array(["a", "b", "c", "d", "e", "f", "g"])
    ys = np.where(glass.y_train >= 0, names[np.maximum(glass.y_train, 0) % 7], "-1")
    c = BatchSSSOM(**FAST, random_state=0).fit(glass.X_train, ys.astype(object))
    pc = c.predict(glass.X_test)
    assert set(pc.tolist()) <= set(names.tolist()) | {-1}
    none = np.where(ys == "-1", None, ys).astype(object)  # pandas' missing label
    d = BatchSSSOM(**FAST, random_state=0).fit(glass.X_train, none)
    np.testing.assert_array_equal(d.predict(glass.X_test), pc)
    mixed = none.copy()
    mixed[np.flatnonzero(glass.y_train >= 0)[0]] = 5
    with pytest.raises(DataError, match="one type"):
        BatchSSSOM(**FAST).fit(glass.X_train, mixed)


def test_unsupervised_fit_predicts_cluster_ids(glass):
    m = BatchSSSOM(**FAST, random_state=0).fit(glass.X_train)
    np.testing.assert_array_equal(m.predict(glass.X_test), m.predict_cluster(glass.X_test))
    lar = LARFDSSOM(**FAST, random_state=0).fit(glass.X_train)
    noise = lar.activations(glass.X_test).max(1) < lar.at
    pred = lar.predict(glass.X_test)
    assert (pred[noise] == -1).all() and (pred[~noise] >= 0).all()


def test_bad_input(glass):
    m = BatchSSSOM(**FAST, random_state=0).fit(glass.X_train, glass.y_train)
    with pytest.raises(DataError, match="9 features"):
        m.predict(glass.X_test[:, :5])
    X = glass.X_train.copy()
    X[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        BatchSSSOM().fit(X, glass.y_train)
    with pytest.raises(DataError, match="entries"):
        BatchSSSOM().fit(glass.X_train, glass.y_train[:-1])
    with pytest.raises(DataError, match="Unknown label type"):
        BatchSSSOM().fit(glass.X_train, np.linspace(0, 1, len(glass.X_train)))
    with pytest.raises(DataError, match="labelled"):
        m.score(glass.X_test, np.full(len(glass.X_test), -1))
    y = glass.y_test.copy()
    y[:5] = 42  # a class the model never saw: counted as errors, with a warning
    with pytest.warns(UserWarning, match="never saw"):
        s = m.score(glass.X_test, y)
    assert s == pytest.approx(np.mean(m.predict(glass.X_test)[5:] == y[5:]) * (len(y) - 5) / len(y))
    with pytest.raises(ValueError, match="at"):
        BatchSSSOM(at=1.5).fit(glass.X_train, glass.y_train)


def test_inputs_that_used_to_slip_through(glass, tmp_path):
    import torch
    from sklearn.utils._param_validation import InvalidParameterError

    from somlab.metrics import clustering_error

    X, y = glass.X_train, glass.y_train
    m = BatchSSSOM(**FAST, random_state=0).fit(X, y)
    t = torch.tensor(X, requires_grad=True)  # a tensor from a network: used, not refused
    b = BatchSSSOM(**FAST, random_state=0).fit(t, y)
    np.testing.assert_array_equal(b.predict(t), m.predict(X))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN; the relevance maps need complete"):
        BatchSSSOM().fit(Xn, y)
    with pytest.raises(DataError, match="float32 distances overflow"):
        BatchSSSOM().fit(X * 1e20, y)  # finite, but squares overflow float32
    with pytest.raises(DataError, match="overflow"):
        m.predict(glass.X_test.astype(np.float64) * 1e40)  # beyond float32 itself
    for bad in (0, -3, 2.5):
        with pytest.raises(InvalidParameterError, match="batch_size"):
            BatchSSSOM(batch_size=bad).fit(X, y)
    np.save(tmp_path / "X.npy", X)
    with pytest.raises(DataError, match="not the path"):
        m.predict(str(tmp_path / "X.npy"))
    # without labels there are no classes: score is the clustering error of the nodes
    u = LARFDSSOM(**FAST, random_state=0).fit(X)
    lab = glass.y_test >= 0
    expected = clustering_error(glass.y_test[lab], u.predict_cluster(glass.X_test)[lab])
    assert u.score(glass.X_test, glass.y_test) == pytest.approx(expected)
    with pytest.raises(DataError, match="labelled"):
        u.score(glass.X_test, np.full(len(glass.X_test), -1))


def test_save_load_predicts_exactly(tmp_path, glass):
    m = BatchSSSOM(**FAST, random_state=0, compat="reference").fit(glass.X_train, glass.y_train)
    back = load(m.save(tmp_path / "m.somlab"))
    np.testing.assert_array_equal(back.predict(glass.X_test), m.predict(glass.X_test))
    np.testing.assert_array_equal(
        back.predict_cluster(glass.X_test), m.predict_cluster(glass.X_test)
    )
    assert back.get_params() == m.get_params()


def test_relevance_kernel_known_values():
    import torch

    d = torch.tensor([[0.0, 1.0, 2.0], [3.0, 3.0, 3.0]])
    om = relevance_from_delta(d, 0.5)
    # q = 0.5 * 2 = 1; omega = sigmoid(-(d - 1))
    np.testing.assert_allclose(om[0], torch.sigmoid(torch.tensor([1.0, 0.0, -1.0])), rtol=1e-6)
    assert om[1].tolist() == [1.0, 1.0, 1.0]  # q = 0: all relevant


def _expected_failures(estimator):
    # -1 marks unlabelled samples (sklearn.semi_supervised's convention), so it cannot also be a
    # class; scikit-learn exempts its own LabelSpreading/LabelPropagation from this check by name.
    if isinstance(estimator, LARFDSSOM):
        return {}
    return {"check_classifiers_classes": "-1 means unlabelled, as in sklearn.semi_supervised"}


@parametrize_with_checks(
    [
        BatchSSSOM(epochs=2, at=0.5, random_state=0),
        SSSOM(epochs=2, at=0.3, lp=0.001, random_state=0),
        LARFDSSOM(epochs=1, age_wins=1.0, at=0.7, filter_noise=False, random_state=0),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_cpp_presets_equal_their_flags(glass):
    """compat="cpp_larfdssom" is SPEC §4.2's flag set; a C++ preset also fixes B = 1, so
    BatchSSSOM(compat="cpp_sssom") is SSSOM(compat="cpp_sssom")."""
    flags = dict(
        distance="weighted_sq",
        count_all_wins=True,
        init="random",
        max_nodes=70,
        sampling="replacement",
    )
    a = LARFDSSOM(**FAST, compat="cpp_larfdssom", random_state=3).fit(glass.X_train)
    b = LARFDSSOM(**{**FAST, **flags}, random_state=3).fit(glass.X_train)
    c = LARFDSSOM(**FAST, random_state=3).fit(glass.X_train)
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    np.testing.assert_array_equal(a.predict(glass.X_test), b.predict(glass.X_test))
    assert a.n_nodes_ != c.n_nodes_ or not np.array_equal(a.prototypes_, c.prototypes_)
    d = BatchSSSOM(**FAST, compat="cpp_sssom", random_state=3).fit(glass.X_train, glass.y_train)
    e = SSSOM(**FAST, compat="cpp_sssom", random_state=3).fit(glass.X_train, glass.y_train)
    np.testing.assert_array_equal(d.prototypes_, e.prototypes_)
    np.testing.assert_array_equal(d.predict(glass.X_test), e.predict(glass.X_test))
