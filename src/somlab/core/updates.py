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


def flush_tiny(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast neighbourhood weights to ``dtype`` with values below ``tiny / eps`` set to 0.

    A gaussian's far tail lands in the subnormal range once cast to float32; products with
    subnormals are 10-100x slower on x86 and change no weight by a representable amount.
    """
    fi = torch.finfo(dtype)
    h = h.to(dtype)
    return h.masked_fill_(h.abs() < fi.tiny / fi.eps, 0.0)


def neighbourhood_rows(coords, centres, fn, sigma, periods=None, dtype=None) -> torch.Tensor:
    """``h(centre, j)`` for each centre node index in ``centres``, ``[len(centres), n_nodes]``."""
    disp = displacements(coords, coords[centres], periods)
    h = fn(disp, sigma)
    return flush_tiny(h, dtype or h.dtype)


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


def sequential_steps(
    X: torch.Tensor,
    order,
    W: torch.Tensor,
    coords: torch.Tensor,
    fn,
    sigmas,
    rates,
    periods=None,
    refresh: int = 256,
) -> torch.Tensor:
    """Online (per-sample) Euclidean SOM steps, in place: ``w_j += lr_t h_t(b, j) (x_t - w_j)``.

    ``order`` lists the sample index of each step; ``sigmas`` and ``rates`` the per-step values.
    The winner is ``argmin_j ||w_j||^2 - 2 w_j.x`` (one ``addmv``); the squared norms are carried
    across steps with the exact identity
    ``|(1-g)w + g x|^2 = (1-g) ((1-g)|w|^2 + g (|w|^2 - d)) + g^2 |x|^2`` with ``d = |w|^2 - 2 w.x``
    from the winner search, and recomputed every ``refresh`` steps.  The update is one fused
    ``lerp_``, so each step reads the prototypes twice and allocates nothing of size ``[k, m]``.
    On CPU the loop runs on one thread: per-sample tensors are too small to share, and a second
    thread that is descheduled stalls every operation (measured 10-50x slower on 2 busy cores).
    """
    from .neighbourhoods import gaussian

    n_nodes = coords.shape[0]
    dt = W.dtype
    small = n_nodes <= 2048  # tables of size n_nodes^2 from every possible winner
    if small:
        disp = displacements(coords, coords, periods)
        # the gaussian only needs squared grid distances: exp(-d2 / (2 sigma^2))
        table = (disp * disp).sum(-1).to(dt) if fn is gaussian else disp.to(dt)
    pt = (
        None if periods is None else torch.tensor(periods, dtype=coords.dtype, device=coords.device)
    )
    xx = (X[torch.as_tensor(order, device=X.device)] ** 2).sum(1).tolist() if len(order) else []
    threads = torch.get_num_threads()
    if W.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        wsq = (W * W).sum(1)
        for t, i in enumerate(order):
            x = X[i]
            dist = torch.addmv(wsq, W, x, alpha=-2.0)  # |w|^2 - 2 w.x
            b = int(torch.argmin(dist))
            sigma, rate = float(sigmas[t]), float(rates[t])
            if small and fn is gaussian:
                g = torch.exp(table[b] * (-0.5 / (sigma * sigma))).mul_(rate)
            else:
                if small:
                    d = table[b]
                else:
                    d = coords - coords[b]
                    if pt is not None:
                        d = d - pt * torch.round(d / pt)
                g = fn(d, sigma).mul_(rate).to(dt)
            keep = 1.0 - g
            W.lerp_(x.expand_as(W), g.unsqueeze(1))
            if (t + 1) % refresh == 0:
                wsq = (W * W).sum(1)
            else:
                wsq = torch.addcmul(keep * wsq, g, wsq - dist).mul_(keep)
                wsq.addcmul_(g, g, value=xx[t])
    finally:
        torch.set_num_threads(threads)
    return W
