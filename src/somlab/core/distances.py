"""Data-to-prototype distances, computed in sample chunks.

Shapes: samples ``X [n, m]``, prototypes ``W [k, m]``, result ``[n, k]``.  Work is split into
chunks of samples so that no ``[n, k, m]`` tensor is ever built for a whole data set; the
broadcast forms (relevance-weighted, masked Manhattan/Chebyshev) build at most
``[chunk, k, m]`` with ``chunk * k * m <= _ELEMENT_BUDGET``.

Missing values: pass ``X`` with NaN and ``missing=True``; features that are NaN are left out of
the sum (a partial distance over the observed features).
"""

from __future__ import annotations

import torch

METRICS = ("euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine")
EPS = 1e-7
_ELEMENT_BUDGET = 1 << 24  # about 64 MB of float32 per intermediate


def _chunk_rows(n_cols: int, width: int = 1) -> int:
    return max(1, _ELEMENT_BUDGET // max(1, n_cols * width))


def _sq_euclidean_matmul(x: torch.Tensor, w: torch.Tensor, w_sq: torch.Tensor) -> torch.Tensor:
    # ||x||^2 + ||w||^2 - 2 x.w, clamped: fast for large m; no threshold depends on last digits.
    d = (x * x).sum(1, keepdim=True) + w_sq.unsqueeze(0) - 2.0 * (x @ w.T)
    return d.clamp_min_(0.0)


def _masked_block(x: torch.Tensor, w: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances over the observed (non-NaN) features of each sample in ``x``."""
    obs = ~torch.isnan(x)
    x0 = torch.where(obs, x, torch.zeros((), dtype=x.dtype, device=x.device))
    o = obs.to(x.dtype)
    if metric in ("euclidean", "sqeuclidean"):
        d = (x0 * x0).sum(1, keepdim=True) - 2.0 * (x0 @ w.T) + o @ (w * w).T
        d = d.clamp_min_(0.0)
        return d.sqrt_() if metric == "euclidean" else d
    if metric == "cosine":
        num = x0 @ w.T
        wn = (o @ (w * w).T).sqrt()
        xn = x0.norm(dim=1, keepdim=True)
        return 1.0 - num / (xn * wn + 1e-8)
    diff = (x0.unsqueeze(1) - w.unsqueeze(0)).abs() * o.unsqueeze(1)
    return diff.sum(-1) if metric == "manhattan" else diff.amax(-1)


def pairwise_distances(
    X: torch.Tensor,
    W: torch.Tensor,
    metric: str = "euclidean",
    *,
    missing: bool = False,
    exact: bool = False,
) -> torch.Tensor:
    """Distances from every sample to every prototype, ``[n, k]``.

    Parameters
    ----------
    X : [n, m] tensor
    W : [k, m] tensor
    metric : one of :data:`METRICS`
    missing : leave NaN features of ``X`` out of each distance
    exact : use the direct difference form for (sq)euclidean instead of the matmul expansion
        (slower, but bit-stable near ties; the MiniSom compatibility layer uses it)
    """
    if metric not in METRICS:
        raise ValueError(f"distance must be one of {METRICS}, got {metric!r}")
    n, k = X.shape[0], W.shape[0]
    out = torch.empty(n, k, dtype=X.dtype, device=X.device)
    broadcast = missing and metric in ("manhattan", "chebyshev")
    step = _chunk_rows(k, X.shape[1] if broadcast else 1)
    w_sq = (W * W).sum(1) if metric in ("euclidean", "sqeuclidean") else None
    w_norm = W.norm(dim=1) if metric == "cosine" else None
    for s in range(0, n, step):
        x = X[s : s + step]
        if missing:
            out[s : s + step] = _masked_block(x, W, metric)
        elif metric in ("euclidean", "sqeuclidean"):
            if exact:
                d = torch.cdist(x, W, compute_mode="donot_use_mm_for_euclid_dist")
                out[s : s + step] = d if metric == "euclidean" else d * d
            else:
                d = _sq_euclidean_matmul(x, W, w_sq)
                out[s : s + step] = d.sqrt_() if metric == "euclidean" else d
        elif metric == "manhattan":
            out[s : s + step] = torch.cdist(x, W, p=1.0)
        elif metric == "chebyshev":
            out[s : s + step] = torch.cdist(x, W, p=float("inf"))
        else:  # cosine, as MiniSom: 1 - x.w / (|x| |w| + 1e-8)
            out[s : s + step] = 1.0 - (x @ W.T) / (x.norm(dim=1, keepdim=True) * w_norm + 1e-8)
    return out


def best_matching_units(
    X: torch.Tensor,
    W: torch.Tensor,
    metric: str = "euclidean",
    *,
    k: int = 1,
    missing: bool = False,
    exact: bool = False,
    node_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and distances of the ``k`` closest prototypes of each sample, ``[n, k]`` each.

    Ties go to the lowest node index; ``node_mask`` (``[k_nodes]`` bool) excludes inactive nodes.
    Computed chunk by chunk, so memory is O(chunk * n_nodes).
    """
    n, n_nodes = X.shape[0], W.shape[0]
    idx = torch.empty(n, k, dtype=torch.long, device=X.device)
    dist = torch.empty(n, k, dtype=X.dtype, device=X.device)
    step = _chunk_rows(n_nodes, 4)
    for s in range(0, n, step):
        d = pairwise_distances(X[s : s + step], W, metric, missing=missing, exact=exact)
        if node_mask is not None:
            d = d.masked_fill(~node_mask.unsqueeze(0), float("inf"))
        for r in range(k):
            # argmin returns the first minimum: ties go to the lowest index, deterministically.
            j = d.argmin(1)
            idx[s : s + step, r] = j
            dist[s : s + step, r] = d.gather(1, j.unsqueeze(1)).squeeze(1)
            if r + 1 < k:
                d.scatter_(1, j.unsqueeze(1), float("inf"))
    return idx, dist


def weighted_sq_distances(X: torch.Tensor, C: torch.Tensor, Omega: torch.Tensor) -> torch.Tensor:
    """K1 (SPEC.md §1): S_j(x) = sum_i omega_ji (x_i - c_ji)^2, ``[n, k]``.

    Evaluated in the direct form, chunked over samples (never ``[n, k, m]`` for all of X): the
    matmul expansion loses the digits that decide activation thresholds near 1.
    """
    n, k, m = X.shape[0], C.shape[0], X.shape[1]
    out = torch.empty(n, k, dtype=X.dtype, device=X.device)
    step = _chunk_rows(k, m)
    for s in range(0, n, step):
        diff = X[s : s + step].unsqueeze(1) - C.unsqueeze(0)
        out[s : s + step] = (diff * diff * Omega.unsqueeze(0)).sum(-1)
    return out


def relevance_activation(S: torch.Tensor, Omega: torch.Tensor, squared: bool = False):
    """K2: a_j(x) = sum(omega_j) / (sum(omega_j) + D_j(x) + eps), with D = sqrt(S) or S."""
    D = S if squared else S.clamp_min(0.0).sqrt()
    w = Omega.sum(-1)  # [k] for nodes shared by all rows, [r, k] for per-row nodes
    w = w.unsqueeze(0) if w.dim() == 1 else w
    return w / (w + D + EPS)
