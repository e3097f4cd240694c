"""somlab: Self-Organizing Maps on PyTorch.

The public surface is short: estimators (:class:`SOM`, the relevance maps, :class:`DCSOMRL`),
:func:`load`, and the modules ``somlab.nn``, ``somlab.metrics``, ``somlab.plotting``,
``somlab.datasets`` and ``somlab.compat``.
"""

from ._errors import DataError, ModelFileError, SomlabError
from .deep import DCSOMRL
from .persistence import load
from .relevance import LARFDSSOM, SSSOM, BatchSSSOM
from .som import SOM

__version__ = "0.1.0"

__all__ = [
    "SOM",
    "LARFDSSOM",
    "SSSOM",
    "BatchSSSOM",
    "DCSOMRL",
    "DataError",
    "ModelFileError",
    "SomlabError",
    "load",
    "__version__",
]
