"""SOMClassifier and SOMRegressor (issue 18, point 2)."""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from somlab import SOM, SOMClassifier, SOMRegressor
from somlab import plotting as P


def _reference_node_stats(bmu, y, n_nodes):
    """Plain-loop reference: per node the list of targets it wins."""
    out = [[] for _ in range(n_nodes)]
    for b, t in zip(bmu, y):
        out[b].append(t)
    return out


def test_classifier_nodes_are_majorities_and_shares():
    X, y = load_iris(return_X_y=True)
    clf = SOMClassifier(SOM((5, 5), random_state=0)).fit(X, y)
    bmu = clf.som_.labels_
    ref = _reference_node_stats(bmu, y, 25)
    for k, ts in enumerate(ref):
        if ts:
            shares = np.bincount(ts, minlength=3) / len(ts)
            assert np.allclose(clf.node_proba_[k], shares)
            assert clf.node_class_[k] == np.argmax(shares)
        assert np.isclose(clf.node_proba_[k].sum(), 1.0)
    P_ = clf.predict_proba(X)
    assert np.array_equal(clf.predict(X), clf.classes_[P_.argmax(1)])
    assert clf.score(X, y) > 0.9


def test_empty_nodes_take_the_nearest_node_with_data():
    X = np.r_[np.zeros((20, 2)), np.full((20, 2), 10.0)]
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    init = np.array([[0.0, 0.0], [1.0, 1.0], [9.0, 9.0], [10.0, 10.0]])
    # no training epochs to speak of: a tiny sigma keeps the prototypes near their start
    som = SOM((4, 1), init=init, epochs=1, sigma=0.01, sigma_end=0.01)
    clf = SOMClassifier(som).fit(X, y)
    W = clf.som_.weights_.reshape(4, 2)
    hits = clf.node_counts_.sum(1)
    assert hits.tolist() == [20, 0, 0, 20]
    # node 1 sits near node 0, node 2 near node 3
    assert np.linalg.norm(W[1] - W[0]) < np.linalg.norm(W[1] - W[3])
    assert clf.node_class_.tolist() == [0, 0, 1, 1]
    reg = SOMRegressor(som).fit(X, np.r_[np.full(20, 1.0), np.full(20, 5.0)])
    assert reg.node_mean_.tolist() == [1.0, 1.0, 5.0, 5.0]
    assert reg.node_counts_.tolist() == [20, 0, 0, 20]


def test_regressor_means_spreads_and_multioutput():
    rng = np.random.default_rng(0)
    X = rng.random((300, 2))
    y = X[:, 0] * 3 + rng.normal(0, 0.1, 300)
    reg = SOMRegressor(SOM((6, 6), random_state=0)).fit(X, y)
    bmu = reg.som_.labels_
    for k, ts in enumerate(_reference_node_stats(bmu, y, 36)):
        if ts:
            assert np.isclose(reg.node_mean_[k], np.mean(ts))
            assert np.isclose(reg.node_std_[k], np.std(ts))
    assert reg.score(X, y) > 0.9
    assert np.allclose(
        P.target_map(reg, X, y).ravel()[reg.node_counts_ > 0], reg.node_mean_[reg.node_counts_ > 0]
    )
    assert np.allclose(
        P.target_map(reg, X, y, "std").ravel()[reg.node_counts_ > 0],
        reg.node_std_[reg.node_counts_ > 0],
    )
    Y = np.c_[y, -y]
    reg2 = SOMRegressor(SOM((6, 6), random_state=0)).fit(X, Y)
    assert reg2.predict(X).shape == (300, 2)
    assert np.allclose(reg2.node_mean_[:, 1], -reg2.node_mean_[:, 0])


def test_grid_search_over_the_map_and_random_state():
    X, y = load_iris(return_X_y=True)
    gs = GridSearchCV(SOMClassifier(SOM((4, 4)), random_state=0), {"som__sigma": [0.5, 2.0]}, cv=3)
    gs.fit(X, y)
    assert gs.best_estimator_.som_.random_state == 0
    a = SOMClassifier(SOM((4, 4), init="sample"), random_state=3).fit(X, y)
    b = SOMClassifier(SOM((4, 4), init="sample"), random_state=3).fit(X, y)
    assert np.array_equal(a.som_.weights_, b.som_.weights_)


def test_supervised_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="requires y"):
        SOMClassifier().fit(X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        SOMRegressor().fit(X, y[:-1])
    with pytest.raises(ValueError, match="Unknown label type"):
        SOMClassifier().fit(X, X[:, 0] + 0.5)


def test_plot_target_maps(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((200, 2))
    y = X.sum(1)
    reg = SOMRegressor(SOM((5, 5), topology="hexagonal", random_state=0)).fit(X, y)
    P.plot_target_map(reg, X, y, path=tmp_path / "m.png")
    P.plot_target_map(reg, X, y, "std", path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 0


@parametrize_with_checks(
    [
        SOMClassifier(SOM((3, 3), epochs=3), random_state=0),
        SOMRegressor(SOM((8, 8), epochs=3), random_state=0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
