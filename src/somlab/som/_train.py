"""The epoch rules of the classic SOM (batch, mini-batch, online) and their metrics.

Written once for every data source (:mod:`somlab.som._sources`) and every number of maps:
the prototypes are ``W [n_nodes, m]`` for one map; the kernels of :mod:`somlab.core.updates`
they call take a leading map axis for K maps (:class:`~somlab.som._multi.SOMEnsemble`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from .._utils import poll_threads
from ..core.distances import best_matching_units
from ..core.grids import Grid, grid_distance
from ..core.updates import grid_table, sequential_steps, spread, winner_sums
from ._sources import _chunk_bmus

# ---------------------------------------------------------------------- epochs
# The epoch rules below are written once for every data source: a :class:`Rows` says where
# the rows come from (memory, a stream, or a rank's shard in somlab.distributed) and an optional
# ``reduce`` sums the per-node and metric sums over processes (None: this process only).


def _new_history() -> dict:
    return {k: [] for k in ("sigma", "learning_rate", "quantization_error", "topographic_error")}


@dataclass(frozen=True)
class _Kernels:
    """What an epoch takes from the estimator: grid, neighbourhood, distance, missing values."""

    grid: Grid
    coords: torch.Tensor  # [n_nodes, 2] float64
    periods: tuple | None  # toroidal grid periods
    fn: object  # neighbourhood function
    distance: str
    missing: bool
    row_blocks: bool
    # [m]: the point distances are centred on (core.distances.centred), fixed for a whole pass
    # so that every chunk, and every map of a SOMEnsemble, rounds alike; None: W's own mean
    ref: torch.Tensor | None = None
    block_elements: int | None = None  # neighbourhood block size (core.updates.spread)

    @property
    def n_nodes(self) -> int:
        return self.grid.n_nodes

    @cached_property
    def table(self):
        """The grid's :func:`~somlab.core.updates.grid_table` for ``fn``, built on the first
        spread and kept for the fit (every epoch's neighbourhood comes from it); None on maps
        too large for one (each epoch then works from the coordinates)."""
        return grid_table(self.coords, self.fn, self.periods)

    def winners(self, X, W, metrics=None) -> torch.Tensor:
        """Best-matching unit of each row of ``X`` (``[rows]``); ``metrics`` also gets the
        rows' distances and second-best units (QE and TE of ``W``)."""
        find = _chunk_bmus if self.row_blocks else best_matching_units
        if metrics is None:
            return find(X, W, self.distance, missing=self.missing, ref=self.ref)[0][:, 0]
        k = min(2, self.n_nodes)
        bmu, dist = find(X, W, self.distance, k=k, missing=self.missing, ref=self.ref)
        metrics.add(dist, bmu)
        return bmu[:, 0]

    def spread_sums(self, S, C, sigma, reduce=None):
        """``(num, den)`` of :func:`~somlab.core.updates.spread` from this process's winner
        sums, added up over processes first when ``reduce`` is given.  K maps: ``S [K, N, m]``,
        ``sigma`` K radii and ``fn`` one neighbourhood function or K."""
        if reduce is not None:  # one message; another process may have per-feature counts
            m = S.shape[-1]
            if self.missing and C.shape[-1] == 1:
                C = C.expand(*C.shape[:-1], m)
            both = reduce(torch.cat([S, C], -1))
            S, C = both[..., :m], both[..., m:]
        return spread(
            self.coords, S, C, self.fn, sigma, self.periods, self.block_elements, self.table
        )


def _batch_epoch(kern: _Kernels, chunks, W, sigma, metrics=None, reduce=None):
    """One epoch of Kohonen's batch SOM: ``w_j = sum_i h(b_i, j) x_i / sum_i h(b_i, j)``.

    The winner sums of all ``chunks`` are added in row order and spread over the grid once, so
    any chunking gives the map of one chunk (bit for bit on CPU).  A node with no weight keeps
    its prototype.  ``metrics`` collects the QE and TE of ``W``, the map before the update.
    """
    S = C = None
    for xb in chunks:
        poll_threads()  # (the load, looked at again when due: somlab._utils.thread_governor)
        S, C = winner_sums(kern.winners(xb, W, metrics), xb, kern.n_nodes, S, C)
        del xb  # let the chunk go before the next one is read
    num, den = kern.spread_sums(S, C, sigma, reduce)
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, 1.0), W)


