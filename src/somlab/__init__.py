"""somlab: Self-Organizing Maps on PyTorch.

The public surface is short: estimators (:class:`SOM`, :class:`SOMEnsemble`, the relevance
maps, :class:`DCSOMRL`), :func:`load`, and the modules ``somlab.nn``, ``somlab.metrics``,
``somlab.plotting``, ``somlab.datasets``, ``somlab.compat`` and ``somlab.distributed``.
"""

from ._errors import DataError, ModelFileError, SomlabError
from .deep import DCSOMRL
from .persistence import load
from .relevance import LARFDSSOM, SSSOM, BatchSSSOM, BatchSSSOMEnsemble
from .som import SOM, SOMClassifier, SOMEnsemble, SOMRegressor

__version__ = "0.1.0"

__all__ = [
    "SOM",
    "SOMEnsemble",
    "SOMClassifier",
    "SOMRegressor",
    "LARFDSSOM",
    "SSSOM",
    "BatchSSSOM",
    "BatchSSSOMEnsemble",
    "DCSOMRL",
    "DataError",
    "ModelFileError",
    "SomlabError",
    "load",
    "__version__",
]
