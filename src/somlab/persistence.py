"""Saving and loading estimators: safetensors for arrays, JSON for everything else.

One ``.safetensors`` file per model.  Its header metadata holds the format version, the class
name, ``get_params()`` and the fitted scalars as JSON; the fitted arrays are its tensors.  Files
are written to a temporary file in the same folder and renamed, so a crash never leaves half a
model behind.  A SHA-256 of the arrays and the JSON is stored with them and checked on loading,
so a damaged file is an error, not a model with wrong numbers.  Loading reads only tensors and
JSON: nothing in the file is ever executed or unpickled, the class is looked up in a fixed
registry of somlab estimators, and only the fitted attributes that class declares in
:data:`FITTED_ATTRIBUTES` are set, each checked for its kind and its shape (against
``grid_shape``, ``n_features_in_``, ``n_nodes_``, ``n_maps_``), so an edited file whose
checksum was recomputed cannot set ``__dict__`` or ``predict`` nor smuggle in a wrong shape.

Format versions: 2 (written now) requires the checksum; 1 (earlier releases) loads as before,
checked when it carries one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from ._errors import ModelFileError, WriteError, check_readable_file
from ._utils import resolve_device

FORMAT_NAME = "somlab"
FORMAT_VERSION = 2
#: Versions this somlab reads; a file of version 1 may lack the checksum.
READABLE_VERSIONS = ("1", "2")
_REGISTRY: dict[str, type] = {}

# ------------------------------------------------------------------ declared fitted attributes
# Each fitted attribute a class saves: ("array", kinds, shape) with numpy dtype kinds and a shape
# of symbols (R, C: grid_shape; F: n_features_in_; N: n_nodes_; K: n_maps_; "*": any length),
# or one of the scalar rules "count" (int >= 0), "number" (real or None), "bool", "dict",
# "scaler" (the CLI's scaler_), "rule" (a relevance map's decision rule).
# Attributes marked required must be in the file.  A class is looked up by name along its MRO;
# a SaveLoadMixin class in none of these (add new classes here) restores only names of the
# fitted form ("weights_", not "_x", "__dict__") that are no member of the class ("predict").
_LABEL_KINDS = "biuUO"
_RELEVANCE = {
    "prototypes_": ("array", "f", ("N", "F")),
    "relevances_": ("array", "f", ("N", "F")),
    "distance_averages_": ("array", "f", ("N", "F")),
    "node_class_index_": ("array", "iu", ("N",)),
    "node_classes_": ("array", _LABEL_KINDS, ("N",)),
    "node_wins_": ("array", "iu", ("N",)),
    "adjacency_": ("array", "b", ("N", "N")),
    "classes_": ("array", _LABEL_KINDS, ("*",)),
    "labels_": ("array", "iu", ("*",)),
    "n_features_in_": "count",
    "n_nodes_": "count",
    "supervised_": "bool",
    "history_": "dict",
    "feature_names_in_": ("array", "UO", ("F",)),
    # the default decision rule (relevance/_auto.py): the rule and what it predicts from
    "decision_": "rule",
    "cv_scores_": "dict",
    "labelled_X_": ("array", "f", ("*", "F")),
    "labelled_y_": ("array", "iu", ("*",)),
    "node_scores_": ("array", "f", ("N", "*")),
    "spread_X_": ("array", "f", ("*", "F")),
    "spread_scores_": ("array", "f", ("*", "*")),
    # the label-free default's merged nodes (relevance/_clusters.py)
    "cluster_centers_": ("array", "f", ("*", "F")),
    "node_clusters_": ("array", "iu", ("N",)),
    "cluster_scores_": "dict",
    "cluster_at_": "number",
}
FITTED_ATTRIBUTES: dict[str, dict] = {
    "SOM": {
        "weights_": ("array", "f", ("R", "C", "F")),
        "labels_": ("array", "iu", ("*",)),
        "n_features_in_": "count",
        "n_iter_": "count",
        "quantization_error_": "number",
        "topographic_error_": "number",
        "history_": "dict",
        "feature_names_in_": ("array", "UO", ("F",)),
        "scaler_": "scaler",  # set by `somlab fit --scale`
        "node_clusters_": ("array", "iu", ("*",)),  # set by SOM.cluster (prototype clusters)
        "cluster_scores_": "dict",
    },
    "SOMEnsemble": {
        "weights_": ("array", "f", ("K", "R", "C", "F")),
        "labels_": ("array", "iu", ("K", "*")),
        "quantization_error_": ("array", "f", ("K",)),
        "topographic_error_": ("array", "f", ("K",)),
        "n_features_in_": "count",
        "n_maps_": "count",
        "n_iter_": "count",
        "history_": "dict",
        "feature_names_in_": ("array", "UO", ("F",)),
    },
    "RelevanceMapBase": _RELEVANCE,
}
REQUIRED_ATTRIBUTES: dict[str, tuple] = {
    "SOM": ("weights_", "n_features_in_"),
    "SOMEnsemble": ("weights_", "n_features_in_", "n_maps_"),
    "RelevanceMapBase": ("prototypes_", "relevances_", "n_nodes_", "n_features_in_"),
}


_FITTED_NAME = re.compile(r"^[a-z][a-z0-9_]*_$")


def _declared(cls) -> tuple[dict, tuple] | None:
    """The declared attributes of ``cls`` (or of its nearest declared base), or None."""
    for base in cls.__mro__:
        if base.__name__ in FITTED_ATTRIBUTES:
            return FITTED_ATTRIBUTES[base.__name__], REQUIRED_ATTRIBUTES.get(base.__name__, ())
    return None


def _check_scalar(name: str, rule: str, value) -> None:
    ok = {
        "count": isinstance(value, Integral) and not isinstance(value, bool) and value >= 0,
        "number": value is None or (isinstance(value, Real) and not isinstance(value, bool)),
        "bool": isinstance(value, bool),
        "dict": isinstance(value, dict),
        "scaler": _is_scaler(value),
        "rule": _is_rule(value),
    }[rule]
    if not ok:
        raise ValueError(f"attribute {name} must be {rule}, got {type(value).__name__}")


def _is_rule(value) -> bool:
    """A relevance map's ``decision_``: one of the decision rules of relevance/_auto.py."""
    from .relevance._auto import ALL_RULES

    return isinstance(value, str) and value in ALL_RULES