def _step_epoch(kern: _Kernels, batches, W, t: int, schedule, metrics=None, reduce=None):
    """Mini-batch steps from step ``t``: ``w_j += lr_t / B sum_i h_t(b_i, j) (x_i - w_j)``.

    ``batches`` yields ``(rows [b, m], B)``; B = b except for a process's share of a global
    batch (``reduce`` then adds the shares' sums).  With B = 1 this is the online rule.
    ``schedule(t)`` is ``(sigma, lr)`` of step t; ``metrics`` collects each batch against the
    map before its step.
    """
    for xb, B in batches:
        poll_threads()
        sigma, rate = schedule(t)
        S, C = winner_sums(kern.winners(xb, W, metrics), xb, kern.n_nodes)
        num, den = kern.spread_sums(S, C, sigma, reduce)
        # mean of the per-sample online updates: lr * (num - den * w) / B
        W = W + _step_size(rate, B, W) * (num - den * W)
        t += 1
    return W


def _step_size(rate, B: int, W: torch.Tensor):
    """``rate / B`` in float64, as the multiplier of ``W``'s dtype: a float for one map, a
    ``[K, 1, 1]`` tensor for K maps' rates ``[K]`` (the same value each map alone gets)."""
    if not torch.is_tensor(rate):
        return rate / B
    return (rate.double() / B).to(W.dtype).view(-1, 1, 1)


def _online_epoch(kern: _Kernels, chunks, W, t: int, schedule, metrics=None):
    """Online steps from step ``t``, one row at a time in chunk order, by
    :func:`~somlab.core.updates.sequential_steps` (Euclidean distance, no missing values:
    the same steps as :func:`_step_epoch` with B = 1, far faster).  ``metrics`` collects each
    chunk against the map before its steps."""
    for xb in chunks:
        poll_threads()
        if metrics is not None:
            kern.winners(xb, W, metrics)
        n = xb.shape[0]
        sigmas, rates = zip(*(schedule(t + i) for i in range(n)))
        W = sequential_steps(
            xb, list(range(n)), W, kern.coords, kern.fn, sigmas, rates, kern.periods, ref=kern.ref
        )
        t += n
        del xb  # let the chunk go before the next one is read
    return W


def _measure(kern: _Kernels, chunks, W) -> _RunningMetrics:
    """QE and TE of the map ``W`` on a pass over ``chunks``."""
    metrics = _RunningMetrics(kern.grid)
    for xb in chunks:
        poll_threads()
        kern.winners(xb, W, metrics)
        del xb
    return metrics


class _RunningMetrics:
    """QE and TE summed chunk by chunk (device tensors: no sync per chunk).

    TE counts the samples whose two best units are farther apart on the grid than
    ``grid.adjacency_radius()``, exactly as :func:`topographic_error_from_bmus`.  One map adds
    ``dist, bmu [rows, k]``; K maps add ``[K, rows, k]`` and read :meth:`means` (``[K]``).
    """

    def __init__(self, grid: Grid):
        self.grid, self.n = grid, 0
        self.qe = self.te = self.coords = None

    def add(self, dist: torch.Tensor, bmu: torch.Tensor) -> None:
        if self.qe is None:
            self.qe = torch.zeros(dist.shape[:-2], dtype=torch.float64, device=dist.device)
            self.te = torch.zeros(dist.shape[:-2], dtype=torch.float64, device=dist.device)
            self.coords = self.grid.coordinates(torch.float64, dist.device)
        self.qe += dist[..., 0].sum(-1, dtype=torch.float64)
        if bmu.shape[-1] >= 2:
            d = grid_distance(self.coords, bmu[..., 0], bmu[..., 1], self.grid.periods())
            self.te += (d > self.grid.adjacency_radius()).sum(-1)
        self.n += dist.shape[-2]

    def means(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(QE, TE)`` tensors of the rows added (per map for K maps); TE NaN on one node."""
        te = self.te / self.n if self.grid.n_nodes > 1 else torch.full_like(self.te, math.nan)
        return self.qe / self.n, te

    def values(self, reduce=None) -> tuple[float, float]:
        """``(QE, TE)`` of the rows added, or of every process's rows with ``reduce``."""
        qe, te, n = (0.0, 0.0, 0) if self.qe is None else (float(self.qe), float(self.te), self.n)
        if reduce is not None:
            qe, te, n = reduce(torch.tensor([qe, te, n], dtype=torch.float64)).tolist()
        if n == 0:
            return float("nan"), float("nan")
        return qe / n, te / n if self.grid.n_nodes > 1 else float("nan")

    def record(self, history: dict, reduce=None) -> None:
        qe, te = self.values(reduce)
        history["quantization_error"].append(qe)
        history["topographic_error"].append(te)
