"""Readers for tabular data files: CSV/TSV/TXT, NPY, NPZ, ARFF and Parquet.

Every reader returns ``(X, y)``: ``X`` an array of shape ``(n, m)`` in the file's precision
(float64 for text, ARFF and Parquet; a ``.npy``/``.npz`` array's own float32 or float64) and
``y`` an int64 array of shape ``(n,)`` or ``None``. Text files are parsed by pandas; every
non-blank line is one sample, so a reader never changes the number of rows. Unlabelled
samples get the label ``-1`` (scikit-learn's semi-supervised convention). Every problem with
the input raises :class:`~somlab.DataError` with a one-line message that names the file;
finiteness of ``X`` is left to the estimators.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .._errors import DataError, check_readable_file

__all__ = ["load_file", "read_arff", "read_csv", "read_npy", "read_npz", "read_parquet"]

#: Class values that mean "unlabelled" by default (the SS-SOM ARFF files use 999).
DEFAULT_UNLABELLED: tuple = (999, "?")

# Cells read as a missing feature value (NaN) in text files, compared in lower case: pandas'
# own list (Excel's #N/A among them) and "?" (UCI, ARFF). "-" is not one: it is an error.
_MISSING_TOKENS = frozenset(
    {"", "?", "na", "n/a", "#n/a", "#n/a n/a", "#na", "<na>", "nan", "-nan", "null", "none"}
)

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
    check_readable_file(
        p,
        DataError,
        missing="file not found: {path}",
        folder="expected a file, got a directory: {path}",
        unreadable="cannot read {path}: {why}",
    )
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
    """Validate a feature array and return it, shape (n, m), in the file's own precision.

    float32 and float64 stay as they are (a memory map stays a memory map); float16, bool and
    integers of up to 16 bits, which float32 holds exactly, become float32; wider integers
    become float64. The estimators check the range against the dtype they compute in."""
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
    if a.dtype in (np.float32, np.float64):
        return a
    if a.dtype.kind == "b" or a.dtype.itemsize <= 2:
        return a.astype(np.float32)
    return a.astype(np.float64)


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
    """A cell that reads as a number (``float`` syntax) or as a missing marker."""
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


def _is_auto(header) -> bool:
    return header is None or (isinstance(header, str) and header == "auto")


def _header_choice(header, first: list[str], label_column, source: str) -> bool:
    """Whether the first record holds column names (see :func:`read_csv`, ``header``)."""
    if _is_auto(header):
        if isinstance(label_column, str) and label_column != "last":
            return True  # a label column given by name: the names are on the first line
        return all(t.strip() and not _is_number_token(t) for t in first)
    if isinstance(header, (bool, np.bool_)):
        return bool(header)
    raise DataError(f"{source}: header must be 'auto', True or False, got {header!r}")


def _missing_mask(values: np.ndarray) -> np.ndarray:
    return np.array([str(v).strip().lower() in _MISSING_TOKENS for v in values], dtype=bool)


def _numeric_column(col, source: str, name: str, line_of) -> np.ndarray:
    """One feature column as float64 (missing markers are NaN already), or a DataError naming
    the first cell that is not a number."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    values = col.to_numpy(dtype=object, na_value=None)
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            raise DataError(
                f"{source}: {line_of(i)}, column {name}: {str(v)!r} is not a number"
            ) from None
    return out


def _record_lines(body_lines: list[str], first_line: int, comment: str | None):
    """File line numbers and text of the lines that the parser reads as records (blank lines
    and, with ``comment``, whole comment lines are no records)."""
    numbers, texts = [], []
    for i, ln in enumerate(body_lines):
        stripped = ln.strip()
        if not stripped or (comment and stripped.startswith(comment)):
            continue
        numbers.append(first_line + i)
        texts.append(ln.split(comment, 1)[0] if comment else ln)
    return numbers, texts


