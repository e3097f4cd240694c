"""somlab: Self-Organizing Maps on PyTorch.

The public surface is short: estimators (:class:`SOM`), :func:`load`, and the modules
``somlab.metrics``, ``somlab.plotting``, ``somlab.datasets`` and ``somlab.compat``.
"""

from ._errors import DataError, ModelFileError, SomlabError
from .persistence import load
from .relevance import LARFDSSOM, SSSOM, BatchSSSOM
from .som import SOM

__version__ = "0.1.0"

__all__ = [
    "SOM",
    "LARFDSSOM",
    "SSSOM",
    "BatchSSSOM",
    "DataError",
    "ModelFileError",
    "SomlabError",
    "load",
    "__version__",
]
