"""Data-parallel training of the classic SOM ("batch" and "minibatch" modes).

Both modes are sums over samples: each rank sums over its own rows and one all-reduce makes
the global sums, so the map equals the one a single process trains on the concatenated data
(up to the order of float additions).
"""

from __future__ import annotations

import math

import torch

from .._utils import make_generator, progress
from ..core.distances import best_matching_units
from ..core.neighbourhoods import get_neighbourhood
from ..core.schedules import decay
from ..core.updates import accumulate
from ..metrics._som import topographic_error_from_bmus
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
    concatenated shards), up to float rounding of the sums (tested within 1e-5):

    * ``mode="batch"``: each epoch every rank computes ``num_j = sum_i h(b_i, j) x_i`` and
      ``den_j = sum_i h(b_i, j)`` over its rows (:func:`somlab.core.updates.accumulate`), one
      all-reduce sums them, and every rank sets ``w_j = num_j / den_j`` where ``den_j > 0``.
    * ``mode="minibatch"``: the global batches are the single process's: the permutation of the
      global row indices from the shared generator, cut into batches of ``batch_size``.  Each
      rank accumulates the rows of the batch it owns; after the all-reduce every rank applies
      ``w_j += lr / B * (num_j - den_j w_j)``.  One all-reduce of ``[n_nodes, m + 1]`` values
      per batch, so use large batches across machines.
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
    gen = comm.sync_generator(make_generator(som.random_state))
    W = _initial_weights(som, X, grid, gen, comm, layout)
    som.history_ = {
        k: [] for k in ("sigma", "learning_rate", "quantization_error", "topographic_error")
    }
    W = _train(som, X, W, grid, gen, sig, lr, comm, layout)
    som.n_iter_ = int(som.epochs)
    # every rank holds the same map; make it bit-identical whatever the backend's reduction did
    W = comm.broadcast(W)
    som._finish(X, W, grid)  # weights_, labels_ (this shard) and local metrics ...
    som.quantization_error_ = som.history_["quantization_error"][-1]  # ... made global
    som.topographic_error_ = som.history_["topographic_error"][-1]
    return som


