"""Batch SS-SOM: the semi-supervised relevance map trained in mini-batches (SPEC.md §3)."""

from sklearn.base import ClassifierMixin

from ._base import RelevanceMapBase
from ._doc import ATTRIBUTES, PARAMS
from ._fit import fit_relevance_map
from ._params import PARAMETERS, make_init

_DEFAULTS = {}


class BatchSSSOM(ClassifierMixin, RelevanceMapBase):
    score = RelevanceMapBase.score  # accuracy that tolerates unseen labels (ClassifierMixin's
    # would come first in the MRO)
    __init__ = make_init(**_DEFAULTS)

    def fit(self, X, y=None):
        """Train on ``X`` with labels ``y`` (−1 = unlabelled; ``y=None``: unsupervised)."""
        return fit_relevance_map(self, X, y, batch_size=int(self.batch_size))


BatchSSSOM.__doc__ = (
    """Batch SS-SOM (semi-supervised self-organizing map with relevance learning, mini-batches).

    A map with a time-varying number of nodes; each node has a prototype, per-feature
    relevances and (once it has seen a labelled sample) a class.  Each batch updates winners
    by group means in a fixed order of rounds (SPEC.md §3), so no step loops over samples.

    Parameters
    ----------
    batch_size : int, default=32
"""
    + PARAMS.format(**{**PARAMETERS, **_DEFAULTS})
    + ATTRIBUTES
)
