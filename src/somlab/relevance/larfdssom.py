"""LARFDSSOM: unsupervised subspace clustering with a time-varying map (SPEC.md §2)."""

from sklearn.base import ClusterMixin

from ._base import RelevanceMapBase
from ._doc import ATTRIBUTES, PARAMS
from ._fit import fit_checked
from ._params import PARAMETERS, make_init

_DEFAULTS = {"filter_noise": True}


class LARFDSSOM(ClusterMixin, RelevanceMapBase):
    __init__ = make_init(drop=("batch_size",), **_DEFAULTS)

    def fit(self, X, y=None):
        """Cluster ``X`` (``y`` is ignored: LARFDSSOM is SS-SOM fed only unlabelled samples)."""
        Xn, _ = fit_checked(self, X, None, batch_size=1)
        self.labels_ = self._decide_checked(Xn)[0]  # = predict(X), without checking X again
        return self


LARFDSSOM.__doc__ = (
    """LARFDSSOM (local adaptive receptive field dimension selective SOM).

    ``predict`` gives the cluster id (the winning node), −1 for noise (activation below
    ``at``); ``subspace_clusters`` gives overlapping memberships and relevant dimensions.

    Parameters
    ----------
"""
    + PARAMS.format(**{**PARAMETERS, **_DEFAULTS})
    + ATTRIBUTES
)
