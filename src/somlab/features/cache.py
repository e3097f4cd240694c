"""A folder of ``.npz`` files holding extracted CNN features, so that a rerun (another label
fraction, more LHS settings, a report tweak) does not train the networks again.

An entry is keyed by data set, protocol, label fraction, seed and a hash of everything else
that changes the features (:func:`cache_key`); the file also stores that configuration as JSON
and :meth:`FeatureCache.load` checks it, so a stale or colliding file is never used. Writes are
atomic (temporary file in the same folder, then ``os.replace``); reads use
``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .._errors import DataError

__all__ = ["FeatureCache", "cache_key", "config_hash", "default_cache_dir"]

_META = "__meta__"


def default_cache_dir() -> Path:
    """``$SOMLAB_CACHE/features`` if set, else ``~/.cache/somlab/features``."""
    base = os.environ.get("SOMLAB_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "somlab") / "features"


def config_hash(config: dict) -> str:
    """First 12 hex digits of the SHA-256 of ``config`` as sorted, compact JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_key(dataset: str, protocol: str, fraction, seed: int, config: dict) -> str:
    """``<dataset>_<protocol>_f<percent>_s<seed>_<hash>``, a file-name-safe key.

    >>> cache_key("mnist", "paper", 100, 0, {"epochs": 3})[:20]
    'mnist_paper_f100_s0_'
    """
    pct = f"{float(fraction):g}".replace(".", "p")
    return f"{dataset}_{protocol}_f{pct}_s{int(seed)}_{config_hash(config)}"


class FeatureCache:
    """Feature arrays in ``folder/<key>.npz``.

    Parameters
    ----------
    folder : path, optional
        Default :func:`default_cache_dir`.
    enabled : bool, default True
        False: :meth:`get_or_compute` always computes and nothing is written.
    """

    def __init__(self, folder=None, enabled: bool = True):
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.enabled = bool(enabled)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def save(self, key: str, arrays: dict, meta: dict | None = None) -> Path:
        """Write ``arrays`` (name -> ndarray, no object arrays) and ``meta`` (JSON) atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        if _META in payload:
            raise ValueError(f"array name {_META!r} is reserved")
        payload[_META] = np.array(json.dumps(meta or {}, sort_keys=True, default=str))
        dest = self.path(key)
        fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".part", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **payload)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the cache private to this user
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return dest

    def load(self, key: str, meta: dict | None = None) -> dict | None:
        """The arrays of ``key``, or None if there is no file or (``meta`` given) the file was
        written for another configuration. A file that cannot be read raises
        :class:`~somlab.DataError` naming it."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"corrupt feature cache file {path}: {text}") from None
        stored = arrays.pop(_META, None)
        if meta is not None:
            try:
                found = json.loads(str(stored)) if stored is not None else None
            except ValueError:
                found = None
            expected = json.loads(json.dumps(meta, sort_keys=True, default=str))
            if found != expected:
                return None
        return arrays

    def get_or_compute(self, key: str, compute, meta: dict | None = None) -> tuple[dict, bool]:
        """``(arrays, from_cache)``: the cached arrays of ``key`` or ``compute()`` (a dict of
        arrays), then saved. A corrupt file is reported with a warning and recomputed."""
        if self.enabled:
            try:
                found = self.load(key, meta)
            except DataError as exc:
                warnings.warn(f"{exc}; recomputing", RuntimeWarning, stacklevel=2)
                found = None
            if found is not None:
                return found, True
        arrays = compute()
        if self.enabled:
            self.save(key, arrays, meta)
        return arrays, False
