"""Readers for tabular data files: CSV/TSV/TXT, NPY, NPZ, ARFF and Parquet.

Every reader returns ``(X, y)``: ``X`` a float32 array of shape ``(n, m)`` and ``y`` an int64
array of shape ``(n,)`` or ``None``. Unlabelled samples get the label ``-1`` (scikit-learn's
semi-supervised convention). Every problem with the input raises :class:`~somlab.DataError` with
a one-line message that names the file; finiteness of ``X`` is left to the estimators.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .._errors import DataError

__all__ = ["load_file", "read_arff", "read_csv", "read_npy", "read_npz", "read_parquet"]

#: Class values that mean "unlabelled" by default (the SS-SOM ARFF files use 999).
DEFAULT_UNLABELLED: tuple = (999, "?")

# Tokens read as a missing feature value (NaN) in text files.
_MISSING_TOKENS = frozenset({"", "?", "na", "n/a", "nan", "null", "none"})

_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".data", ".dat")
_NPZ_KEYS = (("X", "y"), ("x", "y"), ("x_train", "y_train"), ("X_train", "y_train"))

PathLike = str | os.PathLike


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException) -> str:
    """A short, single-line description of an exception from a third-party parser."""
    text = " ".join(str(exc).split())
    if not text:
        text = type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_path(path: PathLike) -> Path:
    try:
        p = Path(os.fspath(path)).expanduser()
    except TypeError:
        raise DataError(f"expected a file path, got {type(path).__name__}") from None
    if not p.exists():
        raise DataError(f"file not found: {p}")
    if p.is_dir():
        raise DataError(f"expected a file, got a directory: {p}")
    return p


_NPY_MAGIC = (b"\x93NUMPY",)
_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _check_magic(p: Path, magics: tuple[bytes, ...], kind: str) -> None:
    """Refuse a file whose first bytes are not those of ``kind`` (before numpy guesses)."""
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise DataError(f"cannot read {p}: {_one_line(exc)}") from None
    if not head:
        raise DataError(f"cannot read {p}: the file is empty")
    if not any(head.startswith(m) for m in magics):
        raise DataError(f"cannot read {p}: not a {kind} file (unexpected leading bytes)")


def _suffix(p: Path) -> str:
    """The format suffix, lower case, looking through a trailing ``.gz``."""
    suffixes = [s.lower() for s in p.suffixes]
    if not suffixes:
        return ""
    if suffixes[-1] == ".gz" and len(suffixes) >= 2:
        return suffixes[-2]
    return suffixes[-1]


def _read_bytes(p: Path) -> bytes:
    try:
        if p.suffix.lower() == ".gz":
            with gzip.open(p, "rb") as fh:
                return fh.read()
        return p.read_bytes()
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {p}: {_one_line(exc)}") from None


def _read_text(p: Path) -> str:
    raw = _read_bytes(p)
    if b"\x00" in raw[:65536]:
        raise DataError(f"cannot read {p}: binary data in a text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _as_features(a: np.ndarray, source: str, *, copy_ok: bool = True) -> np.ndarray:
    """Validate a feature array and return it as float32 of shape (n, m)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{source}: features must be numeric, got dtype {a.dtype}")
    if a.ndim == 1:
        raise DataError(
            f"{source}: expected a 2-D array (samples x features), got shape {a.shape}; "
            "reshape a single feature to (-1, 1)"
        )
    if a.ndim == 0:
        raise DataError(f"{source}: expected a 2-D array, got a scalar")
    if a.ndim > 2:
        a = a.reshape(a.shape[0], -1)
    if a.shape[0] == 0:
        raise DataError(f"{source}: no samples (the data is empty)")
    if a.shape[1] == 0:
        raise DataError(f"{source}: no feature columns")
    if a.dtype == np.float32:
        return a
    return a.astype(np.float32)


def _split_unlabelled(unlabelled: Iterable) -> tuple[set[float], set[str]]:
    nums: set[float] = set()
    strs: set[str] = set()
    for u in unlabelled or ():
        if isinstance(u, bytes):
            u = u.decode("utf-8", "replace")
        if isinstance(u, str):
            strs.add(u.strip())
            try:
                nums.add(float(u))
            except ValueError:
                pass
        elif isinstance(u, (int, float, np.integer, np.floating)) and not isinstance(u, bool):
            nums.add(float(u))
            if float(u).is_integer():
                strs.add(str(int(u)))
        else:
            raise DataError(f"unlabelled markers must be numbers or strings, got {u!r}")
    return nums, strs


