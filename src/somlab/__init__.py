"""somlab: Self-Organizing Maps on PyTorch.

The public surface is short: estimators (:class:`SOM`, :class:`SOMEnsemble`, the relevance
maps, :class:`DCSOMRL`), :func:`load`, and the modules ``somlab.nn``, ``somlab.metrics``,
``somlab.plotting``, ``somlab.datasets``, ``somlab.compat`` and ``somlab.distributed``.

``import somlab`` is cheap: the estimators (and torch, scikit-learn behind them) are imported
on first use of their name (PEP 562 module ``__getattr__``).
"""

from importlib import import_module

from ._errors import DataError, ModelFileError, SomlabError

__version__ = "0.1.0"

#: public name -> submodule that defines it (imported on first access)
_LAZY = {
    "SOM": ".som",
    "SOMEnsemble": ".som",
    "SOMClassifier": ".som",
    "SOMRegressor": ".som",
    "LARFDSSOM": ".relevance",
    "SSSOM": ".relevance",
    "BatchSSSOM": ".relevance",
    "BatchSSSOMEnsemble": ".relevance",
    "DCSOMRL": ".deep",
    "load": ".persistence",
}

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


#: subpackages reachable as ``somlab.NAME`` after a bare ``import somlab`` (imported on first use)
_SUBPACKAGES = (
    "compat", "core", "datasets", "deep", "distributed", "experiments", "features", "metrics",
    "nn", "persistence", "plotting", "relevance", "som",
)  # fmt: skip


def __getattr__(name):
    if name in _SUBPACKAGES:
        return import_module(f".{name}", __name__)  # the import binds it in globals()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'somlab' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBPACKAGES))
