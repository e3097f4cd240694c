"""Where a SOM epoch's rows come from: a tensor in memory, a stream of chunks (a ``.npy``
file, a memory map, an iterable), or (in :mod:`somlab.distributed`) a rank's shard.

A :class:`Rows` yields one pass as ``[rows, m]`` tensors (``chunks``) or a shuffled pass cut
into mini-batches (``steps``); the epoch rules of :mod:`somlab.som._train` are written once
against it.
"""

from __future__ import annotations

import torch

from ..core.distances import best_matching_units
from ..datasets._stream import BatchSource

# The distances of a streamed chunk are computed for blocks of rows of at most this many
# distances (or features) at a time, 2 MB of float32: their temporaries stay small whatever
# chunk_size is, which also keeps the allocator from piling up freed chunk-sized blocks.
_STREAM_BLOCK = 1 << 19


def _chunk_bmus(X, W, metric, *, k=1, missing=False, ref=None):
    """:func:`best_matching_units` of a streamed chunk ``X [rows, m]``, a row block at a time.

    A row's distances are computed the same way in any block, so this equals one call on the
    chunk (bit for bit on CPU) without its ``[chunk, n_nodes]``-sized temporaries.
    Returns ``(indices [rows, k], distances [rows, k])``.
    """
    step = max(1, _STREAM_BLOCK // max(W.shape[0], X.shape[1], 1))
    if X.shape[0] <= step:
        return best_matching_units(X, W, metric, k=k, missing=missing, ref=ref)
    idx = torch.empty(X.shape[0], k, dtype=torch.long, device=X.device)
    dist = torch.empty(X.shape[0], k, dtype=X.dtype, device=X.device)
    for a in range(0, X.shape[0], step):
        idx[a : a + step], dist[a : a + step] = best_matching_units(
            X[a : a + step], W, metric, k=k, missing=missing, ref=ref
        )
    return idx, dist


def _regroup(batches, size: int):
    """Re-cut a stream of ``[rows, m]`` tensors into steps of exactly ``size`` rows (the last
    may be smaller): rows left at the end of one batch start the next step."""
    carry = None
    for xb in batches:
        start = 0
        if carry is not None:
            start = size - carry.shape[0]
            carry = torch.cat([carry, xb[:start]])
            if carry.shape[0] < size:
                continue
            yield carry
            carry = None
        stop = start + (xb.shape[0] - start) // size * size
        for a in range(start, stop, size):
            yield xb[a : a + size]
        if stop < xb.shape[0]:
            carry = xb[stop:].clone()  # a copy, so that the chunk itself can be freed
    if carry is not None:
        yield carry


# A shuffled in-memory pass gathers its rows a block at a time (memory stays bounded, as for
# one step's gather).  A multiple of sequential_steps' refresh period (256), so an online epoch
# split into blocks takes exactly the steps of one call over all the rows.
_PERMUTED_ROWS = 1 << 14


class Rows:
    """Where an epoch's rows come from.

    ``chunks(generator)`` is one pass as ``[rows, m]`` tensors, in row order or, with a
    generator, shuffled; ``steps(size, generator)`` is a shuffled pass cut into mini-batches
    ``(rows [b, m], B)``, B the batch size a step divides by.
    """

    n_samples: int | None  # rows the schedules count (with several processes: all of them)
    n_rows: int | None  # rows a pass yields here, when known before the pass
    running_metrics = False  # mini-batch history_ measured as the rows go by, not by a pass
    row_blocks = False  # distances a row block at a time (large streamed chunks)

    def chunks(self, generator=None):
        raise NotImplementedError

    def steps(self, size: int, generator):
        for xb in _regroup(self.chunks(generator), size):
            yield xb, xb.shape[0]


class InMemory(Rows):
    """Rows held as one tensor ``X [n, m]``: a pass is ``X`` itself; a shuffled pass is
    ``X[torch.randperm(n)]``, gathered ``_PERMUTED_ROWS`` rows at a time."""

    def __init__(self, X: torch.Tensor):
        self.X = X
        self.n_samples = self.n_rows = X.shape[0]

    def chunks(self, generator=None):
        if generator is None:
            yield self.X
            return
        order = torch.randperm(self.n_rows, generator=generator).to(self.X.device)
        for a in range(0, self.n_rows, _PERMUTED_ROWS):
            yield self.X[order[a : a + _PERMUTED_ROWS]]


class _Streamed(Rows):
    """A :class:`~somlab.datasets._stream.BatchSource` read a chunk at a time.

    Files and memory maps are shuffled by the source (chunk order, then rows within each
    chunk); iterables are read in the order they yield.  Mini-batch metrics are running
    estimates, so that an epoch is a single pass.
    """

    running_metrics = True
    row_blocks = True

    def __init__(self, source: BatchSource, dtype, device, allow_nan: bool):
        self.source, self.dtype, self.device, self.allow_nan = source, dtype, device, allow_nan

    @property
    def n_samples(self):
        return self.source.n_samples

    @property
    def n_rows(self):
        return self.source.n_samples if self.source.addressable else None

    def chunks(self, generator=None):
        return self.source.iter_batches(
            self.dtype,
            self.device,
            allow_nan=self.allow_nan,
            generator=generator if self.source.addressable else None,
        )
