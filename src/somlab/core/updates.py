"""Shared update kernels: grouped means (K6) and neighbourhood-weighted accumulation.

The batch SOM needs, for every node j, ``num_j = sum_i h(b_i, j) x_i`` and
``den_j = sum_i h(b_i, j)``.  Summing the samples per winner first (``S_k``, ``n_k``:
:func:`winner_sums`) turns this into ``H^T S`` with ``H[k, j] = h(k, j)`` (:func:`spread`).
Winner sums add up across chunks of rows and across processes, so streamed and distributed
training spread them once.  The kernels serve one map or K maps of one grid at once (a
leading map axis, each map its own radius) with the one-map arithmetic: a map of
:class:`SOMEnsemble <somlab.som._multi.SOMEnsemble>` gets the sums :class:`somlab.SOM` gets.
``H`` is built a block of winner rows at a time from node coordinates, so memory stays
O(block * n_nodes), linear in the number of nodes; a fit of a map of up to about 2,000 nodes
keeps the epoch-invariant part of ``H`` (:class:`GridTable`: the squared grid distances, or
the displacements, of every pair of nodes) and each epoch only applies the neighbourhood
function for its sigma to it, with the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grids import displacements
from .neighbourhoods import _sq_norm, of_squared

_BLOCK_ELEMENTS = 1 << 22
#: Largest :class:`GridTable` (elements): 32 MB of float64, a map of 2,048 nodes (1,448 nodes
#: for the displacement table of a non-radial neighbourhood on a 2-D grid).
_TABLE_ELEMENTS = 1 << 22


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


@dataclass(frozen=True)
class GridTable:
    """The part of ``h(k, j)`` that no epoch changes, for every pair of nodes of one grid.

    ``values`` holds the squared grid distances ``p [n_nodes, n_nodes]`` (``squared``: the
    neighbourhood is radial, :func:`~somlab.core.neighbourhoods.of_squared`) or the wrapped
    displacements ``[n_nodes, n_nodes, d]``; row ``k`` is what
    :func:`~somlab.core.grids.displacements` of centre ``k`` gives (``p`` by
    :func:`~somlab.core.neighbourhoods._sq_norm` of it), so the rows of ``H`` built from the
    table are bit for bit those built from the coordinates.
    """

    values: torch.Tensor
    squared: bool

    def rows(self, centres: torch.Tensor, fn, sigma) -> torch.Tensor:
        """``h(centre, j)`` before :func:`flush_tiny`, ``[len(centres), n_nodes]``; ascending
        consecutive ``centres`` (every node won something) are a view, not a copy."""
        n = centres.numel()
        c0 = int(centres[0]) if n else 0
        if n and torch.equal(centres, torch.arange(c0, c0 + n, device=centres.device)):
            v = self.values[c0 : c0 + n]
        else:
            v = self.values[centres]
        return of_squared(fn)(v, sigma) if self.squared else fn(v, sigma)


def grid_table(coords, fn, periods=None, max_elements: int | None = None) -> GridTable | None:
    """The :class:`GridTable` of the grid ``coords [n_nodes, d]`` (``periods``: toroidal) for
    the neighbourhood ``fn`` (or a list of them, one per map: radial only if all are), or None
    when it would hold more than ``max_elements`` values (default ``_TABLE_ELEMENTS``)."""
    fns = list(fn) if isinstance(fn, (list, tuple)) else [fn]
    squared = all(of_squared(f) is not None for f in fns)
    n = coords.shape[0]
    limit = _TABLE_ELEMENTS if max_elements is None else max_elements
    if n * n * (1 if squared else coords.shape[1]) > limit:
        return None
    disp = displacements(coords, coords, periods)
    return GridTable(_sq_norm(disp) if squared else disp, squared)


def neighbourhood_rows(
    coords, centres, fn, sigma, periods=None, dtype=None, table: GridTable | None = None
) -> torch.Tensor:
    """``h(centre, j)`` for each centre node index in ``centres``, ``[len(centres), n_nodes]``;
    from ``table`` (:func:`grid_table` of the same grid and ``fn``) when given, the same bits."""
    if table is not None:
        h = table.rows(centres, fn, sigma)
    else:
        h = fn(displacements(coords, coords[centres], periods), sigma)
    return flush_tiny(h, dtype or h.dtype)


def winner_sums(
    bmus: torch.Tensor,
    X: torch.Tensor,
    n_nodes: int,
    S: torch.Tensor | None = None,
    C: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
):
    """Per node, the sum of the samples it wins and their count, for one map or K maps.

    ``S_k = sum_{i: b_i = k} x_i`` and ``C_k = #{i: b_i = k}``.  ``bmus [n]`` (one map) gives
    ``S [n_nodes, m]`` and ``C [n_nodes, 1]``; ``bmus [K, n]`` (each map's winners of the same
    samples ``X [n, m]``, or of its own ``X [K, n, m]``) gives ``S [K, n_nodes, m]`` and
    ``C [K, n_nodes, 1]``: one ``index_add_`` on the flattened ``K * n_nodes`` index.  With
    NaN in ``X`` (missing values) sums run over observed entries and ``C`` is per feature
    (last axis ``m``).  ``weights [n]`` optionally scales each sample.  Pass the ``S`` and
    ``C`` of earlier chunks to add to them: rows are added in order, so chunks give the sums
    of their concatenation (a count axis of 1 is widened the first time a NaN is seen; use the
    returned tensors).
    """
    many = bmus.dim() == 2
    K, n = bmus.shape if many else (1, bmus.shape[0])
    m = X.shape[-1]
    lead = (K, n_nodes) if many else (n_nodes,)
    if S is None:
        S = torch.zeros(*lead, m, dtype=X.dtype, device=X.device)
        C = torch.zeros(*lead, 1, dtype=X.dtype, device=X.device)
    nan = torch.isnan(X)
    if bool(nan.any()):
        if C.shape[-1] == 1:  # counts per feature from now on
            C = C.expand(*lead, m).clone()
        X = torch.nan_to_num(X, nan=0.0)
        cnt = (~nan).to(X.dtype)
    else:
        cnt = torch.ones(*X.shape[:-1], C.shape[-1], dtype=X.dtype, device=X.device)
    if weights is not None:
        X = X * weights.unsqueeze(1)
        cnt = cnt * weights.unsqueeze(1)
    if many:  # map k's node j is row k * n_nodes + j
        bmus = (bmus + n_nodes * torch.arange(K, device=bmus.device).unsqueeze(1)).reshape(-1)
        X = X.expand(K, n, m).reshape(K * n, m)
        cnt = cnt.expand(K, n, cnt.shape[-1]).reshape(K * n, -1)
    S.view(-1, m).index_add_(0, bmus, X)
    C.view(-1, C.shape[-1]).index_add_(0, bmus, cnt)
    return S, C


def spread(
    coords: torch.Tensor,
    S: torch.Tensor,
    C: torch.Tensor,
    fn,
    sigma,
    periods=None,
    block_elements: int | None = None,
    table: GridTable | None = None,
):
    """Winner sums spread over the grid: ``(num = H^T S, den = H^T C)``, ``H[k, j] = h(k, j)``.

    Only nodes that won something (``C_k > 0``) contribute; their rows of ``H`` are built a
    block at a time (at most ``block_elements`` values, default ``_BLOCK_ELEMENTS``), so memory
    stays linear in the number of nodes.  ``S [n_nodes, m]`` and ``C [n_nodes, c]`` as from
    :func:`winner_sums`, ``sigma`` a float.  ``table`` (:func:`grid_table` of ``coords``,
    ``periods`` and ``fn``, kept for a whole fit) gives the rows of ``H`` without recomputing
    the grid geometry, with the same bits.

    K maps: ``S [K, n_nodes, m]``, ``C [K, n_nodes, c]``, ``sigma`` K radii and ``fn`` one
    neighbourhood function or K of them; each map is spread by the one-map rule, so its sums
    are bit for bit those of the map spread alone (a batched product would round otherwise).
    """
    if S.dim() == 3:
        K = S.shape[0]
        fns = list(fn) if isinstance(fn, (list, tuple)) else [fn] * K
        radii = sigma.tolist() if torch.is_tensor(sigma) else list(sigma)
        parts = [
            spread(coords, S[k], C[k], fns[k], float(radii[k]), periods, block_elements, table)
            for k in range(K)
        ]
        return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])
    n_nodes = coords.shape[0]
    hit = torch.nonzero(C.sum(1) > 0).squeeze(1)
    num = torch.zeros_like(S)
    den = torch.zeros_like(C)
    block = max(1, (block_elements or _BLOCK_ELEMENTS) // n_nodes)
    for s in range(0, hit.numel(), block):
        rows = hit[s : s + block]
        H = neighbourhood_rows(coords, rows, fn, sigma, periods, S.dtype, table)  # [b, n_nodes]
        num.addmm_(H.T, S[rows])
        den.addmm_(H.T, C[rows])
    return num, den


def accumulate(
    coords: torch.Tensor,
    bmus: torch.Tensor,
    X: torch.Tensor,
    fn,
    sigma,
    periods=None,
    weights: torch.Tensor | None = None,
    block_elements: int | None = None,
):
    """Neighbourhood-weighted sums over samples: ``(num [n_nodes, m], den [n_nodes, 1 or m])``.

    ``num_j = sum_i h(b_i, j) x_i`` and ``den_j = sum_i h(b_i, j)``, computed as
    :func:`spread` of :func:`winner_sums`.  With NaN in ``X`` (missing values) sums run over
    observed entries only and ``den`` is per feature ``[n_nodes, m]``.  ``weights`` optionally
    scales each sample.  K maps at once: ``bmus [K, n]``, K radii ``sigma`` (and ``fn`` one
    function or K), results ``[K, n_nodes, .]``.
    """
    n_nodes = coords.shape[0]
    S, C = winner_sums(bmus, X, n_nodes, weights=weights)
    return spread(coords, S, C, fn, sigma, periods, block_elements)


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
