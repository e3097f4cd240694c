"""SVHN (cropped digits, format 2): the official ``train_32x32.mat`` and ``test_32x32.mat``.

The files are not downloaded (about 180 MB + 64 MB): fetch them from
http://ufldl.stanford.edu/housenumbers/ into a folder and pass it as ``data_dir`` (or put it in
``$SOMLAB_DATA``). Search order: ``data_dir``, the folder(s) of ``$SOMLAB_DATA``,
``~/.cache/somlab``, each also with an ``svhn/`` sub-folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._errors import DataError

__all__ = ["SVHN_FILES", "SVHN_URL", "load_svhn"]

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"


def _folders(data_dir) -> list[Path]:
    bases = []
    if data_dir is not None:
        bases.append(Path(data_dir).expanduser())
    for part in os.environ.get("SOMLAB_DATA", "").split(os.pathsep):
        if part.strip():
            bases.append(Path(part.strip()).expanduser())
    bases.append(Path.home() / ".cache" / "somlab")
    out = []
    for b in bases:
        out += [b, b / "svhn"]
    return out


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``X [n, 3, 32, 32]`` uint8 and ``y [n]`` int64 (label 10 -> 0) from one .mat file."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except Exception as exc:  # scipy raises ValueError, MatReadError, OSError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path}: {text}") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected the variables X and y (the official SVHN format 2)")
    X, y = np.asarray(mat["X"]), np.asarray(mat["y"]).ravel()
    if X.ndim != 4 or X.shape[:3] != (32, 32, 3) or X.shape[3] != y.shape[0]:
        raise DataError(
            f"{path}: X must be [32, 32, 3, n] with n labels, got X {X.shape}, y {y.shape}"
        )
    if y.dtype.kind not in "iuf" or not np.all((y >= 0) & (y <= 10) & (y == np.round(y))):
        raise DataError(f"{path}: labels must be integers 1..10 (10 = digit 0)")
    X = np.ascontiguousarray(X.transpose(3, 2, 0, 1)).astype(np.uint8, copy=False)
    y = y.astype(np.int64)
    y[y == 10] = 0
    return X, y


def load_svhn(data_dir=None):
    """SVHN as ``Bunch(X_train, y_train, X_test, y_test, name, source)``.

    ``X_*``: uint8 ``[n, 3, 32, 32]`` (73,257 train, 26,032 test images), ``y_*``: int64
    digits 0..9 (the files' label 10 is digit 0). Raises :class:`~somlab.DataError` naming the
    expected files and the folders searched when they are absent.
    """
    from sklearn.utils import Bunch

    folders = _folders(data_dir)
    for folder in folders:
        paths = [folder / name for name in SVHN_FILES]
        if all(p.is_file() for p in paths):
            X_train, y_train = _read(paths[0])
            X_test, y_test = _read(paths[1])
            return Bunch(
                X_train=X_train,
                y_train=y_train,
                X_test=X_test,
                y_test=y_test,
                name="svhn",
                source=str(folder),
            )
    looked = "; ".join(str(f) for f in folders)
    raise DataError(
        f"SVHN not found: expected {SVHN_FILES[0]} and {SVHN_FILES[1]} (the official files from "
        f"{SVHN_URL}) in the data folder (looked in: {looked}); download them there, or pass "
        "--data-dir / set SOMLAB_DATA"
    )