def _is_scaler(value) -> bool:
    """The CLI's ``scaler_``: a kind and two lists of finite numbers, scales > 0 (their length
    is checked against n_features_in_ in :func:`_check_state`)."""
    if not isinstance(value, dict) or set(value) != {"kind", "offset", "scale"}:
        return False
    if value["kind"] not in ("minmax", "standard"):
        return False
    for key in ("offset", "scale"):
        v = value[key]
        if not isinstance(v, list) or not all(
            isinstance(t, Real) and not isinstance(t, bool) and np.isfinite(t) for t in v
        ):
            return False
    return len(value["offset"]) == len(value["scale"]) and all(t > 0 for t in value["scale"])


def _check_state(model, arrays: dict, scalars: dict) -> None:
    """Refuse names the class does not declare, wrong kinds and shapes (ValueError)."""
    declared = _declared(type(model))
    if declared is None:  # a class outside the table: fitted-looking names that are no member
        for name in {**scalars, **arrays}:
            if not _FITTED_NAME.match(name) or hasattr(type(model), name):
                raise ValueError(f"attribute {name!r} is not a fitted attribute name")
        return
    rules, required = declared
    names = {**scalars, **arrays}
    unknown = sorted(set(names) - set(rules))
    if unknown:
        raise ValueError(f"attribute {unknown[0]!r} is not one {type(model).__name__} declares")
    missing = [n for n in required if n not in names]
    if missing:
        raise ValueError(f"attribute {missing[0]} is missing")
    for name, rule in rules.items():
        if name in names and isinstance(rule, str):
            _check_scalar(name, rule, names[name])
    sc = scalars.get("scaler_")
    if sc is not None and len(sc["offset"]) != scalars.get("n_features_in_"):
        raise ValueError("attribute scaler_ does not have one value per feature")
    sizes = {"F": scalars.get("n_features_in_"), "N": scalars.get("n_nodes_")}
    sizes["K"] = scalars.get("n_maps_")
    grid = getattr(model, "grid_shape", None)
    if grid is not None:
        from .core.grids import parse_grid_shape

        dims = parse_grid_shape(grid)  # (R, C) or, for a 3-D grid, (R, C, L)
        sizes["R"], sizes["C"] = dims[:2]
        sizes["L"] = dims[2] if len(dims) == 3 else None
    for name, rule in rules.items():
        if name not in names or isinstance(rule, str):
            continue
        _, kinds, shape = rule
        if sizes.get("L") is not None and "C" in shape:  # a 3-D grid: (R, C, L, ...)
            shape = shape[: shape.index("C") + 1] + ("L",) + shape[shape.index("C") + 1 :]
        a = names[name]
        if not isinstance(a, np.ndarray) or a.dtype.kind not in kinds:
            kind = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"attribute {name} has the wrong type ({kind})")
        if a.ndim != len(shape):
            raise ValueError(f"attribute {name} has shape {a.shape}, expected {len(shape)} axes")
        for axis, (sym, n) in enumerate(zip(shape, a.shape)):
            want = sizes.get(sym)
            if want is not None and n != want:
                raise ValueError(
                    f"attribute {name} has shape {a.shape}; axis {axis} should be {want} ({sym})"
                )


