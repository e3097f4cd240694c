"""The UCI datasets of the Batch SS-SOM paper, in 3 times 3 folds, bundled as package data.

The archive ``data/uci-3x3folds.tar.xz`` holds, for each dataset and fold ``x<r>_k<k>``, a Train
and a Test ARFF file and six Train variants (``TrainS01`` ... ``TrainS75``) in which all but about
1 %, 5 %, 10 %, 25 %, 50 % or 75 % of the training labels are replaced by the class 999
("unlabelled"). The archive is read with :mod:`tarfile` straight into memory; parsed arrays are
cached per process.
"""

from __future__ import annotations

import csv
import io
import math
import tarfile
import threading
from collections import OrderedDict
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from .._errors import DataError
from ._readers import _one_line, parse_arff_bytes

__all__ = [
    "LABELLED_FRACTIONS",
    "UCI_DATASETS",
    "load_sssom_params",
    "load_uci",
    "uci_folds",
]

#: Names of the bundled UCI datasets.
UCI_DATASETS: tuple[str, ...] = (
    "breast",
    "diabetes",
    "glass",
    "liver",
    "pendigits",
    "shape",
    "vowel",
)

#: Fractions of labelled training samples available through ``load_uci(labelled=...)``.
LABELLED_FRACTIONS: tuple[float, ...] = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 1.0)

_ARCHIVE_NAME = "uci-3x3folds.tar.xz"
_PARAMS_NAME = "sssom_0.csv"
_ROOT = "Datasets"
_FOLDER = "Realdata_3Times3FoldsExp_"
_FRACTION_FOLDERS = {
    0.01: "TrainS01",
    0.05: "TrainS05",
    0.10: "TrainS10",
    0.25: "TrainS25",
    0.50: "TrainS50",
    0.75: "TrainS75",
}
_GROUP_FOLDERS = ("Train", "Test", *_FRACTION_FOLDERS.values())
_RAW_CACHE_LIMIT = 48 * 1024 * 1024  # bytes of raw ARFF text kept in memory

_lock = threading.RLock()
_raw_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_raw_cache_size = 0


def uci_folds() -> list[str]:
    """The nine fold names, in order: ``x1_k1, x1_k2, x1_k3, x2_k1, ..., x3_k3``."""
    return [f"x{r}_k{k}" for r in (1, 2, 3) for k in (1, 2, 3)]


# --------------------------------------------------------------------------- argument checks


def _resolve_name(name) -> str:
    if not isinstance(name, str) or name.strip().lower() not in UCI_DATASETS:
        raise DataError(f"unknown UCI dataset {name!r}; choose one of: {', '.join(UCI_DATASETS)}")
    return name.strip().lower()


def _resolve_fold(fold) -> str:
    folds = uci_folds()
    if isinstance(fold, bool):
        pass
    elif isinstance(fold, (int, np.integer)):
        if 0 <= int(fold) < len(folds):
            return folds[int(fold)]
    elif isinstance(fold, str):
        f = fold.strip().lower()
        if f in folds:
            return f
    elif isinstance(fold, (tuple, list)) and len(fold) == 2:
        r, k = fold
        if (
            all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (r, k))
            and 1 <= r <= 3
            and 1 <= k <= 3
        ):
            return f"x{int(r)}_k{int(k)}"
    raise DataError(
        f"bad fold {fold!r}: use a name 'x<r>_k<k>' (r, k in 1..3), a tuple (r, k) or an index 0..8"
    )


def _resolve_labelled(labelled) -> float:
    if not isinstance(labelled, bool) and isinstance(labelled, (int, float, np.number)):
        for f in LABELLED_FRACTIONS:
            if math.isclose(float(labelled), f, rel_tol=0, abs_tol=1e-9):
                return f
    raise DataError(
        f"bad labelled fraction {labelled!r}; choose one of: "
        + ", ".join(f"{f:g}" for f in LABELLED_FRACTIONS)
    )


# --------------------------------------------------------------------------- archive access


def _member(folder: str, name: str, fold: str) -> str:
    prefix = "test" if folder == "Test" else "train"
    return f"{_ROOT}/{_FOLDER}{folder}/{prefix}_{name}_{fold}.arff"


def _source(data_home) -> tuple[str, str]:
    """Resolve ``data_home`` to ``("bundled"|"tar"|"dir", location)``."""
    if data_home is None:
        return ("bundled", _ARCHIVE_NAME)
    p = Path(data_home).expanduser()
    if p.is_file():
        return ("tar", str(p.resolve()))
    if p.is_dir():
        if (p / _ARCHIVE_NAME).is_file():
            return ("tar", str((p / _ARCHIVE_NAME).resolve()))
        if (p / _ROOT / f"{_FOLDER}Train").is_dir():
            return ("dir", str(p.resolve()))
        if (p / f"{_FOLDER}Train").is_dir():
            return ("dir", str(p.resolve().parent))
        raise DataError(
            f"no UCI data under {p}: expected {_ARCHIVE_NAME} or an extracted {_ROOT}/ folder"
        )
    raise DataError(f"UCI data_home not found: {p}")