_PARSER_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def read_csv(
    path: PathLike,
    label_column=None,
    *,
    delimiter: str | None = None,
    header="auto",
    comment: str | None = None,
    unlabelled: Iterable = DEFAULT_UNLABELLED,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a delimited text file (``.csv``, ``.tsv``, ``.txt``; optionally ``.gz``) with
    :func:`pandas.read_csv` (its C parser).

    Every non-blank line after the header is one sample: the reader never drops, adds or
    merges rows, and a line with more or fewer fields than the first is an error naming it.

    Parameters
    ----------
    path : str or Path
    label_column : None, "last", str or int
        ``None``: every column is a feature and ``y`` is ``None``. ``"last"``: the last column.
        A string: the column with that header name (implies a header). An int: the column
        index (negative ok).
    delimiter : str, optional
        Guessed from the first line when omitted (for ``.csv`` a comma, for ``.tsv`` a tab,
        else the first of tab, comma, semicolon found, else runs of whitespace).
    header : {"auto", True, False}, default="auto"
        Whether the first line holds column names. ``"auto"`` takes it as a header when every
        one of its cells is text: not a number and not a missing marker (so ``-1,0x10,3`` and
        ``#N/A,2,3`` are data, ``a,b,label`` is a header), or when ``label_column`` is a column
        name. A row of numbers (``400,410,420``, e.g. wavelengths) is read as data unless
        ``header=True`` says it is a header.
    comment : str, optional
        No comment lines by default: a data row starting with ``#`` (Excel's ``#N/A``) is data.
        With ``comment="#"``, the rest of a line after ``#`` is ignored and lines that start
        with it are skipped.
    unlabelled : iterable
        Class values meaning "unlabelled" (become ``-1``).

    Feature cells that are empty, ``?``, ``NA``, ``N/A``, ``#N/A``, ``NaN``, ``null`` or
    ``None`` (any case) are NaN; any other cell that is not a number is an error naming its
    line and column. Features are float64, as read (the estimators check the range of their
    own dtype). Integer-like labels are kept as integers; other labels are class names mapped
    in sorted order to ``0..C-1``; empty, ``?`` or ``NA`` labels are unlabelled (``-1``).
    """
    try:
        return _read_csv(path, label_column, delimiter, header, comment, unlabelled)
    except DataError as exc:
        if comment is None and _first_line_is_hash_comment(path):
            raise DataError(
                f"{exc} (the first line starts with '#': if it is a comment, pass comment='#', "
                "on the command line --comment '#')"
            ) from None
        raise


def _first_line_is_hash_comment(path) -> bool:
    try:
        text = _read_text(_check_path(path))
    except DataError:
        return False
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    cell = first.replace(";", ",").replace("\t", ",").split(",")[0].strip().lower()
    return first.startswith("#") and cell not in _MISSING_TOKENS


def _read_csv(path, label_column, delimiter, header, comment, unlabelled):
    import pandas as pd

    p = _check_path(path)
    source = str(p)
    text = _read_text(p)
    lines = text.splitlines(keepends=True)
    if comment is not None and (not isinstance(comment, str) or len(comment) != 1):
        raise DataError(f"{source}: comment must be one character or None, got {comment!r}")
    first_idx = next(
        (
            i
            for i, ln in enumerate(lines)
            if ln.strip() and not (comment and ln.strip().startswith(comment))
        ),
        None,
    )
    if first_idx is None:
        raise DataError(f"{source}: file is empty (no data rows)")
    first_text = lines[first_idx].split(comment, 1)[0] if comment else lines[first_idx]
    if delimiter is None:  # from the first few lines, so that one odd line does not decide
        delimiter = _sniff_delimiter("".join(lines[first_idx : first_idx + 5]), _suffix(p))
    first = _tokenize([first_text.rstrip("\r\n")], delimiter)[0]
    has_header = _header_choice(header, first, label_column, source)
    names = [t.strip().strip('"') for t in first] if has_header else None
    ncols = len(first)
    label_idx = _resolve_label_index(label_column, names, ncols, source)
    body_start = first_idx + 1 if has_header else first_idx  # 0-based index into lines
    body_lines = lines[body_start:]
    rec_numbers, rec_texts = _record_lines(body_lines, body_start + 1, comment)
    if not rec_numbers:
        raise DataError(f"{source}: file has a header but no data rows")

    na = sorted({t for t in _MISSING_TOKENS} | {t.upper() for t in _MISSING_TOKENS}
                | {t.title() for t in _MISSING_TOKENS} | {"NaN", "#N/A N/A", "#NA"})  # fmt: skip
    try:
        df = pd.read_csv(
            io.StringIO("".join(body_lines)),
            header=None,
            sep=r"\s+" if delimiter is None else delimiter,
            engine="c" if delimiter is None or len(delimiter) == 1 else "python",
            dtype=None if label_idx is None else {label_idx: object},
            na_values=na,
            keep_default_na=False,
            comment=comment,
            skip_blank_lines=True,
            skipinitialspace=True,
            quotechar='"',
            # exact decimal -> float64 (pandas 3's default; earlier ones need asking for it)
            **({"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}),
        )
    except pd.errors.ParserError as exc:
        m = _PARSER_LINE.search(str(exc))
        if m:
            line = int(m.group(2)) + body_start
            raise DataError(
                f"{source}: line {line} has {m.group(3)} fields, expected {ncols}"
            ) from None
        raise DataError(f"cannot read {source}: {_one_line(exc)}") from None
    except (ValueError, UnicodeError) as exc:
        raise DataError(f"cannot read {source}: {_one_line(exc)}") from None
    if df.shape[1] != ncols:
        raise DataError(
            f"{source}: line {rec_numbers[0]} has {df.shape[1]} fields, expected {ncols}"
        )
    mapped = len(rec_numbers) == df.shape[0]  # False only with quoted line breaks

    def line_of(i: int) -> str:
        return f"line {rec_numbers[i]}" if mapped else f"record {i + 1}"

    col_names = names if names is not None else [str(j + 1) for j in range(ncols)]
    y = None
    columns = []
    for j in range(ncols):
        if j == label_idx:
            continue
        columns.append(_numeric_column(df.iloc[:, j], source, col_names[j], line_of))
    if not columns:
        raise DataError(f"{source}: no feature columns")
    X = np.column_stack(columns)
    if label_idx is not None:
        raw = df.iloc[:, label_idx].to_numpy(dtype=object, na_value=None)
        tokens = np.array(["" if v is None else str(v) for v in raw], dtype=object)
        tokens[_missing_mask(tokens)] = ""
        y = _as_labels(tokens, source, unlabelled)
    # A short line is padded with NaN by the parser: find those among rows holding a NaN.
    suspects = np.flatnonzero(np.isnan(X).any(axis=1) | (y == -1 if y is not None else False))
    if suspects.size:
        if mapped:
            counts = [len(_tokenize([rec_texts[i].rstrip("\r\n")], delimiter)[0]) for i in suspects]
            for i, k in zip(suspects, counts):
                if k < ncols:
                    raise DataError(
                        f"{source}: line {rec_numbers[i]} has {k} fields, expected {ncols}"
                    )
        else:
            body = "".join(body_lines)
            reader = csv.reader(io.StringIO(body), delimiter=delimiter) if delimiter else None
            records = (
                [r for r in reader if r and any(c.strip() for c in r)]
                if reader is not None
                else [ln.split() for ln in body.splitlines() if ln.strip()]
            )
            for i in suspects:
                if i < len(records) and len(records[i]) < ncols:
                    raise DataError(
                        f"{source}: record {i + 1} has {len(records[i])} fields, expected {ncols}"
                    )
    if not has_header and _is_auto(header) and _looks_like_number_header(X):
        warnings.warn(
            f"{source}: the first line ({first_text.strip()[:40]}) is read as a data row, but "
            "it looks like column names made of numbers (monotonic, outside every column's "
            "range in the other rows); pass header=True (CLI --header) to read it as names, "
            "or header=False (--no-header) to keep it as data and silence this",
            UserWarning,
            stacklevel=3,
        )
    return _as_features(X, source), y


def _looks_like_number_header(X: np.ndarray) -> bool:
    """A first row like ``400,410,420,...`` (wavelengths, years, time points) above data rows:
    strictly monotonic across >= 3 columns and, in at least 80 % of them, farther than half
    the column's range outside the range of the other rows (>= 3 of them)."""
    if X.shape[0] < 4 or X.shape[1] < 3 or np.isnan(X[0]).any():
        return False
    d = np.diff(X[0])
    if not ((d > 0).all() or (d < 0).all()):
        return False
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(X[1:], axis=0), np.nanmax(X[1:], axis=0)
    margin = 0.5 * np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1e-12))
    outside = (X[0] < lo - margin) | (X[0] > hi + margin)
    return bool(np.mean(outside) >= 0.8)


