"""SS-SOM: the online (one sample at a time) semi-supervised relevance map (SPEC.md §2)."""

from sklearn.base import ClassifierMixin

from ._base import RelevanceMapBase
from ._doc import ATTRIBUTES, PARAMS
from ._fit import fit_relevance_map
from ._params import PARAMETERS, make_init

_DEFAULTS = {}


class SSSOM(ClassifierMixin, RelevanceMapBase):
    score = RelevanceMapBase.score  # accuracy that tolerates unseen labels (ClassifierMixin's
    # would come first in the MRO)
    __init__ = make_init(drop=("batch_size",), **_DEFAULTS)

    def fit(self, X, y=None):
        """Train sample by sample on ``X`` with labels ``y`` (−1 = unlabelled)."""
        # SPEC §3: the batch rules with B = 1 are exactly §2's, so one engine serves both.
        return fit_relevance_map(self, X, y, batch_size=1)


SSSOM.__doc__ = (
    """SS-SOM (semi-supervised self-organizing map with relevance learning, online).

    Parameters
    ----------
"""
    + PARAMS.format(**{**PARAMETERS, **_DEFAULTS})
    + ATTRIBUTES
)
