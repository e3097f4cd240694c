"""A model-selection score for SOMs that weighs the quantization error against the
topographic error.

``SOM.score`` is ``-QE``: the quantization error alone always improves as the neighbourhood
shrinks (a map with sigma -> 0 is k-means, whose prototypes sit closest to the data), so
``GridSearchCV(SOM(), {"sigma": [...]})`` with the default score always picks the smallest
sigma, even when that map is folded (its topographic error is high).  :func:`som_score` and
:func:`make_som_scorer` add the topographic error:

    score = -(QE / QE_0 + te_weight * TE)

where ``QE_0`` is the mean Euclidean distance of the samples to their mean (the QE of a map
with one node), so that the first term has no unit and is about 1 for a useless map and 0 for a
perfect one, and ``TE`` is the share of samples whose two best units are not adjacent.
``te_weight=1`` counts one unit of relative QE as much as all samples having a topographic
defect.
"""

from __future__ import annotations

from numbers import Real

import numpy as np


def _reference_qe(X) -> float:
    X = np.asarray(X, dtype=np.float64)
    centre = X.mean(0)
    return float(np.linalg.norm(X - centre, axis=1).mean())


def som_score(estimator, X, y=None, te_weight: float = 1.0) -> float:
    """``-(QE / QE_0 + te_weight * TE)`` of a fitted map on ``X`` (higher is better).

    ``estimator`` is a fitted :class:`~somlab.SOM` (anything with ``quantization_error(X)``
    and ``topographic_error(X)``).  QE is measured in the map's own distance; ``QE_0`` is the
    mean Euclidean distance of ``X`` to its mean (1 if that is 0).  A map of one node has no
    TE: it counts as 0.
    """
    te_weight = _check_weight(te_weight)
    qe = float(estimator.quantization_error(X))
    te = float(estimator.topographic_error(X)) if te_weight else 0.0
    if not np.isfinite(te):
        te = 0.0
    ref = _reference_qe(getattr(X, "values", X))
    return -(qe / (ref if ref > 0 else 1.0) + te_weight * te)


def _check_weight(te_weight) -> float:
    if isinstance(te_weight, bool) or not isinstance(te_weight, Real) or not te_weight >= 0:
        raise ValueError(f"te_weight must be a number >= 0, got {te_weight!r}")
    return float(te_weight)


class _SOMScorer:
    """Picklable scorer ``(estimator, X, y=None) -> float`` for scikit-learn's ``scoring=``."""

    def __init__(self, te_weight: float):
        self.te_weight = te_weight

    def __call__(self, estimator, X, y=None):
        return som_score(estimator, X, y, te_weight=self.te_weight)

    def __repr__(self):
        return f"make_som_scorer(te_weight={self.te_weight})"


def make_som_scorer(te_weight: float = 1.0):
    """A scorer for ``GridSearchCV(..., scoring=make_som_scorer())`` that weighs the
    quantization error against the topographic error (see :func:`som_score`).

    Parameters
    ----------
    te_weight : float >= 0, default=1.0
        Weight of the topographic error; 0 ranks maps by relative QE alone, as ``SOM.score``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from somlab import SOM
    >>> from somlab.metrics import make_som_scorer
    >>> X = np.random.default_rng(0).random((300, 2))
    >>> som = SOM((6, 6), mode="online", epochs=3, init="random", random_state=0)
    >>> gs = GridSearchCV(som,
    ...                   {"sigma": [0.3, 3.0]}, scoring=make_som_scorer(), cv=3).fit(X)
    >>> gs.best_params_
    {'sigma': 3.0}
    """
    return _SOMScorer(_check_weight(te_weight))