# --------------------------------------------------------------------------- NPY / NPZ


def read_npy(path: PathLike, mmap_mode: str | None = None) -> tuple[np.ndarray, None]:
    """Read a ``.npy`` array of features. Returns ``(X, None)``.

    With ``mmap_mode`` (``"r"``, ``"c"``...) a float32 or float64 array is memory-mapped
    instead of being read; other dtypes are converted (and so copied): small integers and
    float16 to float32, wider integers to float64. Arrays with more than two
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
    fh, source: str, label_column=None, unlabelled: Iterable = DEFAULT_UNLABELLED, dtype=None
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
        # the last attribute called "class"; else the last attribute if it is nominal (a
        # numeric-only file without a class attribute has no labels, not its last feature)
        label_idx = len(names) - 1 if types[-1] == "nominal" else None
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
    if dtype is not None:
        X = X.astype(dtype)
    y = None
    if label_idx is not None:
        y = _as_labels(data[names[label_idx]], source, unlabelled)
    return X, y


def read_arff(
    path: PathLike, label_column=None, *, unlabelled: Iterable = DEFAULT_UNLABELLED
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a (dense) ARFF file with :func:`scipy.io.arff.loadarff`.

    The class attribute is, unless ``label_column`` names another one, the last attribute called
    ``class`` (nominal or numeric), else the last attribute if it is nominal; a file of numeric
    attributes none of which is called ``class`` has no labels (``y`` is None). Features are
    float64. Class values 999 or ``?`` (see
    ``unlabelled``) become ``-1``; integer class names become those integers, other class names
    are mapped in sorted order to ``0..C-1``. Nominal feature attributes are coded by the
    position of the value in their declaration (``?`` -> NaN).
    """
    p = _check_path(path)
    text = _read_text(p)
    return _parse_arff(io.StringIO(text), str(p), label_column, unlabelled)


