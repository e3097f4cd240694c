"""Data-parallel training of the classic SOM ("batch" and "minibatch" modes).

Both modes are sums over samples: each rank sums over its own rows and one all-reduce makes
the global sums, so the map equals the one a single process trains on the concatenated data
(up to the order of float additions).
"""

from __future__ import annotations

import torch

from ..som._init import DataStatistics, _checked_mean, _sample_rows
from ..som._sources import InMemory
from ._comm import Comm, Layout


def fit_som(som, X_shard):
    """Train ``som`` (a :class:`somlab.SOM`) on data sharded over the default process group.

    Rank r passes its block of the global data set, rows ``[offset_r, offset_r + n_r)`` with
    the blocks in rank order (see :func:`shard_range`; shards may differ in size but none may
    be empty).  Every rank must build the same estimator (same parameters; checked).  All ranks
    end with identical ``weights_``, ``history_``, ``quantization_error_`` and
    ``topographic_error_`` (global values), so rank 0 can ``save`` the model; ``labels_`` holds
    the best-matching units of this rank's own shard.  Without a process group this is
    ``som.fit(X_shard)`` computed the distributed way.

    What is equal to ``SOM(...).fit(X_global)`` (same parameters, ``X_global`` the
    concatenated shards), up to float rounding of the sums (tested within 1e-5).  The epochs
    are ``SOM``'s own, with an all-reduce of the per-node and metric sums:

    * ``mode="batch"``: each epoch every rank sums, per node, the rows of its shard that the
      node wins and their count (:func:`somlab.core.updates.winner_sums`), one all-reduce adds
      them up, and every rank spreads them over the grid (``num_j = sum_i h(b_i, j) x_i``,
      ``den_j = sum_i h(b_i, j)``) and sets ``w_j = num_j / den_j`` where ``den_j > 0``.
    * ``mode="minibatch"``: the global batches are the single process's: the permutation of the
      global row indices from the shared generator, cut into batches of ``batch_size``.  Each
      rank sums the rows of the batch it owns; after the all-reduce every rank applies
      ``w_j += lr / B * (num_j - den_j w_j)``.  One all-reduce of ``[n_nodes, m + 1]`` values
      per batch, so use large batches across machines.
    * ``history_`` and the final metrics: QE and TE sums all-reduced over the shards.
    * ``init``: "pca" from the all-reduced mean and covariance (float64); "random" from the
      all-reduced per-feature minimum and maximum; "sample" picks the same global rows as one
      process (row indices from the shared generator, the rows sent by their owners); an array
      is used as given.

    ``mode="online"`` is one sample after another and is not distributed (ValueError).
    ``random_state=None`` is allowed: rank 0's generator state is broadcast.

    Parameters
    ----------
    som : SOM
        An unfitted or fitted estimator; it is refitted from scratch.
    X_shard : array-like of shape (n_local, n_features)

    Returns
    -------
    som : the fitted estimator
    """
    if som.mode == "online":
        raise ValueError(
            "mode='online' presents one sample at a time and cannot be data-parallel; "
            "use mode='batch' or mode='minibatch' with somlab.distributed.fit_som"
        )
    comm = Comm()

    def layout(X):
        shards = comm.layout(X.shape[0], {"n_features": X.shape[1], **som.get_params()})
        return _Shard(X, shards), ShardStatistics(X, comm, shards)

    # SOM's documented training hook: this rank's rows, statistics and generator, and the
    # all-reduce of every per-node and metric sum; every rank holds the same bits at the end
    return som._fit_epochs(
        X_shard,
        layout=layout,
        generator=comm.sync_generator,
        reduce=comm.all_reduce,
        agree=comm.broadcast,
        show=comm.rank == 0,
    )


class _Shard(InMemory):
    """This rank's block of the global rows ``X [n_local, m]``, for ``SOM._train``.

    A pass reads the block as one chunk.  The mini-batch steps are the single process's global
    batches: the permutation of the global row indices (from the shared generator) cut into
    ``size`` rows; each rank yields the rows of a batch that it owns (maybe none) with the
    global batch size, and the winner sums are all-reduced in the step.
    """

    def __init__(self, X: torch.Tensor, layout: Layout):
        super().__init__(X)
        self.layout = layout
        self.n_samples = layout.total

    def steps(self, size: int, generator):
        order = torch.randperm(self.n_samples, generator=generator).to(self.X.device)
        for a in range(0, self.n_samples, size):
            ids = order[a : a + size]
            _, rows = self.layout.local_positions(ids)
            yield self.X[rows], ids.numel()


# ---------------------------------------------------------------------- initialisation
class ShardStatistics(DataStatistics):
    """:class:`~somlab.som._init.DataStatistics` of the global data from this rank's shard
    ``X [n_local, m]``: float64 sums, covariance and bounds all-reduced over the ranks, and
    for "sample" the global rows the single process would pick, sent by their owners.  SOM's
    initialisation rules read them as they read an in-memory array's."""

    def __init__(self, X: torch.Tensor, comm: Comm, layout: Layout):
        self.X, self.comm, self.layout = X, comm, layout
        self.n_samples, self.n_features = layout.total, X.shape[1]
        self.dtype, self.device = X.dtype, X.device
        self._mean = None

    def mean(self):
        if self._mean is None:
            Xd, all_reduce = self.X.double(), self.comm.all_reduce
            count = all_reduce((~torch.isnan(Xd)).sum(0).double())
            self._mean = _checked_mean(all_reduce(torch.nansum(Xd, 0)) / count)
        return self._mean

    def covariance(self):
        Xc = torch.nan_to_num(self.X.double() - self.mean(), nan=0.0)
        return self.comm.all_reduce(Xc.T @ Xc) / max(self.n_samples - 1, 1)

    def bounds(self):
        Xd, all_reduce = self.X.double(), self.comm.all_reduce
        obs = ~torch.isnan(Xd)
        lo = all_reduce(torch.where(obs, Xd, torch.inf).amin(0), "min")
        hi = all_reduce(torch.where(obs, Xd, -torch.inf).amax(0), "max")
        return lo, hi

    def sample(self, k, generator):
        (W,) = self.comm.gather_rows(
            self.layout, _sample_rows(self.n_samples, k, generator), self.X
        )
        return W
