"""Data-parallel training of the classic SOM ("batch" and "minibatch" modes).

Both modes are sums over samples: each rank sums over its own rows and one all-reduce makes
the global sums, so the map equals the one a single process trains on the concatenated data
(up to the order of float additions).
"""

from __future__ import annotations

import torch

from .._utils import seeded_generator
from ..som._som import _InMemory, _new_history, _pca_weights, _random_weights, _sample_rows
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
    grid, dev, dt, sig, lr = som._setup()
    X = som._tensor(som._check_X(X_shard, reset=True), dev, dt)
    comm = Comm()
    layout = comm.layout(X.shape[0], {"n_features": X.shape[1], **som.get_params()})
    gen = comm.sync_generator(seeded_generator(som.random_state))
    W = _initial_weights(som, X, grid, gen, comm, layout)
    som.history_ = _new_history()
    data = _Shard(X, layout)
    W = som._train(
        data, W, grid, gen, sig, lr, mode=som.mode, reduce=comm.all_reduce, show=comm.rank == 0
    )
    som.n_iter_ = int(som.epochs)
    # every rank holds the same map; make it bit-identical whatever the backend's reduction did
    W = comm.broadcast(W)
    # weights_, labels_ of this shard, and global metrics
    som._finish(data, W, grid, reduce=comm.all_reduce)
    return som


class _Shard(_InMemory):
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
def _initial_weights(som, X, grid, gen, comm: Comm, layout: Layout):
    """The single-process initial prototypes of the global data, ``[n_nodes, m]``: SOM's
    rules from all-reduced statistics (float64 mean, covariance, bounds) or, for "sample",
    the global rows the single process would pick, sent by their owners."""
    init, n, k = som.init, layout.total, grid.n_nodes
    if not isinstance(init, str):
        return som._array_init(X.shape[1], k, X.dtype, X.device)
    Xd = X.double()
    obs = ~torch.isnan(Xd)
    mean = comm.all_reduce(torch.nansum(Xd, 0)) / comm.all_reduce(obs.sum(0).double())
    if init == "sample" or (init == "pca" and n < 2):  # SOM falls back to "sample" itself
        (W,) = comm.gather_rows(layout, _sample_rows(n, k, gen), X)
        if som.missing == "ignore":  # holes in the picked samples take the feature mean
            W = torch.where(torch.isnan(W), mean.to(W.dtype).expand_as(W), W)
        return W
    if init == "random":
        lo = comm.all_reduce(torch.where(obs, Xd, torch.inf).amin(0), "min")
        hi = comm.all_reduce(torch.where(obs, Xd, -torch.inf).amax(0), "max")
        return _random_weights(lo, hi, k, gen, X.dtype)
    Xc = torch.nan_to_num(Xd - mean, nan=0.0)
    cov = comm.all_reduce(Xc.T @ Xc) / max(n - 1, 1)
    return _pca_weights(mean, cov, grid, X.dtype)
