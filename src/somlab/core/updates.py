"""Shared update kernels: grouped means (K6) and neighbourhood-weighted accumulation.

The batch SOM needs, for every node j, ``num_j = sum_i h(b_i, j) x_i`` and
``den_j = sum_i h(b_i, j)``.  Summing the samples per winner first (``S_k``, ``n_k``) turns this
into ``H^T S`` with ``H[k, j] = h(k, j)``.  ``H`` is built a block of winner rows at a time from
node coordinates, so memory stays O(block * n_nodes), linear in the number of nodes.
"""

from __future__ import annotations

import torch

from .grids import displacements

_BLOCK_ELEMENTS = 1 << 22


def grouped_sum(keys: torch.Tensor, X: torch.Tensor, n_keys: int) -> torch.Tensor:
    """K6: row sums of ``X [n, m]`` per integer key in ``[0, n_keys)``, ``[n_keys, m]``."""
    out = torch.zeros(n_keys, X.shape[1], dtype=X.dtype, device=X.device)
    return out.index_add_(0, keys, X)


def grouped_mean(keys: torch.Tensor, X: torch.Tensor):
    """K6: means of the rows of ``X`` per distinct key, keys ascending.

    Returns ``(unique_keys [g], means [g, m], counts [g], inverse [n])``.
    """
    uniq, inverse, counts = torch.unique(keys, sorted=True, return_inverse=True, return_counts=True)
    sums = grouped_sum(inverse, X, uniq.numel())
    return uniq, sums / counts.unsqueeze(1).to(X.dtype), counts, inverse


def neighbourhood_rows(coords, centres, fn, sigma, periods=None, dtype=None) -> torch.Tensor:
    """``h(centre, j)`` for each centre node index in ``centres``, ``[len(centres), n_nodes]``."""
    disp = displacements(coords, coords[centres], periods)
    h = fn(disp, sigma)
    return h if dtype is None else h.to(dtype)


def accumulate(
    coords: torch.Tensor,
    bmus: torch.Tensor,
    X: torch.Tensor,
    fn,
    sigma: float,
    periods=None,
    weights: torch.Tensor | None = None,
):
    """Neighbourhood-weighted sums over samples: ``(num [n_nodes, m], den [n_nodes, 1 or m])``.

    ``num_j = sum_i h(b_i, j) x_i`` and ``den_j = sum_i h(b_i, j)``.  With NaN in ``X`` (missing
    values) sums run over observed entries only and ``den`` is per feature ``[n_nodes, m]``.
    ``weights`` optionally scales each sample.
    """
    n_nodes = coords.shape[0]
    missing = bool(torch.isnan(X).any())
    if missing:
        obs = (~torch.isnan(X)).to(X.dtype)
        Xs = torch.nan_to_num(X, nan=0.0)
        cnt_in = obs
    else:
        Xs = X
        cnt_in = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    if weights is not None:
        Xs = Xs * weights.unsqueeze(1)
        cnt_in = cnt_in * weights.unsqueeze(1)
    S = grouped_sum(bmus, Xs, n_nodes)
    C = grouped_sum(bmus, cnt_in, n_nodes)
    hit = torch.nonzero(C.sum(1) > 0).squeeze(1)
    num = torch.zeros(n_nodes, X.shape[1], dtype=X.dtype, device=X.device)
    den = torch.zeros(n_nodes, C.shape[1], dtype=X.dtype, device=X.device)
    block = max(1, _BLOCK_ELEMENTS // n_nodes)
    for s in range(0, hit.numel(), block):
        rows = hit[s : s + block]
        H = neighbourhood_rows(coords, rows, fn, sigma, periods, X.dtype)  # [b, n_nodes]
        num.addmm_(H.T, S[rows])
        den.addmm_(H.T, C[rows])
    return num, den