# ---------------------------------------------------------------------- initialisation
def _moment_points(mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``2m`` points (float64) whose mean is ``mean [m]`` and whose covariance (divided by
    n - 1) is ``cov [m, m]``: ``mean +- c l_i`` with ``cov = sum_i l_i l_i^T`` and
    ``c^2 = (2m - 1) / 2``.  SOM's own PCA rule, run on them, gives the global PCA init."""
    m = mean.numel()
    evals, evecs = torch.linalg.eigh(cov)
    L = evecs * evals.clamp_min(0.0).sqrt()  # column i is l_i
    c = math.sqrt((2 * m - 1) / 2.0)
    return torch.cat([mean + c * L.T, mean - c * L.T])


def _initial_weights(som, X, grid, gen, comm: Comm, layout: Layout):
    """The single-process initial prototypes of the global data, ``[n_nodes, m]``.

    SOM's own rule (``SOM._initial_weights``) is run on a small stand-in for the global data
    that it cannot tell apart: the global row indices ("sample"), the global bounding box
    ("random") or points with the global mean and covariance ("pca")."""
    init, n = som.init, layout.total
    if not isinstance(init, str):
        return som._initial_weights(X, grid, gen)
    Xd = X.double()
    obs = ~torch.isnan(Xd)
    mean = comm.all_reduce(torch.nansum(Xd, 0)) / comm.all_reduce(obs.sum(0).double())
    if init == "sample" or (init == "pca" and n < 2):  # SOM falls back to "sample" itself
        ids = torch.arange(n, dtype=torch.float64, device=X.device).unsqueeze(1)
        picked = som._initial_weights(ids, grid, gen).squeeze(1).round().long()
        (W,) = comm.gather_rows(layout, picked, X)
        if som.missing == "ignore":  # holes in the picked samples take the feature mean
            W = torch.where(torch.isnan(W), mean.to(W.dtype).expand_as(W), W)
        return W
    if init == "random":
        lo = comm.all_reduce(torch.where(obs, Xd, torch.inf).amin(0), "min")
        hi = comm.all_reduce(torch.where(obs, Xd, -torch.inf).amax(0), "max")
        return som._initial_weights(torch.stack([lo, hi]), grid, gen).to(X.dtype)
    Xc = torch.nan_to_num(Xd - mean, nan=0.0)
    cov = comm.all_reduce(Xc.T @ Xc) / max(n - 1, 1)
    return som._initial_weights(_moment_points(mean, cov), grid, gen).to(X.dtype)


# ---------------------------------------------------------------------- training
def _reduce_sums(num, den, comm: Comm, m: int, per_feature: bool):
    """All-reduce ``num [k, m]`` and ``den [k, 1 or m]`` in one message.  With missing values
    (``per_feature``) ``den`` is always ``[k, m]`` (a ``[k, 1]`` count repeated per feature, the
    same update), so every rank sends the same shape."""
    if per_feature and den.shape[1] == 1:
        den = den.expand(-1, m)
    both = comm.all_reduce(torch.cat([num, den], 1))
    return both[:, :m], both[:, m:]


def _record_metrics(som, dist, bmu, grid, comm: Comm, layout: Layout):
    """Global QE (mean BMU distance) and TE (share of non-adjacent best pairs) of the epoch."""
    n = dist.shape[0]
    te = topographic_error_from_bmus(bmu, grid)  # NaN for a one-node map
    sums = torch.tensor([float(dist[:, 0].double().sum()), te * n], dtype=torch.float64)
    sums = comm.all_reduce(sums) / layout.total
    som.history_["quantization_error"].append(float(sums[0]))
    som.history_["topographic_error"].append(float(sums[1]))


def _train(som, X, W, grid, gen, sig, lr, comm: Comm, layout: Layout):
    dev, m = X.device, X.shape[1]
    coords = grid.coordinates(torch.float64, dev)
    periods = grid.periods()
    fn = get_neighbourhood(som.neighbourhood)
    missing = som.missing == "ignore"
    k2 = 2 if grid.n_nodes > 1 else 1
    epochs, n = int(som.epochs), layout.total
    h = som.history_
    bar = progress(range(epochs), bool(som.verbose) and comm.rank == 0, desc=f"SOM {som.mode}")
    for epoch in bar:
        if som.mode == "batch":
            sigma = decay(som.sigma_decay, sig[0], sig[1], epoch, max(epochs - 1, 1))
            bmu, dist = best_matching_units(X, W, som.distance, k=k2, missing=missing)
            if epoch > 0:  # metrics of the map left by the previous epoch
                _record_metrics(som, dist, bmu, grid, comm, layout)
            num, den = accumulate(coords, bmu[:, 0], X, fn, sigma, periods)
            num, den = _reduce_sums(num, den, comm, m, missing)
            ok = den > 0
            W = torch.where(ok, num / torch.where(ok, den, 1.0), W)
            h["sigma"].append(sigma)
            h["learning_rate"].append(None)  # the exact batch SOM has none
            continue
        order = torch.randperm(n, generator=gen).to(dev)  # the single process's global order
        step = int(som.batch_size)
        n_steps = math.ceil(n / step)
        total = epochs * n_steps
        ts = range(epoch * n_steps, (epoch + 1) * n_steps)
        sigmas = [decay(som.sigma_decay, sig[0], sig[1], t, total) for t in ts]
        rates = [decay(som.learning_rate_decay, lr[0], lr[1], t, total) for t in ts]
        for b in range(n_steps):
            ids = order[b * step : (b + 1) * step]
            _, rows = layout.local_positions(ids)
            xb = X[rows]
            if xb.shape[0]:
                bmu, _ = best_matching_units(xb, W, som.distance, missing=missing)
                num, den = accumulate(coords, bmu[:, 0], xb, fn, sigmas[b], periods)
            else:
                num, den = torch.zeros_like(W), torch.zeros_like(W[:, :1])
            num, den = _reduce_sums(num, den, comm, m, missing)
            # mean of the per-sample online updates: lr * (num - den * w) / B
            W = W + (rates[b] / ids.numel()) * (num - den * W)
        bmu, dist = best_matching_units(X, W, som.distance, k=k2, missing=missing)
        h["sigma"].append(sigmas[-1])
        h["learning_rate"].append(rates[-1])
        _record_metrics(som, dist, bmu, grid, comm, layout)
    if som.mode == "batch":  # metrics of the final map
        bmu, dist = best_matching_units(X, W, som.distance, k=k2, missing=missing)
        _record_metrics(som, dist, bmu, grid, comm, layout)
    return W