def _open_archive(source: tuple[str, str]):
    kind, loc = source
    if kind == "bundled":
        return resources.files(__package__).joinpath("data", _ARCHIVE_NAME).open("rb")
    return open(loc, "rb")


def _describe(source: tuple[str, str]) -> str:
    return f"bundled {_ARCHIVE_NAME}" if source[0] == "bundled" else source[1]


def _store(key: tuple[str, str], raw: bytes) -> None:
    global _raw_cache_size
    if key in _raw_cache:
        _raw_cache.move_to_end(key)
        return
    _raw_cache[key] = raw
    _raw_cache_size += len(raw)
    while _raw_cache_size > _RAW_CACHE_LIMIT and len(_raw_cache) > 1:
        _, old = _raw_cache.popitem(last=False)
        _raw_cache_size -= len(old)


def _fetch(
    source: tuple[str, str], members: list[str], optional: tuple[str, ...] = ()
) -> dict[str, bytes]:
    """Raw bytes of archive members, read in one pass over the archive (cached).

    Members in ``optional`` are read too when present (prefetch); their absence is no error.
    """
    with _lock:
        found = {}
        for m in members:
            key = (_describe(source), m)
            if key in _raw_cache:
                _raw_cache.move_to_end(key)
                found[m] = _raw_cache[key]
        wanted = {m for m in members if m not in found}
        if not wanted:
            return found
        kind, loc = source
        if kind == "dir":  # no point in prefetching from plain files
            for m in sorted(wanted):
                p = Path(loc) / m
                if not p.is_file():
                    raise DataError(f"UCI data folder {loc} lacks {m}")
                try:
                    found[m] = p.read_bytes()
                except OSError as exc:
                    raise DataError(f"cannot read {p}: {_one_line(exc)}") from None
            return found
        extra = {m for m in optional if m not in found and (_describe(source), m) not in _raw_cache}
        grab = wanted | extra
        try:
            with _open_archive(source) as fh, tarfile.open(fileobj=fh, mode="r:*") as tar:
                for info in tar:
                    name = info.name[2:] if info.name.startswith("./") else info.name
                    if name in grab and info.isfile():
                        extracted = tar.extractfile(info)
                        found[name] = extracted.read() if extracted is not None else b""
                        _store((_describe(source), name), found[name])
                        wanted.discard(name)
                        grab.discard(name)
                        if not grab:
                            break
        except (OSError, EOFError, tarfile.TarError, ValueError) as exc:
            raise DataError(
                f"cannot read UCI archive {_describe(source)}: {_one_line(exc)}"
            ) from None
        except Exception as exc:  # lzma.LZMAError and friends
            raise DataError(
                f"cannot read UCI archive {_describe(source)}: {_one_line(exc)}"
            ) from None
        if wanted:
            raise DataError(
                f"UCI archive {_describe(source)} lacks {sorted(wanted)[0]}"
                + (f" and {len(wanted) - 1} more files" if len(wanted) > 1 else "")
            )
        return found


_parsed_cache: dict[tuple[tuple[str, str], str], tuple[np.ndarray, np.ndarray]] = {}


def _parsed(source: tuple[str, str], member: str, prefetch: tuple[str, ...] = ()):
    """Parsed ``(X, y)`` of an archive member (read-only arrays, cached).

    When the member has to be read from the archive, the not yet parsed members in
    ``prefetch`` are read in the same pass and kept as raw bytes for later.
    """
    key = (source, member)
    with _lock:
        if key in _parsed_cache:
            return _parsed_cache[key]
        raw_key = (_describe(source), member)
        if raw_key in _raw_cache:
            raw = _raw_cache[raw_key]
        else:
            extra = tuple(m for m in prefetch if m != member and (source, m) not in _parsed_cache)
            raw = _fetch(source, [member], extra)[member]
        X, y = parse_arff_bytes(raw, f"{_describe(source)}:{member}")
        if y is None:
            raise DataError(f"{_describe(source)}:{member}: no class attribute")
        X.setflags(write=False)
        y.setflags(write=False)
        _parsed_cache[key] = (X, y)
        _drop_raw(raw_key)
        return X, y


def _drop_raw(raw_key: tuple[str, str]) -> None:
    global _raw_cache_size
    raw = _raw_cache.pop(raw_key, None)
    if raw is not None:
        _raw_cache_size -= len(raw)


def _group(name: str, fold: str) -> tuple[str, ...]:
    return tuple(_member(folder, name, fold) for folder in _GROUP_FOLDERS)


# --------------------------------------------------------------------------- public loaders


