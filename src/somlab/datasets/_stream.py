"""Streaming data sources: train on data larger than memory, one chunk of rows at a time.

:func:`as_batch_source` turns what an estimator's ``fit`` received into a :class:`BatchSource`,
or returns None for ordinary in-memory data (arrays, tensors, lists of rows, data frames), which
keep their usual path.  Three kinds of source:

* a path to a ``.npy`` file (:class:`NpyFileSource`): the header is parsed once and each chunk
  of ``chunk_size`` rows is read with an explicit ``readinto``; the file is never mapped, so only
  the chunk being read is resident in the process (the OS page cache holds the rest, outside
  the process's RSS);
* a memory-mapped array, ``np.memmap`` or ``np.load(path, mmap_mode="r")`` or a view of one
  (:class:`MemmapSource`): chunks are copied out of the map and, for shared (not
  copy-on-write) maps, the pages just read are released with ``madvise(MADV_DONTNEED)`` so
  that the file does not pile up in the process's resident memory;
* a re-iterable of batches (:class:`IterableSource`), such as a ``torch.utils.data.DataLoader``
  or a list of arrays: each item is a tensor or an array ``[rows, n_features]``, or a tuple /
  list whose first element is one (``(x, y)`` from a labelled dataset).  Items with more than
  two dimensions (images) are flattened per row.

Every chunk is converted to a ``[rows, n_features]`` tensor and checked as it is read: NaN or
inf (unless missing values are allowed), a feature count that differs from the first chunk, and
a source that yields no rows at all raise :class:`~somlab.DataError`.

:func:`scan` makes one pass for the statistics an initialisation needs (count, NaN-aware mean,
mean-filled covariance, bounds, a uniform random sample) in float64.
"""

from __future__ import annotations

import functools
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .._errors import DataError
from .._utils import as_tensor, check_finite_tensor
from ._readers import _check_path, _one_line

__all__ = [
    "BatchSource",
    "IterableSource",
    "MemmapSource",
    "Moments",
    "NpyFileSource",
    "as_batch_source",
    "row_blocks",
    "scan",
]

#: Rows read at a time from a file or a memory map when the estimator does not say.
DEFAULT_CHUNK_SIZE = 65536

_NUMPY_FLOAT = {torch.float32: np.float32, torch.float64: np.float64}

# Work on a chunk is done in blocks of at most this many elements (2 MB of float64), so that
# temporaries stay small whatever ``chunk_size`` is.
_SCAN_ELEMENTS = 1 << 18


