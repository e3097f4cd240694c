"""Saving and loading estimators: safetensors for arrays, JSON for everything else.

One ``.safetensors`` file per model.  Its header metadata holds the format version, the class
name, ``get_params()`` and the fitted scalars as JSON; the fitted arrays are its tensors.  Files
are written to a temporary file in the same folder and renamed, so a crash never leaves half a
model behind.  A SHA-256 of the arrays and the JSON is stored with them and checked on loading,
so a damaged file is an error, not a model with wrong numbers.  Loading reads only tensors and
JSON: nothing in the file is ever executed or unpickled, and the class is looked up in a fixed
registry of somlab estimators.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ._errors import ModelFileError
from ._utils import resolve_device

FORMAT_NAME = "somlab"
FORMAT_VERSION = 1
_REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator: make ``cls`` loadable by :func:`load` under its class name."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a model file")


class SaveLoadMixin:
    """Adds ``save(path)``; see :func:`load`."""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        register(cls)

    def _state_for_save(self):
        arrays, scalars = {}, {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                arrays[key] = np.ascontiguousarray(value)
            elif isinstance(value, np.ndarray):  # labels as strings: JSON, not tensors
                scalars[key] = {"__ndarray__": value.tolist(), "dtype": value.dtype.str}
            else:
                scalars[key] = _jsonable(value)
        return arrays, scalars

    def _restore_state(self, arrays, scalars):
        for key, value in scalars.items():
            if isinstance(value, dict) and "__ndarray__" in value:
                dt = value["dtype"]
                scalars[key] = np.array(value["__ndarray__"], dtype=object if "O" in dt else dt)
        for key, value in {**scalars, **arrays}.items():
            setattr(self, key, value)

    def save(self, path) -> Path:
        """Write the fitted model to ``path`` atomically (read back with
        :func:`somlab.load`); returns the path."""
        from safetensors.numpy import save_file

        if not any(k.endswith("_") and not k.startswith("_") for k in vars(self)):
            raise ValueError(f"{type(self).__name__} is not fitted yet; call fit before save")
        path = Path(path)
        arrays, scalars = self._state_for_save()
        params = self.get_params(deep=False)
        seeds = params.get("random_state")
        for seed in seeds if isinstance(seeds, (list, tuple)) else [seeds]:
            if not (seed is None or isinstance(seed, (int, np.integer))):
                raise ValueError(
                    "a model file stores random_state as an int or None, not "
                    f"{type(seed).__name__}; set_params(random_state=<int>) first"
                )
        meta = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "class": type(self).__name__,
            "params": json.dumps(_jsonable(params)),
            "attributes": json.dumps(scalars),
        }
        meta["sha256"] = _digest(arrays, meta["params"], meta["attributes"])
        if path.is_dir():
            raise IsADirectoryError(f"cannot save the model to {path}: it is a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        try:
            save_file(arrays, tmp, metadata=meta)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a model file is a document
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def _digest(arrays: dict, params: str, attributes: str) -> str:
    """SHA-256 of every array (name, dtype, shape, bytes) and of the two JSON strings."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    h.update(params.encode())
    h.update(b"|")
    h.update(attributes.encode())
    return h.hexdigest()


def _umask() -> int:
    """The process umask: read from /proc on Linux (setting it to read it races with threads
    that create files), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _params_from_json(params: dict) -> dict:
    # JSON has no tuples; estimator parameters that were tuples (grid shapes) come back as lists.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def load(path, device=None):
    """Load a model saved with ``model.save(path)``.

    ``device`` (e.g. ``"cpu"``) replaces the saved model's ``device`` parameter, so a model
    trained on a GPU predicts on a machine without one.  Raises :class:`somlab.ModelFileError`
    for a missing, truncated, corrupt or foreign file, or one written by an unknown format
    version.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ModelFileError(f"{path} is not a readable somlab model file ({exc})") from None
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a somlab model file")
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise ModelFileError(
            f"{path} has model format version {version}; this somlab reads version "
            f"{FORMAT_VERSION}; upgrade somlab to load it"
        )
    cls = _REGISTRY.get(meta.get("class", ""))
    if cls is None:  # `import somlab` is lazy: register the estimators, then look again
        import somlab

        for name in somlab._LAZY:
            getattr(somlab, name)
        cls = _REGISTRY.get(meta.get("class", ""))
    if cls is None:
        raise ModelFileError(f"{path} holds an unknown model class {meta.get('class')!r}")
    if "sha256" in meta:  # files written before the checksum existed load unchecked
        try:
            ok = meta["sha256"] == _digest(arrays, meta["params"], meta["attributes"])
        except KeyError as exc:
            raise ModelFileError(f"{path} has corrupt model metadata (no {exc})") from None
        if not ok:
            raise ModelFileError(
                f"{path} is damaged: its contents do not match the checksum written with them"
            )
    try:
        params = _params_from_json(json.loads(meta["params"]))
        scalars = json.loads(meta["attributes"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has corrupt model metadata ({exc})") from None
    if device is not None:
        if "device" not in params:
            raise ValueError(f"{cls.__name__} has no device parameter; load it without device=")
        resolve_device(device)  # a bad name or a missing GPU: ValueError naming it
        params["device"] = device
    elif "device" in params:
        try:
            resolve_device(params["device"])
        except ValueError:
            raise ModelFileError(
                f"{path} was saved with device={params['device']!r}, which this machine lacks; "
                "load it with somlab.load(path, device='cpu')"
            ) from None
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has corrupt model metadata ({exc})") from None
    try:
        model._restore_state(arrays, scalars)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} holds an inconsistent {cls.__name__} ({exc})") from None
    return model