def parse_arff_bytes(
    raw: bytes,
    source: str,
    label_column=None,
    unlabelled: Iterable = DEFAULT_UNLABELLED,
    dtype=np.float32,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Parse ARFF content held in memory (used for the bundled UCI archive, whose min-max
    scaled features are served as float32)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return _parse_arff(io.StringIO(text), source, label_column, unlabelled, dtype)


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
    header="auto",
    comment: str | None = None,
    mmap_mode: str | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a data file, choosing the reader by extension.

    Supported: ``.csv``, ``.tsv``, ``.txt``, ``.data``, ``.dat`` (optionally gzipped),
    ``.npy``, ``.npz``, ``.arff`` (optionally gzipped) and ``.parquet``.

    Returns ``(X, y)``: ``(n, m)`` features in the file's precision (see the module's
    docstring) and int64 ``(n,)`` labels with ``-1`` for
    unlabelled samples, or ``None`` when the file carries no labels. ``label_column`` selects the
    label column of text and Parquet files (``None`` = no labels) and overrides the automatic
    class attribute of ARFF files; ``.npy`` files hold features only and ``.npz`` files carry
    their labels under ``y``, so a ``label_column`` for them is an error. ``delimiter``,
    ``header`` and ``comment`` apply to text files (see :func:`read_csv`), ``mmap_mode`` to
    ``.npy``.
    """
    p = _check_path(path)
    ext = _suffix(p)
    if label_column is not None and ext in (".npy", ".npz"):
        raise DataError(
            f"a label column does not apply to {ext} files ({p.name}): a .npy holds features "
            "only; an .npz carries its labels under the key 'y'"
        )
    if ext not in _TEXT_SUFFIXES and (not _is_auto(header) or comment is not None):
        raise DataError(f"header and comment apply to text files, not to {ext} ({p.name})")
    if ext in _TEXT_SUFFIXES:
        return read_csv(
            p,
            label_column,
            delimiter=delimiter,
            header=header,
            comment=comment,
            unlabelled=unlabelled,
        )
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