class BatchSource:
    """A re-iterable source of ``[rows, n_features]`` batches.

    Attributes
    ----------
    n_features : int or None
        Known up front for files and memory maps; for iterables, set by the first batch read.
    n_samples : int or None
        Known up front for files and memory maps; for iterables, set by the last complete pass.
    addressable : bool
        Rows can be read in any order (files and memory maps): the estimator may shuffle the
        chunk order and :meth:`take` reads given rows.
    """

    addressable = False

    def __init__(self):
        self.n_features: int | None = None
        self.n_samples: int | None = None

    def __repr__(self):
        return f"{type(self).__name__}(n_samples={self.n_samples}, n_features={self.n_features})"

    # subclasses yield (description for messages, raw 2-D array or tensor)
    def _raw_chunks(self, generator: torch.Generator | None) -> Iterator[tuple[str, object]]:
        raise NotImplementedError

    def iter_batches(
        self,
        dtype: torch.dtype,
        device: torch.device,
        *,
        allow_nan: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[torch.Tensor]:
        """One pass over the data: ``[rows, n_features]`` tensors of ``dtype`` on ``device``.

        With ``generator`` an addressable source visits its chunks in a random order and permutes
        the rows inside each chunk (a single chunk only has its rows permuted, which makes one
        chunk exactly ``torch.randperm(n)``); iterables are yielded as they come (shuffle them
        in the DataLoader).  Raises DataError for NaN/inf (NaN is accepted with ``allow_nan``),
        a feature count that differs from the first batch, or a pass that yields no rows.
        """
        n = 0
        for where, raw in self._raw_chunks(generator):
            x = _to_tensor(raw, where, dtype, device)
            if x.shape[0] == 0:
                continue
            if x.shape[1] == 0:
                raise DataError(f"{where} has 0 features; at least one is needed")
            if self.n_features is None:
                self.n_features = int(x.shape[1])
            elif x.shape[1] != self.n_features:
                raise DataError(
                    f"{where} has {x.shape[1]} features but the data has {self.n_features} "
                    "(set by the first batch); every batch needs the same features"
                )
            # a finite sum proves every value finite without a mask as large as the chunk
            if allow_nan or not bool(torch.isfinite(x.sum())):
                check_finite_tensor(x, allow_nan=allow_nan, what=where)
            n += x.shape[0]
            yield x
            del raw, x  # before the next chunk is read
        if n == 0:
            raise DataError(f"X has 0 samples: the data source {self!r} yielded no rows")
        self.n_samples = n

    def take(self, rows: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """The given rows, in the given order (addressable sources only), ``[len(rows), m]``."""
        raise NotImplementedError(f"{type(self).__name__} cannot read rows by index")

    def _chunk_order(self, n_chunks: int, generator: torch.Generator | None) -> list[int]:
        if generator is None or n_chunks < 2:
            return list(range(n_chunks))
        return torch.randperm(n_chunks, generator=generator).tolist()

    def _addressed_chunks(self, read, label: str, generator):
        """``(where, rows)`` of ``read(a, b)`` for every chunk ``[a, b)``: chunks in a random
        order and rows shuffled inside each when ``generator`` is given (addressable sources)."""
        n, size = self.n_samples, self.chunk_size
        for i in self._chunk_order(-(-n // size), generator):
            a, b = i * size, min(n, (i + 1) * size)
            chunk = read(a, b)
            if generator is not None:
                chunk = chunk[torch.randperm(b - a, generator=generator).numpy()]
            yield f"rows {a}-{b} of {label}", chunk
            del chunk  # before the next chunk is read


def _to_tensor(raw, where: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A ``[rows, n_features]`` tensor from one batch item (flattening trailing dimensions)."""
    if isinstance(raw, (tuple, list)) and raw and _is_array(raw[0]):
        raw = raw[0]  # (x, y, ...) from a labelled dataset
    if isinstance(raw, torch.Tensor):
        if raw.is_complex():
            raise DataError(f"{where} has dtype {raw.dtype}; expected real numbers")
        x = raw.detach().to(device=device, dtype=dtype)
    elif isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "biuf":
            raise DataError(f"{where} has dtype {raw.dtype}; expected real numbers")
        arr = np.ascontiguousarray(raw).astype(_NUMPY_FLOAT[dtype], copy=False)
        x = as_tensor(arr, dtype, device)  # never written to: read-only arrays are fine
    else:
        raise DataError(
            f"{where} is a {type(raw).__name__}; each batch must be a tensor or an array of shape "
            "(rows, n_features), or a tuple/list whose first element is one"
        )
    if x.ndim < 2:
        raise DataError(
            f"{where} has shape {tuple(x.shape)}; each batch must be 2-D (rows, n_features) "
            "(to stream a dataset of single samples, wrap it in a DataLoader with a batch_size)"
        )
    return x.reshape(x.shape[0], -1) if x.ndim > 2 else x


def _is_array(obj) -> bool:
    return isinstance(obj, (np.ndarray, torch.Tensor))


def _check_dtype(dtype: np.dtype, what: str) -> None:
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{what} has dtype {dtype}; only plain numeric arrays can be streamed")
    if dtype.kind not in "biuf":
        raise DataError(f"{what} has dtype {dtype}; expected real numbers")


# --------------------------------------------------------------------------- .npy files


class NpyFileSource(BatchSource):
    """A ``.npy`` file read ``chunk_size`` rows at a time with explicit reads (never mapped).

    The file must hold a 2-D C-order array of a numeric dtype (any byte order); Fortran-order
    and object arrays are refused with a DataError, as are truncated files.
    """

    addressable = True

    def __init__(self, path, chunk_size: int = DEFAULT_CHUNK_SIZE):
        super().__init__()
        p = _check_path(path)
        self.path = p
        self.chunk_size = int(chunk_size)
        try:
            with open(p, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):  # 3.0 only differs by a UTF-8 header
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                self.offset = f.tell()
        except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
            raise DataError(
                f"cannot read {p} as a .npy array ({_one_line(exc)}); fit streams .npy files "
                "only: load other formats with somlab.datasets.load_file"
            ) from None
        _check_dtype(dtype, str(p))
        if len(shape) != 2:
            raise DataError(
                f"{p} holds an array of shape {shape}; streaming needs a 2-D array "
                "(n_samples, n_features)"
            )
        if fortran and shape[0] > 1 and shape[1] > 1:
            raise DataError(
                f"{p} is stored in Fortran (column-major) order and cannot be read by rows; "
                "save it again with np.save(path, np.ascontiguousarray(X))"
            )
        self.dtype = dtype
        self.n_samples, self.n_features = int(shape[0]), int(shape[1])
        self.row_bytes = self.n_features * dtype.itemsize
        need = self.offset + self.n_samples * self.row_bytes
        size = os.path.getsize(p)
        if size < need:
            raise DataError(
                f"{p} is truncated: its header announces {shape} {dtype} ({need} bytes) "
                f"but the file has {size} bytes"
            )

    def __repr__(self):
        return f"NpyFileSource({str(self.path)!r}, shape=({self.n_samples}, {self.n_features}))"

    def _read(self, f, start: int, stop: int) -> np.ndarray:
        nbytes = (stop - start) * self.row_bytes
        buf = np.empty(nbytes, dtype=np.uint8)
        f.seek(self.offset + start * self.row_bytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            k = f.readinto(view[got:])
            if not k:
                raise DataError(f"{self.path} ended early while reading rows {start}-{stop}")
            got += k
        return buf.view(self.dtype).reshape(stop - start, self.n_features)

    def _raw_chunks(self, generator):
        with open(self.path, "rb", buffering=0) as f:
            read = functools.partial(self._read, f)
            yield from self._addressed_chunks(read, self.path.name, generator)

    def take(self, rows, dtype, device):
        rows = np.asarray(rows, dtype=np.int64)
        uniq, inverse = np.unique(rows, return_inverse=True)
        out = np.empty((len(uniq), self.n_features), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as f:
            for j, r in enumerate(uniq.tolist()):
                out[j] = self._read(f, r, r + 1)[0]
        return _to_tensor(out[inverse], f"rows of {self.path.name}", dtype, device)


# --------------------------------------------------------------------------- memory maps


def _backing_map(X: np.ndarray):
    """The ``np.memmap`` (or raw ``mmap.mmap``) behind ``X`` or one of its bases, else None."""
    obj, depth = X, 0
    while obj is not None and depth < 32:
        if isinstance(obj, (np.memmap, mmap.mmap)):
            return obj
        obj, depth = getattr(obj, "base", None), depth + 1
    return None


class MemmapSource(BatchSource):
    """A memory-mapped array read ``chunk_size`` rows at a time (each chunk copied out).

    Pages of the map that were read are released with ``madvise(MADV_DONTNEED)`` when that is
    safe (a shared map opened with mode "r", "r+" or "w+"; never a copy-on-write "c" map,
    whose private changes it would discard), so the file does not accumulate in the process's
    resident memory: a row-contiguous array is copied ``_RELEASE_BYTES`` at a time, each
    piece's pages released right after it is copied; any other view is copied a chunk at a
    time and the whole map released after each chunk.  Without a releasable map, pages stay
    resident until the OS reclaims them.
    """

    _RELEASE_BYTES = 1 << 22

    addressable = True

    def __init__(self, X: np.ndarray, chunk_size: int = DEFAULT_CHUNK_SIZE, backing=None):
        super().__init__()
        if X.ndim != 2:
            raise DataError(
                f"the memory-mapped array has shape {X.shape}; streaming needs a 2-D array "
                "(n_samples, n_features)"
            )
        _check_dtype(X.dtype, "the memory-mapped array")
        self.array = X
        self.chunk_size = int(chunk_size)
        self.n_samples, self.n_features = int(X.shape[0]), int(X.shape[1])
        self._map = self._base = None
        if isinstance(backing, np.memmap) and getattr(backing, "mode", None) in ("r", "r+", "w+"):
            self._map = getattr(backing, "_mmap", None)
        if self._map is not None and hasattr(self._map, "madvise"):
            try:  # the map's start address, to release page ranges of it
                self._base = np.frombuffer(self._map, dtype=np.uint8).ctypes.data
            except (TypeError, ValueError, BufferError):
                self._base = None
        else:
            self._map = None

    def _release(self, part: np.ndarray | None = None) -> None:
        """``madvise(MADV_DONTNEED)`` on the pages under ``part`` (a contiguous view of the
        map), or on the whole map."""
        if self._map is None:
            return
        try:
            if part is None or self._base is None:
                self._map.madvise(mmap.MADV_DONTNEED)
            else:
                start = part.ctypes.data - self._base
                page = start - start % mmap.PAGESIZE
                self._map.madvise(mmap.MADV_DONTNEED, page, part.nbytes + (start - page))
        except (OSError, ValueError, AttributeError):  # closed map, or not supported here
            self._map = None

    def _copy(self, a: int, b: int) -> np.ndarray:
        src = self.array[a:b]
        if self._base is None or not src.flags.c_contiguous or src.nbytes == 0:
            out = np.array(src, order="C")
            self._release()
            return out
        out = np.empty(src.shape, dtype=src.dtype)
        step = max(1, self._RELEASE_BYTES // src.strides[0])
        for s in range(0, b - a, step):
            out[s : s + step] = src[s : s + step]
            self._release(src[s : s + step])
        return out

    def _raw_chunks(self, generator):
        yield from self._addressed_chunks(self._copy, "the memory-mapped array", generator)

    def take(self, rows, dtype, device):
        rows = np.asarray(rows, dtype=np.int64)
        out = np.array(self.array[rows], order="C")
        self._release()
        return _to_tensor(out, "rows of the memory-mapped array", dtype, device)


# --------------------------------------------------------------------------- iterables


class IterableSource(BatchSource):
    """Any re-iterable of batches (a DataLoader, a list of arrays), read as it yields them."""

    def __init__(self, iterable):
        super().__init__()
        self.iterable = iterable

    def __repr__(self):
        return f"IterableSource({type(self.iterable).__name__})"

    def _raw_chunks(self, generator):
        for i, item in enumerate(self.iterable):
            yield f"batch {i}", item


# --------------------------------------------------------------------------- dispatch


def _is_batch_item(item) -> bool:
    if isinstance(item, (tuple, list)):
        item = item[0] if item else None
    return _is_array(item) and item.ndim >= 2


def as_batch_source(X, chunk_size: int = DEFAULT_CHUNK_SIZE, *, memmaps: bool = True):
    """A :class:`BatchSource` for out-of-core input, or None for ordinary in-memory data.

    * ``str`` or ``os.PathLike``: a ``.npy`` file (:class:`NpyFileSource`);
    * an array backed by a memory map (:class:`MemmapSource`), unless ``memmaps=False``;
    * a list/tuple whose items are all batches (2-D or higher arrays/tensors, or tuples whose
      first element is one), or any other iterable that is not array-like, such as a
      DataLoader (:class:`IterableSource`).

    One-shot iterators (generators) are refused: training reads the data several times.
    """
    if isinstance(X, (str, os.PathLike)):
        return NpyFileSource(X, chunk_size)
    if isinstance(X, np.ndarray):
        backing = _backing_map(X) if memmaps else None
        return None if backing is None else MemmapSource(X, chunk_size, backing)
    if isinstance(X, (torch.Tensor, bytes, dict)) or hasattr(X, "shape") or hasattr(X, "__array__"):
        return None
    if isinstance(X, (list, tuple)):
        if X and all(_is_batch_item(item) for item in X):
            return IterableSource(X)
        return None
    if isinstance(X, Iterator):
        raise DataError(
            f"X is a one-shot iterator ({type(X).__name__}); training reads the data several "
            "times: pass a re-iterable such as a DataLoader, a list of batches, or an object "
            "whose __iter__ returns a new iterator"
        )
    if isinstance(X, Dataset) and not hasattr(type(X), "__iter__"):
        raise DataError(
            f"X is a {type(X).__name__} (a dataset of single samples); wrap it in "
            "torch.utils.data.DataLoader(dataset, batch_size=...) to stream it in batches"
        )
    if hasattr(type(X), "__iter__"):
        return IterableSource(X)
    return None


# --------------------------------------------------------------------------- one-pass statistics


def row_blocks(batches, max_elements: int):
    """Split each ``[rows, m]`` tensor of ``batches`` into row views, in order, of at most
    ``max_elements // m`` rows (at least one)."""
    for x in batches:
        step = max(1, max_elements // max(1, x.shape[1]))
        if x.shape[0] <= step:
            yield x
        else:
            for a in range(0, x.shape[0], step):
                yield x[a : a + step]
        del x  # before the next batch is read


@dataclass
class Moments:
    """Statistics of one pass, float64 ``[m]`` / ``[m, m]`` tensors (None when not asked)."""

    n: int
    mean: torch.Tensor
    cov: torch.Tensor | None = None
    lo: torch.Tensor | None = None
    hi: torch.Tensor | None = None
    sample: torch.Tensor | None = None


def scan(
    source: BatchSource,
    dtype: torch.dtype,
    device: torch.device,
    *,
    allow_nan: bool = False,
    cov: bool = False,
    bounds: bool = False,
    reservoir: int = 0,
    generator: torch.Generator | None = None,
) -> Moments:
    """One pass over ``source`` (batches cast to ``dtype`` first, then summed in float64).

    ``mean`` is the NaN-aware mean of each feature.  ``cov`` is the covariance of the data with
    NaN replaced by the feature mean, ``sum_i (x_i - mu)(x_i - mu)^T / (n - 1)``, accumulated
    around a shift ``c`` (the first batch's mean) so that no large sums cancel: with
    ``y = x - c``, ``y0`` = y with NaN as 0 and ``o`` the observed mask,
    ``cov = A - mu' B^T - B mu'^T + mu' mu'^T * N`` (element-wise products with
    ``A = y0^T y0``, ``B = y0^T o``, ``N = o^T o``, ``mu' = mu - c``).  ``bounds`` gives the
    NaN-aware per-feature min and max.  ``reservoir`` = k keeps a uniform random sample of k
    rows (Vitter's algorithm R; all rows when fewer), drawn with ``generator``.
    """
    f64 = torch.float64
    n, shift = 0, None
    s = cnt = A = B = N = lo = hi = None
    res, filled = None, 0
    batches = source.iter_batches(dtype, device, allow_nan=allow_nan)
    for x in row_blocks(batches, _SCAN_ELEMENTS):
        nb = x.shape[0]
        if shift is None:
            m = x.shape[1]
            shift = torch.nan_to_num(torch.nanmean(x.to(f64), 0), nan=0.0)
            s = torch.zeros(m, dtype=f64, device=device)
            cnt = torch.zeros(m, dtype=f64, device=device)
            if cov:
                A = torch.zeros(m, m, dtype=f64, device=device)
                B = torch.zeros(m, m, dtype=f64, device=device)
                N = torch.zeros(m, m, dtype=f64, device=device)
            if bounds:
                lo = torch.full((m,), torch.inf, dtype=f64, device=device)
                hi = torch.full((m,), -torch.inf, dtype=f64, device=device)
            if reservoir:
                res = torch.empty(reservoir, m, dtype=x.dtype, device=device)
        y = x.to(f64).sub_(shift)
        nan = torch.isnan(y) if allow_nan else None
        has_nan = nan is not None and bool(nan.any())
        y0 = torch.nan_to_num(y, nan=0.0) if has_nan else y
        colsum = y0.sum(0)
        s += colsum
        if has_nan:
            o = (~nan).to(f64)
            cnt += o.sum(0)
        else:
            cnt += nb
        if cov:
            A.addmm_(y0.T, y0)
            if has_nan:
                B.addmm_(y0.T, o)
                N.addmm_(o.T, o)
            else:
                B += colsum.unsqueeze(1)
                N += nb
        if bounds:
            xs = torch.where(nan, torch.inf, x) if has_nan else x
            lo = torch.minimum(lo, xs.amin(0).to(f64))
            xs = torch.where(nan, -torch.inf, x) if has_nan else x
            hi = torch.maximum(hi, xs.amax(0).to(f64))
        if reservoir:
            filled = _reservoir_update(res, filled, n, x, generator)
        n += nb
    mu = s / cnt  # NaN for a feature never observed, as torch.nanmean
    out = Moments(n=n, mean=shift + mu, lo=lo, hi=hi)
    if cov:
        mu0 = torch.nan_to_num(mu, nan=0.0)
        c = A - B * mu0.unsqueeze(0) - B.T * mu0.unsqueeze(1) + torch.outer(mu0, mu0) * N
        out.cov = c / max(n - 1, 1)
    if reservoir:
        out.sample = res[: min(filled, reservoir)]
    return out


def _reservoir_update(res, filled, seen, x, generator) -> int:
    """Algorithm R on one batch: row ``i`` (global index) replaces slot ``j ~ U{0..i}`` if j < k."""
    k, nb = res.shape[0], x.shape[0]
    take = min(max(k - filled, 0), nb)
    if take:
        res[filled : filled + take] = x[:take]
        filled += take
    rest = nb - take
    if rest <= 0:
        return filled
    index = torch.arange(seen + take, seen + nb, dtype=torch.float64)
    j = torch.floor(torch.rand(rest, generator=generator, dtype=torch.float64) * (index + 1))
    j = j.to(torch.int64).numpy()
    rows = np.nonzero(j < k)[0]
    if rows.size:
        slots = j[rows]
        # later rows overwrite earlier ones that drew the same slot: keep the last of each slot
        _, last_rev = np.unique(slots[::-1], return_index=True)
        last = rows.size - 1 - last_rev
        src = torch.as_tensor(rows[last] + take, device=x.device)
        res[torch.as_tensor(slots[last], device=res.device)] = x[src]
    return filled
