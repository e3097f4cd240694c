"""Shared update kernels: grouped means (K6) and neighbourhood-weighted accumulation.

The batch SOM needs, for every node j, ``num_j = sum_i h(b_i, j) x_i`` and
``den_j = sum_i h(b_i, j)``.  Summing the samples per winner first (``S_k``, ``n_k``:
:func:`winner_sums`) turns this into ``H^T S`` with ``H[k, j] = h(k, j)`` (:func:`spread`).
Winner sums add up across chunks of rows and across processes, so streamed and distributed
training spread them once.  ``H`` is built a block of winner rows at a time from node
coordinates, so memory stays O(block * n_nodes), linear in the number of nodes.
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


def winner_sums(
    bmus: torch.Tensor,
    X: torch.Tensor,
    n_nodes: int,
    S: torch.Tensor | None = None,
    C: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
):
    """Per node, the sum of the samples it wins and their count: ``(S [n_nodes, m], C)``.

    ``S_k = sum_{i: b_i = k} x_i`` and ``C_k = #{i: b_i = k}``, ``C [n_nodes, 1]``.  With NaN in
    ``X`` (missing values) sums run over observed entries and ``C`` is per feature
    ``[n_nodes, m]``.  ``weights [n]`` optionally scales each sample.  Pass the ``S`` and ``C``
    of earlier chunks to add to them: rows are added in order, so chunks give the sums of their
    concatenation (a ``[n_nodes, 1]`` ``C`` is widened the first time a NaN is seen; use the
    returned tensors).
    """
    n, m = X.shape
    if S is None:
        S = torch.zeros(n_nodes, m, dtype=X.dtype, device=X.device)
        C = torch.zeros(n_nodes, 1, dtype=X.dtype, device=X.device)
    nan = torch.isnan(X)
    if bool(nan.any()):
        if C.shape[1] == 1:  # counts per feature from now on
            C = C.expand(-1, m).clone()
        X = torch.nan_to_num(X, nan=0.0)
        cnt = (~nan).to(X.dtype)
    else:
        cnt = torch.ones(n, C.shape[1], dtype=X.dtype, device=X.device)
    if weights is not None:
        X = X * weights.unsqueeze(1)
        cnt = cnt * weights.unsqueeze(1)
    S.index_add_(0, bmus, X)
    C.index_add_(0, bmus, cnt)
    return S, C


def spread(coords: torch.Tensor, S: torch.Tensor, C: torch.Tensor, fn, sigma: float, periods=None):
    """Winner sums spread over the grid: ``(num = H^T S, den = H^T C)``, ``H[k, j] = h(k, j)``.

    Only nodes that won something (``C_k > 0``) contribute; their rows of ``H`` are built a
    block at a time (at most ``_BLOCK_ELEMENTS`` values), so memory stays linear in the number
    of nodes.  ``S [n_nodes, m]`` and ``C [n_nodes, c]`` as from :func:`winner_sums`.
    """
    n_nodes = coords.shape[0]
    hit = torch.nonzero(C.sum(1) > 0).squeeze(1)
    num = torch.zeros_like(S)
    den = torch.zeros_like(C)
    block = max(1, _BLOCK_ELEMENTS // n_nodes)
    for s in range(0, hit.numel(), block):
        rows = hit[s : s + block]
        H = neighbourhood_rows(coords, rows, fn, sigma, periods, S.dtype)  # [b, n_nodes]
        num.addmm_(H.T, S[rows])
        den.addmm_(H.T, C[rows])
    return num, den


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

    ``num_j = sum_i h(b_i, j) x_i`` and ``den_j = sum_i h(b_i, j)``, computed as
    :func:`spread` of :func:`winner_sums`.  With NaN in ``X`` (missing values) sums run over
    observed entries only and ``den`` is per feature ``[n_nodes, m]``.  ``weights`` optionally
    scales each sample.
    """
    S, C = winner_sums(bmus, X, coords.shape[0], weights=weights)
    return spread(coords, S, C, fn, sigma, periods)


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
    ref: torch.Tensor | None = None,
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

    The steps run on data and prototypes centred on ``ref`` ``[m]`` (default: the prototypes'
    mean) and scaled by a power of two (:func:`somlab.core.distances.centred`): the winner
    search is an expansion, which cancels on data far from zero or under/overflows for tiny
    or huge scales; the update ``w + g (x - w)`` commutes with the shift and the scale.
    """
    from .distances import centred, reference_point
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
    Xo = X[torch.as_tensor(order, dtype=torch.long, device=X.device)]
    ref = reference_point(W) if ref is None else ref
    Xo, Wc, scale = centred(Xo, W, ref)
    W.copy_(Wc)
    xx = (Xo**2).sum(1).tolist() if len(order) else []
    threads = torch.get_num_threads()
    if W.device.type == "cpu":
        torch.set_num_threads(1)
    try:
        wsq = (W * W).sum(1)
        for t in range(len(order)):
            x = Xo[t]
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
        W.div_(scale).add_(ref)
    return W


# ---------------------------------------------------------------------- many maps at once
# K maps of one grid, each with its own neighbourhood radius: prototypes ``[K, n_nodes, m]``.
# The kernels below add a leading map dimension to ``grouped_sum`` and ``accumulate``; with
# K = 1 they compute the same sums (up to summation order).


def batched_grouped_sum(bmus: torch.Tensor, X: torch.Tensor, n_nodes: int, S=None, C=None):
    """Per-map sums and counts of the samples each node wins: ``S [K, N, m]``, ``C [K, N, 1]``.

    ``bmus [K, n]`` is each map's winner of each sample; ``X`` is ``[n, m]`` (the same samples for
    every map) or ``[K, n, m]``.  One ``index_add_`` on the flattened ``K * n_nodes`` index.
    Pass ``S`` and ``C`` to add into running sums (chunked passes over the samples).
    """
    K, n = bmus.shape
    m = X.shape[-1]
    keys = (bmus + n_nodes * torch.arange(K, device=bmus.device).unsqueeze(1)).reshape(-1)
    src = X.expand(K, n, m).reshape(K * n, m)
    if S is None:
        S = torch.zeros(K, n_nodes, m, dtype=X.dtype, device=X.device)
    if C is None:
        C = torch.zeros(K, n_nodes, 1, dtype=X.dtype, device=X.device)
    S.view(K * n_nodes, m).index_add_(0, keys, src)
    C.view(-1).add_(torch.bincount(keys, minlength=K * n_nodes).to(C.dtype))
    return S, C


def batched_neighbourhood_rows(coords, centres, fn, sigmas, periods=None, dtype=None):
    """``h_k(centre, j)`` for K radii ``sigmas [K]``: ``[K, b, n_nodes]``.

    ``centres`` is ``[b]`` (the same centre nodes for every map) or ``[K, b]``.  The functions of
    :mod:`somlab.core.neighbourhoods` broadcast over a radius tensor, so all K maps are one
    expression; any other ``fn`` is called once per map with a float radius.
    """
    from .neighbourhoods import bubble, gaussian, mexican_hat, triangle

    K = sigmas.numel()
    n_nodes = coords.shape[0]
    disp = displacements(coords, coords[centres.reshape(-1)], periods)  # [K*b or b, n_nodes, 2]
    if centres.dim() == 2:
        disp = disp.view(K, centres.shape[1], n_nodes, 2)
    sig = sigmas.to(device=coords.device, dtype=coords.dtype)
    if fn in (gaussian, mexican_hat):  # reduce the displacement first: radius [K, 1, 1]
        h = fn(disp, sig.view(K, 1, 1))
    elif fn in (bubble, triangle):  # per-axis tests: radius [K, 1, 1, 1]
        h = fn(disp, sig.view(K, 1, 1, 1))
    else:
        per_map = disp if centres.dim() == 2 else disp.expand(K, *disp.shape)
        h = torch.stack([fn(per_map[k], float(s)) for k, s in enumerate(sig.tolist())])
    return flush_tiny(h, dtype or h.dtype)


def batched_accumulate(coords, centres, S, C, fn, sigmas, periods=None, block_elements=None):
    """Spread row sums over the grid for K maps: ``num [K, n_nodes, m]``, ``den [K, n_nodes, c]``.

    ``num_kj = sum_r h_k(centre_r, j) S_kr`` and ``den_kj = sum_r h_k(centre_r, j) C_kr``.  Rows
    are either the nodes themselves (``centres = arange(n_nodes)``, ``S`` and ``C`` from
    :func:`batched_grouped_sum`: the batch SOM's ``H^T S``) or single samples (``centres [K, b]``
    their winners, ``S`` the samples, ``C`` ones).  ``S`` and ``C`` are ``[K or 1, R, .]``.
    The neighbourhood is built ``block`` rows at a time with ``K * block * n_nodes`` at most
    ``block_elements``, so memory stays linear in the number of nodes.
    """
    K = sigmas.numel()
    n_nodes = coords.shape[0]
    R, m, c = S.shape[1], S.shape[2], C.shape[2]
    num = torch.zeros(K, n_nodes, m, dtype=S.dtype, device=S.device)
    den = torch.zeros(K, n_nodes, c, dtype=S.dtype, device=S.device)
    block = max(1, (block_elements or _BLOCK_ELEMENTS) // (K * n_nodes))
    for s in range(0, R, block):
        H = batched_neighbourhood_rows(
            coords, centres[..., s : s + block], fn, sigmas, periods, S.dtype
        )  # [K, b, n_nodes]
        Ht = H.transpose(1, 2)
        b = Ht.shape[2]
        num.baddbmm_(Ht, S[:, s : s + block].expand(K, b, m))
        den.baddbmm_(Ht, C[:, s : s + block].expand(K, b, c))
    return num, den


def accumulate_many(coords, bmus, X, fn, sigmas, periods=None, block_elements=None):
    """:func:`accumulate` for K maps: ``(num [K, n_nodes, m], den [K, n_nodes, 1])``.

    ``bmus [K, n]``; ``X [n, m]`` (shared samples) or ``[K, n, m]``; ``sigmas [K]``.  With fewer
    samples than nodes each sample is spread on its own (``n`` neighbourhood rows per map),
    otherwise the samples are summed per winner first (``n_nodes`` rows per map).
    """
    K, n = bmus.shape
    n_nodes = coords.shape[0]
    Xk = X if X.dim() == 3 else X.unsqueeze(0)
    if n < n_nodes:
        ones = torch.ones(1, n, 1, dtype=X.dtype, device=X.device)
        return batched_accumulate(coords, bmus, Xk, ones, fn, sigmas, periods, block_elements)
    S, C = batched_grouped_sum(bmus, X, n_nodes)
    centres = torch.arange(n_nodes, device=X.device)
    return batched_accumulate(coords, centres, S, C, fn, sigmas, periods, block_elements)
