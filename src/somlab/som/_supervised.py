"""Supervised use of a SOM: a classifier and a regressor read off the trained map.

The map is trained on ``X`` alone (unsupervised, as :class:`~somlab.SOM`); then each node
stores what the training samples it wins say about ``y``:

* :class:`SOMClassifier`: the class shares of its samples (``predict_proba``), the majority
  class (``predict``);
* :class:`SOMRegressor`: the mean of their targets (``predict``) and their spread
  (``node_std_``).

A node that wins no training sample takes the value of the nearest node (Euclidean distance
between prototypes) that wins some, so every part of the input space gets an answer.  A new
sample is answered by its best-matching unit.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _num_samples,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from ..core.distances import sq_euclidean_np
from ._som import SOM


def _fill_empty(values: np.ndarray, hits: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """``values [n_nodes, ...]`` with every node of ``hits == 0`` given the value of the
    nearest node (Euclidean prototype distance, lowest index on ties) that has hits."""
    empty = np.flatnonzero(hits == 0)
    full = np.flatnonzero(hits > 0)
    if len(empty) == 0 or len(full) == 0:
        return values
    P = np.asarray(prototypes, dtype=np.float64).reshape(len(hits), -1)
    near = full[np.argmin(sq_euclidean_np(P[empty], P[full]), axis=1)]
    out = values.copy()
    out[empty] = values[near]
    return out


def node_target_stats(bmu: np.ndarray, Y: np.ndarray, n_nodes: int):
    """Per node: the count of samples it wins ``[n_nodes]`` and the mean and population
    standard deviation of their targets ``Y [n_samples, t]`` (``[n_nodes, t]``, NaN at nodes
    that win none)."""
    count = np.bincount(bmu, minlength=n_nodes).astype(float)
    total = np.zeros((n_nodes, Y.shape[1]))
    np.add.at(total, bmu, Y)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count[:, None]
        dev = Y - mean[bmu]
        sq = np.zeros_like(total)
        np.add.at(sq, bmu, dev * dev)
        std = np.sqrt(sq / count[:, None])
    return count, mean, std


class _SOMSupervised(BaseEstimator):
    """Shared fit of the map for :class:`SOMClassifier` and :class:`SOMRegressor`."""

    _parameter_constraints = {"som": [SOM, None], "random_state": ["random_state"]}

    def __init__(self, som=None, *, random_state=None):
        self.som = som
        self.random_state = random_state

    def _check_y(self, X, y, **kw):
        """``y`` checked (X itself is the map's to check, with its own messages)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        kw.setdefault("dtype", None)
        y = check_array(y, ensure_2d=False, input_name="y", **kw)
        _num_samples(X)
        check_consistent_length(X, y)
        return y

    def _fit_map(self, X):
        som = SOM() if self.som is None else clone(self.som)
        if self.random_state is not None:
            som.set_params(random_state=self.random_state)
        self.som_ = som.fit(X)
        self.n_features_in_ = self.som_.n_features_in_
        if hasattr(self.som_, "feature_names_in_"):
            self.feature_names_in_ = self.som_.feature_names_in_
        return np.asarray(self.som_.labels_, dtype=np.int64)

    def _bmus(self, X):
        check_is_fitted(self, "som_")
        return np.asarray(self.som_.predict(X), dtype=np.int64)

    @property
    def grid_(self):
        return self.som_.grid_

    @property
    def weights_(self):
        return self.som_.weights_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.som is not None and self.som.missing == "ignore"
        return tags


class SOMClassifier(ClassifierMixin, _SOMSupervised):
    """Classifier on a Self-Organizing Map: each node votes with the classes it wins.

    The map (``som``, default ``SOM()``) is trained on ``X`` alone; node ``k`` then holds the
    class shares of the training samples whose best-matching unit is ``k``.  ``predict_proba``
    of a sample is the shares of its best-matching unit, ``predict`` its majority class (the
    first class in ``classes_`` order on ties).  A node that wins no training sample takes the
    shares of the nearest node (Euclidean prototype distance) that wins some.

    Parameters
    ----------
    som : SOM or None, default=None
        The map to train (cloned; never modified).  None: ``SOM()`` (10 x 10, batch, PCA init).
        Its parameters can be searched as ``som__sigma`` etc.
    random_state : int, RandomState or None, default=None
        When given, replaces the map's ``random_state``.

    Attributes
    ----------
    som_ : SOM
        The fitted map.
    classes_ : ndarray of shape (n_classes,)
    node_proba_ : ndarray of shape (n_nodes, n_classes)
        Class shares per node (empty nodes filled from their nearest node with data).
    node_counts_ : ndarray of shape (n_nodes, n_classes)
        Training samples of each class won by each node (before filling).
    node_class_ : ndarray of shape (n_nodes,)
        Majority class of every node.
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from somlab import SOM, SOMClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SOMClassifier(SOM((6, 6), random_state=0)).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    def fit(self, X, y=None):
        """Train the map on ``X``, then read each node's class shares from ``y``."""
        self._validate_params()
        y = self._check_y(X, y, ensure_all_finite=False)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, yk = np.unique(y, return_inverse=True)
        bmu = self._fit_map(X)
        n_nodes, n_classes = self.som_.grid_.n_nodes, len(self.classes_)
        counts = np.zeros((n_nodes, n_classes))
        np.add.at(counts, (bmu, yk), 1.0)
        hits = counts.sum(1)
        proba = counts / np.where(hits > 0, hits, 1.0)[:, None]
        self.node_counts_ = counts
        self.node_proba_ = _fill_empty(proba, hits, self.som_.weights_)
        self.node_class_ = self.classes_[np.argmax(self.node_proba_, axis=1)]
        return self

    def predict_proba(self, X):
        """Class shares of each sample's best-matching unit, ``(n_samples, n_classes)``."""
        bmu = self._bmus(X)
        return self.node_proba_[bmu]

    def predict(self, X):
        """Majority class of each sample's best-matching unit."""
        bmu = self._bmus(X)
        return self.node_class_[bmu]


class SOMRegressor(RegressorMixin, _SOMSupervised):
    """Regressor on a Self-Organizing Map: each node predicts the mean target it wins.

    The map (``som``, default ``SOM()``) is trained on ``X`` alone; node ``k`` then holds the
    mean (``node_mean_``) and standard deviation (``node_std_``, ddof=0) of the targets of the
    training samples whose best-matching unit is ``k``; ``predict`` returns the mean of each
    sample's best-matching unit.  A node that wins no training sample takes the values of the
    nearest node (Euclidean prototype distance) that wins some.  ``y`` may have several
    columns (one mean per column).

    Parameters
    ----------
    som : SOM or None, default=None
        The map to train (cloned).  None: ``SOM()``.
    random_state : int, RandomState or None, default=None
        When given, replaces the map's ``random_state``.

    Attributes
    ----------
    som_ : SOM
    node_mean_ : ndarray of shape (n_nodes,) or (n_nodes, n_targets)
    node_std_ : ndarray, same shape as ``node_mean_``
    node_counts_ : ndarray of shape (n_nodes,)
        Training samples won by each node (before filling).
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from somlab import SOM, SOMRegressor
    >>> X = np.linspace(0, 1, 200).reshape(-1, 1)
    >>> reg = SOMRegressor(SOM((20, 1), random_state=0)).fit(X, np.sin(3 * X[:, 0]))
    >>> bool(reg.score(X, np.sin(3 * X[:, 0])) > 0.95)
    True
    """

    def fit(self, X, y=None):
        """Train the map on ``X``, then read each node's mean and spread of ``y``."""
        self._validate_params()
        y = self._check_y(X, y, dtype=np.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        one = y.ndim == 1
        Y = y.reshape(len(y), -1)
        bmu = self._fit_map(X)
        hits, mean, std = node_target_stats(bmu, Y, self.som_.grid_.n_nodes)
        W = self.som_.weights_
        mean, std = _fill_empty(mean, hits, W), _fill_empty(std, hits, W)
        self.node_counts_ = hits
        self.node_mean_ = mean[:, 0] if one else mean
        self.node_std_ = std[:, 0] if one else std
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        """Mean target of each sample's best-matching unit."""
        bmu = self._bmus(X)
        return self.node_mean_[bmu]