def _numeric_labels(v: np.ndarray, source: str, nums: set[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    unl = np.isnan(v) | (v == -1)
    if nums:
        unl |= np.isin(v, np.fromiter(nums, dtype=np.float64))
    rest = v[~unl]
    if rest.size:
        if not np.all(np.isfinite(rest)) or not np.all(rest == np.round(rest)):
            bad = rest[~(np.isfinite(rest) & (rest == np.round(rest)))][0]
            raise DataError(f"{source}: class labels must be integers, found {float(bad)!r}")
        if rest.min() < 0:
            raise DataError(
                f"{source}: class labels must be >= 0 (or -1 for unlabelled), "
                f"found {int(rest.min())}"
            )
    out = np.full(v.shape, -1, dtype=np.int64)
    out[~unl] = rest.astype(np.int64)
    return out


def _as_labels(values, source: str, unlabelled: Iterable = DEFAULT_UNLABELLED) -> np.ndarray:
    """Turn a column of class values into int64 labels, with -1 for unlabelled.

    Numeric (or numeric-looking) values must be integers; anything else is taken as class
    names, mapped in sorted order to ``0..C-1``. Values in ``unlabelled``, NaN, empty strings
    and ``-1`` become ``-1``.
    """
    v = np.asarray(values)
    if v.ndim != 1:
        raise DataError(f"{source}: labels must be 1-D, got shape {v.shape}")
    nums, strs = _split_unlabelled(unlabelled)
    if v.dtype.kind in "biuf":
        return _numeric_labels(v, source, nums)
    if v.dtype.kind not in "SUO":
        raise DataError(f"{source}: unsupported label dtype {v.dtype}")
    tokens = [(t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)).strip() for t in v]
    unl = np.array([t in strs or t == "" for t in tokens], dtype=bool)
    rest = [t for t, u in zip(tokens, unl) if not u]
    try:
        numbers = np.array([float(t) for t in rest], dtype=np.float64)
    except ValueError:
        numbers = None
    out = np.full(len(tokens), -1, dtype=np.int64)
    if numbers is not None:
        out[~unl] = _numeric_labels(numbers, source, nums)
        return out
    names = sorted(set(rest))
    lookup = {name: i for i, name in enumerate(names)}
    out[~unl] = [lookup[t] for t in rest]
    return out


def _check_labels_length(X: np.ndarray, y: np.ndarray | None, source: str) -> None:
    if y is not None and y.shape[0] != X.shape[0]:
        raise DataError(f"{source}: {X.shape[0]} samples but {y.shape[0]} labels")


def _resolve_label_index(label_column, names: Sequence[str] | None, ncols: int, source: str):
    """Column index of the label column, or None."""
    if label_column is None:
        return None
    if isinstance(label_column, bool):
        raise DataError(f"{source}: label_column must be None, 'last', a name or an int")
    if isinstance(label_column, (int, np.integer)):
        i = int(label_column)
        if not -ncols <= i < ncols:
            raise DataError(f"{source}: label_column={i} is out of range for {ncols} columns")
        idx = i % ncols
    elif isinstance(label_column, str):
        if label_column == "last":
            idx = ncols - 1
        elif names is not None and label_column in names:
            idx = list(names).index(label_column)
        elif names is None:
            raise DataError(
                f"{source}: label column {label_column!r} requested but the file has no header"
            )
        else:
            raise DataError(
                f"{source}: no column named {label_column!r} (columns: {', '.join(names)})"
            )
    else:
        raise DataError(
            f"{source}: label_column must be None, 'last', a name or an int, "
            f"got {type(label_column).__name__}"
        )
    if ncols < 2:
        raise DataError(f"{source}: a label column needs at least one other (feature) column")
    return idx


# --------------------------------------------------------------------------- CSV / TSV / TXT


def _is_number_token(t: str) -> bool:
    t = t.strip()
    if t.lower() in _MISSING_TOKENS:
        return True
    try:
        float(t)
    except ValueError:
        return False
    return True


def _sniff_delimiter(line: str, suffix: str) -> str | None:
    preferred = {".csv": ",", ".tsv": "\t"}.get(suffix)
    if preferred is not None and preferred in line:
        return preferred
    for d in ("\t", ",", ";"):
        if d in line:
            return d
    return None  # runs of whitespace


def _tokenize(lines: list[str], delimiter: str | None) -> list[list[str]]:
    if delimiter is None:
        return [ln.split() for ln in lines]
    if len(delimiter) != 1:
        return [[t.strip() for t in ln.split(delimiter)] for ln in lines]
    return [[t.strip() for t in row] for row in csv.reader(lines, delimiter=delimiter)]


def _detect_header(first: list[str], second: list[str] | None) -> bool:
    f_num = [_is_number_token(t) for t in first]
    if all(f_num):
        return False
    if second is None:
        return not any(f_num)
    s_num = [_is_number_token(t) for t in second]
    if any((not a) and b for a, b in zip(f_num, s_num)):
        return True
    return not any(f_num)


def _convert_feature_tokens(
    cells: np.ndarray, source: str, col_names: list[str], line_numbers: list[int]
) -> np.ndarray:
    """Convert a (n, m) array of string tokens to float64, missing tokens -> NaN."""
    try:
        return cells.astype(np.float64)
    except ValueError:
        pass
    lowered = np.char.lower(np.char.strip(cells.astype(str)))
    missing = np.isin(lowered, list(_MISSING_TOKENS))
    cleaned = np.where(missing, "nan", cells)
    try:
        return cleaned.astype(np.float64)
    except ValueError:
        pass
    for j in range(cleaned.shape[1]):
        try:
            cleaned[:, j].astype(np.float64)
        except ValueError:
            for i in range(cleaned.shape[0]):
                try:
                    float(cleaned[i, j])
                except ValueError:
                    raise DataError(
                        f"{source}: line {line_numbers[i]}, column {col_names[j]}: "
                        f"{cleaned[i, j]!r} is not a number"
                    ) from None
    raise DataError(f"{source}: non-numeric feature values")  # pragma: no cover


def read_csv(
    path: PathLike,
    label_column=None,
    *,
    delimiter: str | None = None,
    header: bool | None = None,
    unlabelled: Iterable = DEFAULT_UNLABELLED,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a delimited text file (``.csv``, ``.tsv``, ``.txt``; optionally ``.gz``).

    Parameters
    ----------
    path : str or Path
    label_column : None, "last", str or int
        ``None``: every column is a feature and ``y`` is ``None``. ``"last"``: the last column.
        A string: the column with that header name. An int: the column index (negative ok).
    delimiter : str, optional
        Guessed from the first data line when omitted (tab, comma, semicolon, else whitespace).
    header : bool, optional
        Whether the first line holds column names; guessed when omitted (a first line with a
        non-numeric entry above a numeric one is a header).
    unlabelled : iterable
        Class values meaning "unlabelled" (become ``-1``).

    Lines starting with ``#`` and blank lines are skipped. Feature cells ``?``, ``NA`` or empty
    become NaN. Integer-like labels are kept as integers; other labels are class names mapped
    in sorted order to ``0..C-1``.
    """
    p = _check_path(path)
    source = str(p)
    text = _read_text(p)
    numbered = [
        (i + 1, ln)
        for i, ln in enumerate(text.splitlines())
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not numbered:
        raise DataError(f"{source}: file is empty (no data rows)")
    if delimiter is None:
        delimiter = _sniff_delimiter(numbered[0][1], _suffix(p))
    head_rows = _tokenize([ln for _, ln in numbered[:2]], delimiter)
    if header is None:
        header = _detect_header(head_rows[0], head_rows[1] if len(head_rows) > 1 else None)
    names = [t.strip().strip('"') for t in head_rows[0]] if header else None
    data = numbered[1:] if header else numbered
    if not data:
        raise DataError(f"{source}: file has a header but no data rows")
    ncols = len(names) if names is not None else len(head_rows[0])
    label_idx = _resolve_label_index(label_column, names, ncols, source)
    line_numbers = [n for n, _ in data]
    lines = [ln for _, ln in data]

    arr = None
    try:  # fast path: everything is numeric
        arr = np.loadtxt(
            lines,
            delimiter=delimiter,
            dtype=np.float64,
            ndmin=2,
            comments=None,
            quotechar='"' if delimiter is not None else None,
        )
    except ValueError:
        arr = None
    if arr is not None and arr.shape[1] == ncols:
        y = None if label_idx is None else _as_labels(arr[:, label_idx], source, unlabelled)
        X = arr if label_idx is None else np.delete(arr, label_idx, axis=1)
        return _as_features(X, source), y

    rows = _tokenize(lines, delimiter)
    for n, row in zip(line_numbers, rows):
        if len(row) != ncols:
            raise DataError(f"{source}: line {n} has {len(row)} fields, expected {ncols}")
    cells = np.array(rows, dtype=str).reshape(len(rows), ncols)
    col_names = names if names is not None else [str(j + 1) for j in range(ncols)]
    y = None
    if label_idx is not None:
        y = _as_labels(cells[:, label_idx], source, unlabelled)
        cells = np.delete(cells, label_idx, axis=1)
        col_names = [c for j, c in enumerate(col_names) if j != label_idx]
    X = _convert_feature_tokens(cells, source, col_names, line_numbers)
    return _as_features(X, source), y


# --------------------------------------------------------------------------- NPY / NPZ


def read_npy(path: PathLike, mmap_mode: str | None = None) -> tuple[np.ndarray, None]:
    """Read a ``.npy`` array of features. Returns ``(X, None)``.

    With ``mmap_mode`` (``"r"``, ``"c"``...) a float32 array is memory-mapped instead of being
    read; other dtypes are converted (and so copied) to float32. Arrays with more than two
    dimensions are flattened to ``(n, -1)``. Pickled (object) arrays are refused.
    """
    p = _check_path(path)
    if mmap_mode not in (None, "r", "r+", "c", "readonly", "copyonwrite", "readwrite"):
        raise DataError(f"invalid mmap_mode {mmap_mode!r}; use None, 'r', 'r+' or 'c'")
    _check_magic(p, _NPY_MAGIC, ".npy")
    try:
        a = np.load(p, mmap_mode=mmap_mode, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"cannot read {p}: not a valid .npy file ({_one_line(exc)})") from None
    if not isinstance(a, np.ndarray):
        raise DataError(f"cannot read {p}: not a .npy array file")
    return _as_features(a, str(p)), None


def read_npz(
    path: PathLike, *, unlabelled: Iterable = DEFAULT_UNLABELLED
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a ``.npz`` archive holding ``X``/``y``, ``x``/``y`` or ``x_train``/``y_train``.

    ``y`` is optional. Pickled (object) arrays are never loaded.
    """
    p = _check_path(path)
    source = str(p)
    _check_magic(p, _NPZ_MAGIC, ".npz")
    try:
        with np.load(p, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"cannot read {p}: not a .npz archive")
            keys = set(npz.files)
            for xk, yk in _NPZ_KEYS:
                if xk in keys:
                    X = npz[xk]
                    y = npz[yk] if yk in keys else None
                    break
            else:
                raise DataError(
                    f"{source}: no feature array in the archive; expected key X, x or x_train "
                    f"(found: {', '.join(sorted(keys)) or 'nothing'})"
                )
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {p}: not a valid .npz file ({_one_line(exc)})") from None
    X = _as_features(X, source)
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        y = _as_labels(y, source, unlabelled)
        _check_labels_length(X, y, source)
    return X, y


# --------------------------------------------------------------------------- ARFF


def _parse_arff(
    fh, source: str, label_column=None, unlabelled: Iterable = DEFAULT_UNLABELLED
) -> tuple[np.ndarray, np.ndarray | None]:
    from scipy.io import arff

    try:
        data, meta = arff.loadarff(fh)
    except Exception as exc:
        raise DataError(f"cannot read {source}: not a valid ARFF file ({_one_line(exc)})") from None
    names = list(meta.names())
    types = list(meta.types())
    if not names:
        raise DataError(f"{source}: ARFF file declares no attributes")
    if data.shape[0] == 0:
        raise DataError(f"{source}: ARFF file has no data rows")
    if label_column is None:
        label_idx = len(names) - 1
        for i, (n, t) in enumerate(zip(names, types)):
            if n.strip().lower() == "class" and t in ("nominal", "numeric"):
                label_idx = i
        if len(names) < 2:
            label_idx = None
    else:
        label_idx = _resolve_label_index(label_column, names, len(names), source)

    columns = []
    for i, (n, t) in enumerate(zip(names, types)):
        if i == label_idx:
            continue
        col = data[n]
        if t == "numeric":
            columns.append(np.asarray(col, dtype=np.float64))
        elif t == "nominal":
            values = [v.encode() if isinstance(v, str) else v for v in meta[n][1]]
            lookup = {v: float(k) for k, v in enumerate(values)}
            columns.append(np.array([lookup.get(v, np.nan) for v in col], dtype=np.float64))
        else:
            raise DataError(f"{source}: attribute {n!r} has unsupported type {t!r}")
    if not columns:
        raise DataError(f"{source}: no feature attributes besides the class")
    X = _as_features(np.column_stack(columns), source)
    y = None
    if label_idx is not None:
        y = _as_labels(data[names[label_idx]], source, unlabelled)
    return X, y


def read_arff(
    path: PathLike, label_column=None, *, unlabelled: Iterable = DEFAULT_UNLABELLED
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a (dense) ARFF file with :func:`scipy.io.arff.loadarff`.

    The class attribute is, unless ``label_column`` names another one, the last attribute called
    ``class`` (nominal or numeric), else the last attribute. Class values 999 or ``?`` (see
    ``unlabelled``) become ``-1``; integer class names become those integers, other class names
    are mapped in sorted order to ``0..C-1``. Nominal feature attributes are coded by the
    position of the value in their declaration (``?`` -> NaN).
    """
    p = _check_path(path)
    text = _read_text(p)
    return _parse_arff(io.StringIO(text), str(p), label_column, unlabelled)


def parse_arff_bytes(
    raw: bytes, source: str, label_column=None, unlabelled: Iterable = DEFAULT_UNLABELLED
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse ARFF content held in memory (used for the bundled UCI archive)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return _parse_arff(io.StringIO(text), source, label_column, unlabelled)


# --------------------------------------------------------------------------- Parquet


def read_parquet(
    path: PathLike, label_column=None, *, unlabelled: Iterable = DEFAULT_UNLABELLED
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a ``.parquet`` table (needs pandas and pyarrow). Feature columns must be numeric."""
    p = _check_path(path)
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError(
            f"cannot read {p}: reading .parquet files needs pandas and pyarrow "
            "(pip install pandas pyarrow)"
        ) from None
    try:
        df = pd.read_parquet(p)
    except Exception as exc:
        raise DataError(f"cannot read {p}: not a valid Parquet file ({_one_line(exc)})") from None
    source = str(p)
    names = [str(c) for c in df.columns]
    if df.shape[0] == 0:
        raise DataError(f"{source}: no data rows")
    label_idx = _resolve_label_index(label_column, names, len(names), source)
    y = None
    if label_idx is not None:
        col = df.iloc[:, label_idx]
        values = col.to_numpy()
        if values.dtype.kind not in "biuf":
            values = np.array(["" if v is None else str(v) for v in values], dtype=object)
        y = _as_labels(values, source, unlabelled)
        df = df.drop(columns=df.columns[label_idx])
    try:
        X = df.to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: feature columns must be numeric ({_one_line(exc)})") from None
    return _as_features(X, source), y


# --------------------------------------------------------------------------- dispatcher


def load_file(
    path: PathLike,
    label_column=None,
    *,
    unlabelled: Iterable = DEFAULT_UNLABELLED,
    delimiter: str | None = None,
    header: bool | None = None,
    mmap_mode: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a data file, choosing the reader by extension.

    Supported: ``.csv``, ``.tsv``, ``.txt``, ``.data``, ``.dat`` (optionally gzipped),
    ``.npy``, ``.npz``, ``.arff`` (optionally gzipped) and ``.parquet``.

    Returns ``(X, y)``: float32 ``(n, m)`` features and int64 ``(n,)`` labels with ``-1`` for
    unlabelled samples, or ``None`` when the file carries no labels. ``label_column`` selects the
    label column of text and Parquet files (``None`` = no labels) and overrides the automatic
    class attribute of ARFF files; ``.npy`` files hold features only and ``.npz`` files carry
    their labels under ``y``, so a ``label_column`` for them is an error. ``delimiter`` and
    ``header`` apply to text files, ``mmap_mode`` to ``.npy``.
    """
    p = _check_path(path)
    ext = _suffix(p)
    if label_column is not None and ext in (".npy", ".npz"):
        raise DataError(
            f"a label column does not apply to {ext} files ({p.name}): a .npy holds features "
            "only; an .npz carries its labels under the key 'y'"
        )
    if ext in _TEXT_SUFFIXES:
        return read_csv(p, label_column, delimiter=delimiter, header=header, unlabelled=unlabelled)
    if ext == ".arff":
        return read_arff(p, label_column, unlabelled=unlabelled)
    if p.suffix.lower() == ".gz":
        raise DataError(f"cannot read {p}: only text and ARFF files may be gzipped")
    if ext == ".npy":
        return read_npy(p, mmap_mode=mmap_mode)
    if ext == ".npz":
        return read_npz(p, unlabelled=unlabelled)
    if ext in (".parquet", ".pq"):
        return read_parquet(p, label_column, unlabelled=unlabelled)
    raise DataError(
        f"cannot read {p}: unknown file type {ext or '(no extension)'!r}; supported: "
        ".csv .tsv .txt .npy .npz .arff .parquet"
    )
