"""Small toy datasets from scikit-learn, and the catalogue of every dataset somlab knows."""

from __future__ import annotations

from functools import cache

import numpy as np

from .._errors import DataError

__all__ = ["TOY_DATASETS", "list_datasets", "load_toy"]

#: Names accepted by :func:`load_toy` (bundled with scikit-learn, no download).
TOY_DATASETS: tuple[str, ...] = ("iris", "digits", "wine")

# name -> (n_samples, n_features, n_classes) of the image sets
# name -> (samples, features, classes, bundled); mnist_5000 is load_mnist_subset()'s default
_IMAGE_SETS = {
    "mnist": (70000, 784, 10, False),
    "fashion_mnist": (70000, 784, 10, False),
    "mnist_5000": (5000, 784, 10, True),
}


def _minmax(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    lo = X.min(axis=0)
    span = X.max(axis=0) - lo
    span[span == 0] = 1.0  # constant features become 0
    return ((X - lo) / span).astype(np.float32)


@cache
def _toy_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    loader = {
        "iris": datasets.load_iris,
        "digits": datasets.load_digits,
        "wine": datasets.load_wine,
    }[name]
    X, y = loader(return_X_y=True)
    X = _minmax(X)
    y = np.asarray(y, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_toy(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn toy dataset (``"iris"``, ``"digits"`` or ``"wine"``) as ``(X, y)``.

    ``X`` is float32 with every feature min-max scaled to [0, 1]; ``y`` is int64.
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in TOY_DATASETS:
        raise DataError(f"unknown toy dataset {name!r}; choose one of: {', '.join(TOY_DATASETS)}")
    X, y = _toy_arrays(key)
    return X.copy(), y.copy()


def list_datasets() -> list[dict]:
    """Every dataset somlab can load, as dicts with keys ``name``, ``kind`` (``"uci"``,
    ``"toy"`` or ``"image"``), ``n_samples``, ``n_features``, ``n_classes`` and ``bundled``
    (shipped with somlab or scikit-learn, no download needed). UCI sizes are computed from the
    bundled data (train + test of one fold) and cached."""
    from ._uci import uci_summary

    out = []
    for row in uci_summary():
        out.append({**row, "kind": "uci", "bundled": True})
    for name in TOY_DATASETS:
        X, y = _toy_arrays(name)
        out.append(
            {
                "name": name,
                "kind": "toy",
                "n_samples": int(X.shape[0]),
                "n_features": int(X.shape[1]),
                "n_classes": int(np.unique(y).size),
                "bundled": True,
            }
        )
    for name, (n, m, c, bundled) in _IMAGE_SETS.items():
        out.append(
            {
                "name": name,
                "kind": "image",
                "n_samples": n,
                "n_features": m,
                "n_classes": c,
                "bundled": bundled,
            }
        )
    keys = ("name", "kind", "n_samples", "n_features", "n_classes", "bundled")
    return [{k: d[k] for k in keys} for d in out]