def _array_from_json(name: str, value: dict) -> np.ndarray:
    """An array stored as JSON (strings, labels): only plain kinds and plain values."""
    dt, items = value.get("dtype"), value.get("__ndarray__")
    try:
        dtype = np.dtype(dt) if isinstance(dt, str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _LABEL_KINDS + "f" or not isinstance(items, list):
        raise ValueError(f"attribute {name} has an unsupported stored dtype {dt!r}")
    if any(not isinstance(v, (str, int, float)) or isinstance(v, bool) for v in items):
        raise ValueError(f"attribute {name} holds values other than strings and numbers")
    return np.array(items, dtype=object if dtype.kind == "O" else dtype)


# ------------------------------------------------------------------ atomic writes
def _os_error_of(exc: BaseException) -> int | None:
    """The errno behind an exception of ours or of a library (safetensors reports its I/O
    errors as text, e.g. 'Os { code: 28, kind: StorageFull ... }')."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    m = re.search(r"code: (\d+)", str(exc))
    return int(m.group(1)) if m else None


def atomic_write(path, write, *, what: str = "the file") -> Path:
    """Write ``path`` through ``write(tmp_path)`` on a temporary file in the same folder, then
    rename it into place: readers see the old file or the new one, never half of one.  Any
    failure (a full disk included) removes the temporary file, leaves an existing ``path`` as
    it was and raises :class:`somlab._errors.WriteError` (an ``OSError``) naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot save {what} to {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc, what) from None
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; our files are documents
        os.replace(tmp, path)
    except Exception as exc:
        raise _write_error(path, exc, what) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _write_error(path: Path, exc: BaseException, what: str) -> WriteError:
    code = _os_error_of(exc)
    reason = os.strerror(code) if code else " ".join(str(exc).split())[:200]
    kept = " (the existing file is unchanged)" if path.exists() else ""
    err = WriteError(f"cannot save {what} to {path}: {reason}{kept}")
    err.errno, err.filename = code, str(path)
    return err


def atomic_write_text(path, text: str, *, what: str = "the file") -> Path:
    """:func:`atomic_write` of a text file (UTF-8)."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write, what=what)


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
        """Set the fitted attributes read from a file: only those the class declares (see
        :data:`FITTED_ATTRIBUTES`), each of the declared kind and shape (ValueError if not)."""
        scalars = dict(scalars)
        for key, value in scalars.items():
            if isinstance(value, dict) and "__ndarray__" in value:
                scalars[key] = _array_from_json(key, value)
        _check_state(self, arrays, scalars)
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
        unknown = sorted(set(arrays) | set(scalars))
        declared = _declared(type(self))
        if declared is not None and type(self)._state_for_save is SaveLoadMixin._state_for_save:
            unknown = [n for n in unknown if n not in declared[0]]
            if unknown:  # it could be saved but never loaded: say so now, not at load time
                raise TypeError(
                    f"{type(self).__name__} has the fitted attribute {unknown[0]} that "
                    "somlab.persistence.FITTED_ATTRIBUTES does not declare; add it there"
                )
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
        return atomic_write(
            path, lambda tmp: save_file(arrays, tmp, metadata=meta), what="the model"
        )


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


def _check_model_path(path: Path) -> None:
    """Missing, a folder, or not readable: three different messages."""
    check_readable_file(
        path,
        ModelFileError,
        missing="model file not found: {path}",
        folder="{path} is a folder, not a model file",
        unreadable="cannot read the model file {path}: {why}",
    )


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
    _check_model_path(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ModelFileError(f"{path} is not a readable somlab model file ({exc})") from None
    if meta.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} is not a somlab model file")
    version = meta.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path} has model format version {version}; this somlab reads versions "
            f"{', '.join(READABLE_VERSIONS)}; upgrade somlab to load it"
        )
    cls = _REGISTRY.get(meta.get("class", ""))
    if cls is None:  # `import somlab` is lazy: register the estimators, then look again
        import somlab

        for name in somlab._LAZY:
            getattr(somlab, name)
        cls = _REGISTRY.get(meta.get("class", ""))
    if cls is None:
        raise ModelFileError(f"{path} holds an unknown model class {meta.get('class')!r}")
    if "sha256" not in meta and version != "1":
        raise ModelFileError(
            f"{path} has no checksum, which every version-{version} model file carries: "
            "the file was edited"
        )
    if "sha256" in meta:  # version-1 files written before the checksum existed load unchecked
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