def load_uci(name: str, fold="x1_k1", labelled: float = 1.0, data_home=None):
    """Load one fold of a bundled UCI dataset.

    Parameters
    ----------
    name : str
        One of :data:`UCI_DATASETS`.
    fold : str, tuple or int
        ``"x<r>_k<k>"`` (repetition r, fold k, both 1..3), a tuple ``(r, k)`` or an index
        0..8 into :func:`uci_folds`.
    labelled : float
        Fraction of training labels to keep: 1.0 (all, the Train files), 0 (none), or 0.01,
        0.05, 0.10, 0.25, 0.50, 0.75 (the authors' TrainSxx files).
    data_home : path, optional
        Where to read the data instead of the bundled archive: a ``.tar.xz`` file, a folder
        holding ``uci-3x3folds.tar.xz`` or an extracted ``Datasets/`` folder.

    Returns
    -------
    sklearn.utils.Bunch
        ``X_train`` (float32), ``y_train`` (int64, ``-1`` = unlabelled), ``y_train_true``,
        ``X_test``, ``y_test``, ``name``, ``fold`` (str), ``labelled`` (float), ``n_classes``.
    """
    from sklearn.utils import Bunch

    name = _resolve_name(name)
    fold = _resolve_fold(fold)
    labelled = _resolve_labelled(labelled)
    source = _source(data_home)
    group = _group(name, fold)
    X_train, y_true = _parsed(source, _member("Train", name, fold), group)
    X_test, y_test = _parsed(source, _member("Test", name, fold), group)
    if X_train.shape[1] != X_test.shape[1]:
        raise DataError(
            f"UCI {name} {fold}: train has {X_train.shape[1]} features, test {X_test.shape[1]}"
        )
    if labelled == 1.0:
        y_train = y_true.copy()
    elif labelled == 0.0:
        y_train = np.full_like(y_true, -1)
    else:
        member = _member(_FRACTION_FOLDERS[labelled], name, fold)
        X_s, y_s = _parsed(source, member, group)
        if X_s.shape != X_train.shape or not np.array_equal(X_s, X_train):
            raise DataError(
                f"UCI {name} {fold}: the samples of {member} differ from the Train file"
            )
        known = y_s >= 0
        if not np.array_equal(y_s[known], y_true[known]):
            raise DataError(f"UCI {name} {fold}: labels in {member} differ from the true labels")
        y_train = y_s.copy()
    classes = np.union1d(y_true, y_test)
    return Bunch(
        X_train=X_train.copy(),
        y_train=y_train,
        y_train_true=y_true.copy(),
        X_test=X_test.copy(),
        y_test=y_test.copy(),
        name=name,
        fold=fold,
        labelled=labelled,
        n_classes=int(classes[classes >= 0].size),
    )


@cache
def _uci_summary_cached(source: tuple[str, str]) -> tuple[tuple[str, int, int, int], ...]:
    members = []
    for name in UCI_DATASETS:
        members += [_member("Train", name, "x1_k1"), _member("Test", name, "x1_k1")]
    with _lock:  # one pass over the archive for all members not parsed yet
        missing = [m for m in members if (source, m) not in _parsed_cache]
        if missing:
            _fetch(source, missing)
    out = []
    for name in UCI_DATASETS:
        X_tr, y_tr = _parsed(source, _member("Train", name, "x1_k1"))
        X_te, y_te = _parsed(source, _member("Test", name, "x1_k1"))
        classes = np.union1d(y_tr, y_te)
        out.append((name, X_tr.shape[0] + X_te.shape[0], X_tr.shape[1], int((classes >= 0).sum())))
    return tuple(out)


def uci_summary(data_home=None) -> list[dict]:
    """``[{name, n_samples, n_features, n_classes}]`` of the UCI datasets (fold x1_k1 train +
    test, which together hold every sample once), computed from the data and cached."""
    rows = _uci_summary_cached(_source(data_home))
    return [{"name": n, "n_samples": s, "n_features": f, "n_classes": c} for n, s, f, c in rows]


_PARAM_INT_COLUMNS = ("age_wins", "epochs", "seed")


def load_sssom_params(path=None) -> dict[str, np.ndarray]:
    """The SS-SOM authors' 500 Latin-hypercube parameter settings (``data/sssom_0.csv``).

    Returns a dict of columns, in file order: ``at, lp, beta, age_wins, e_b, e_n, s, minwd,
    epochs, push, seed`` (``age_wins``, ``epochs`` and ``seed`` as int64, the rest float64).
    ``path`` reads another file of the same layout (e.g. ``deep-sssom_0.csv``) instead.
    """
    if path is None:
        source = f"bundled {_PARAMS_NAME}"
        try:
            text = resources.files(__package__).joinpath("data", _PARAMS_NAME).read_text("utf-8")
        except OSError as exc:
            raise DataError(f"cannot read {source}: {_one_line(exc)}") from None
    else:
        p = Path(path).expanduser()
        source = str(p)
        try:
            text = p.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {p}: {_one_line(exc)}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{source}: no parameter rows")
    header = [c.strip() for c in rows[0]]
    body = rows[1:]
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise DataError(f"{source}: line {i} has {len(r)} fields, expected {len(header)}")
    try:
        table = np.array(body, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{source}: non-numeric value ({_one_line(exc)})") from None
    out: dict[str, np.ndarray] = {}
    for j, col in enumerate(header):
        values = table[:, j]
        if col in _PARAM_INT_COLUMNS:
            if not np.all(values == np.round(values)):
                raise DataError(f"{source}: column {col!r} must hold integers")
            out[col] = values.astype(np.int64)
        else:
            out[col] = values
    return out
