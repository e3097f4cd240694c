"""SS-SOM: the online (one sample at a time) semi-supervised relevance map (SPEC.md §2)."""

from sklearn.base import ClassifierMixin

from . import _auto
from ._base import RelevanceMapBase
from ._doc import ATTRIBUTES, DECISION, PARAMS
from ._fit import fit_relevance_map
from ._params import PARAMETERS, make_init

_DEFAULTS = dict(_auto.DECISION_DEFAULTS)


class SSSOM(_auto.DecisionMixin, ClassifierMixin, RelevanceMapBase):
    score = RelevanceMapBase.score  # accuracy that tolerates unseen labels (ClassifierMixin's
    # would come first in the MRO)
    predict = _auto.DecisionMixin.predict
    _parameter_constraints = _auto._constraints(RelevanceMapBase._parameter_constraints)
    __init__ = make_init(drop=("batch_size",), **_DEFAULTS)

    def fit(self, X, y=None):
        """Train sample by sample on ``X`` with labels ``y`` (−1 = unlabelled), then fix the
        decision rule (``decision``; "auto": the vote, or with several ``candidates`` the
        one cross-validation on the labelled rows prefers)."""
        # SPEC §3: the batch rules with B = 1 are exactly §2's, so one engine serves both.
        return _auto.fit_with_decision(
            self, X, y, 1, lambda est, X_, y_: fit_relevance_map(est, X_, y_, batch_size=1)
        )


SSSOM.__doc__ = (
    """SS-SOM (semi-supervised self-organizing map with relevance learning, online).

    Fitted with no label and the default Table I parameters, it clusters the rows from its
    merged prototypes as ``LARFDSSOM()`` and ``BatchSSSOM()`` do (relevance/_clusters.py;
    ``cluster_centers_``; ``predict`` then gives cluster ids).

    Parameters
    ----------
"""
    + PARAMS.format(**{**PARAMETERS, **_DEFAULTS})
    + DECISION
    + ATTRIBUTES
)
