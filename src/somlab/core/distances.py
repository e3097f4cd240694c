"""Data-to-prototype distances, computed in sample chunks.

Shapes: samples ``X [n, m]``, prototypes ``W [k, m]``, result ``[n, k]``.  Work is split into
chunks of samples so that no ``[n, k, m]`` tensor is ever built for a whole data set; the
broadcast forms (relevance-weighted, masked Manhattan/Chebyshev) build at most
``[chunk, k, m]`` with ``chunk * k * m <= _ELEMENT_BUDGET``.

Missing values: pass ``X`` with NaN and ``missing=True``; features that are NaN are left out of
the sum (a partial distance over the observed features).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time

import numpy as np
import torch

#: Multiply-adds below which a numpy matrix product runs on one BLAS thread.  Measured with
#: OpenBLAS 0.3.31 on the 2-core development machine: a product of 1e6 multiply-adds took
#: 0.11 ms CPU on one thread and 16.6 ms on two (the second thread spins), 1e7 1.3 vs 14.8 ms,
#: 1e8 12.5 vs 17.3 ms; one thread costs less CPU at every size up to there.
SERIAL_BLAS_WORK = 1e8
_CONTROLLER = []


def serial_blas(work: float, user_api: str | None = "blas"):
    """A context in which BLAS (``user_api="blas"``; ``None``: OpenMP too) runs on one thread
    when ``work`` (multiply-adds) is below :data:`SERIAL_BLAS_WORK`: on small products a
    second thread spins for longer than the product takes.  Larger work keeps the user's
    thread settings."""
    if work >= SERIAL_BLAS_WORK:
        return contextlib.nullcontext()
    return _serial(user_api)


_SERIAL_LOCK = threading.Lock()
_SERIAL_DEPTH: dict = {}  # "blas" / "openmp" -> [open contexts, its threadpoolctl limit]


@contextlib.contextmanager
def _serial(user_api):
    """threadpoolctl limits are process-wide: threads that overlap share one limit per
    library kind ("blas", "openmp": disjoint, so no limit saves another's), set by the first
    to enter and undone by the last to leave (so the user's setting comes back)."""
    apis = ("blas",) if user_api == "blas" else ("blas", "openmp")
    with _SERIAL_LOCK:
        if not _CONTROLLER:  # made once (scanning the loaded libraries costs ~0.5 ms)
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())
        for api in apis:
            slot = _SERIAL_DEPTH.setdefault(api, [0, None])
            if slot[0] == 0:
                slot[1] = _CONTROLLER[0].limit(limits=1, user_api=api)
            slot[0] += 1
    try:
        yield
    finally:
        with _SERIAL_LOCK:
            for api in apis:
                slot = _SERIAL_DEPTH[api]
                slot[0] -= 1
                if slot[0] == 0:
                    slot[1].restore_original_limits()
                    slot[1] = None


def sq_euclidean_np(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``[len(A), len(B)]`` of numpy rows in float64, by the
    expansion through one matrix product, centred on B's mean first (the expansion cancels the
    digits that matter on data far from zero) and clamped at 0; one BLAS thread on small
    products (:func:`serial_blas`)."""
    mu = np.asarray(B, dtype=np.float64).mean(0)
    A = np.asarray(A, dtype=np.float64) - mu
    B = np.asarray(B, dtype=np.float64) - mu
    with serial_blas(A.shape[0] * B.shape[0] * max(1, A.shape[1])):
        AB2 = 2.0 * A @ B.T
    d = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - AB2
    return np.maximum(d, 0.0)


METRICS = ("euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine")
EPS = 1e-7
_ELEMENT_BUDGET = 1 << 24  # about 64 MB of float32 per intermediate


def _chunk_rows(n_cols: int, width: int = 1) -> int:
    return max(1, _ELEMENT_BUDGET // max(1, n_cols * width))


def reference_point(W: torch.Tensor) -> torch.Tensor:
    """A per-feature reference near the prototypes ``W [k, m]``: their mean, ``[m]``.

    Computed in float64 and rounded once to ``W``'s dtype.  Any point gives the same distances
    mathematically; one near the data keeps the matmul expansion from cancelling (see
    :func:`centred`).
    """
    return W.double().mean(0).to(W.dtype)


def _pow2_scale(*tensors: torch.Tensor) -> float:
    """A power of two ``s`` with ``s * max|t|`` in [0.5, 1) (1.0 for all-zero or non-finite).

    Multiplying by a power of two is exact, so a scaled computation rounds exactly as the
    unscaled one would, minus its underflow (tiny data) and overflow (huge data).
    """
    return _pow2_scale_of(max(float(t.abs().amax()) if t.numel() else 0.0 for t in tensors))


def _pow2_scale_of(big: float) -> float:
    """:func:`_pow2_scale` of values whose largest magnitude is ``big``."""
    if not math.isfinite(big) or big == 0.0:
        return 1.0
    e = math.frexp(big)[1]  # big = f * 2**e, 0.5 <= f < 1
    return math.ldexp(1.0, min(-e, 126))  # (2**127 and up: inf in float32; data below 1e-38)


def _centred_scale(x: torch.Tensor, w: torch.Tensor, ref: torch.Tensor) -> float:
    """The scale :func:`centred` gives ``(x, w, ref)``, without building ``x - ref``: rounding
    is monotonic, so ``max |x - ref|`` of a column is that of its largest or smallest value."""
    if x.shape[0] == 0:
        return _pow2_scale(w - ref)
    lo, hi = x.amin(0), x.amax(0)  # (aminmax over dim 0 is 6x slower on CPU)
    return _pow2_scale(torch.stack([hi - ref, lo - ref]), w - ref)


def centred(x: torch.Tensor, w: torch.Tensor, ref: torch.Tensor | None = None, *, nan=False):
    """``x`` and ``w`` moved by ``-ref`` (default :func:`reference_point` of ``w``) and scaled by
    one power of two: ``(xc [n, m], wc [k, m], s)`` with ``||x - w|| = ||xc - wc|| / s``.

    The expansion ``|x|^2 + |w|^2 - 2 x.w`` loses every digit that tells nodes apart when the
    data sit far from zero (``U(0, 1) + 1000`` in float32) and under- or overflows for tiny or
    huge scales (``1e-21``, ``1e20``); on centred, unit-scale values it is as exact as on data
    near zero.  ``nan``: ``x`` may hold NaN (missing values), which stays NaN.
    """
    if ref is None:
        ref = reference_point(w)
    xc, wc = x - ref, w - ref
    s = _pow2_scale(torch.nan_to_num(xc, nan=0.0) if nan else xc, wc)
    if s != 1.0:
        xc.mul_(s)
        wc.mul_(s)
    return xc, wc, s


# A squared distance smaller than this share of ``|xc|^2 + |wc|^2`` lost more than about
# 2**6 float eps to the expansion's cancellation: it is recomputed in the direct form.
REFINE_SHARE = 2.0**-6


def sq_expansion(xc: torch.Tensor, wc: torch.Tensor, w_sq: torch.Tensor):
    """``(|xc|^2 + (|wc|^2 - 2 xc.wc)`` clamped at 0 ``[n, k]``, ``|xc|^2 [n, 1]``) of centred
    data (:func:`centred`): one ``addmm`` and one add, no ``[n, k]`` temporary."""
    x_sq = (xc * xc).sum(1, keepdim=True)
    d = torch.addmm(w_sq.unsqueeze(0), xc, wc.T, alpha=-2.0)
    return d.add_(x_sq).clamp_min_(0.0), x_sq


def refine_sq(d2: torch.Tensor, x_sq, w_sq, xc, wc, j) -> torch.Tensor:
    """``d2 [n]``, the expansion's squared distances of centred samples ``xc [n, m]`` to their
    units ``j [n]``, with the rows where cancellation may have cost digits (``d2 <
    REFINE_SHARE (|xc|^2 + |wc_j|^2)``) recomputed as ``sum (xc - wc_j)^2``."""
    return _refine_rows(d2, x_sq, w_sq, wc, j, lambda bad: xc[bad])


def _refine_rows(d2, x_sq, w_sq, wc, j, rows_of) -> torch.Tensor:
    """:func:`refine_sq` with the centred rows fetched by ``rows_of(indices)`` (only the rows
    that need it are centred again)."""
    bad = torch.nonzero(d2 < REFINE_SHARE * (x_sq.view(-1) + w_sq[j])).squeeze(1)
    if bad.numel():
        diff = rows_of(bad) - wc[j[bad]]
        d2 = d2.index_put((bad,), (diff * diff).sum(-1))
    return d2


def _sq_euclidean_matmul(x: torch.Tensor, w: torch.Tensor, w_sq: torch.Tensor) -> torch.Tensor:
    return sq_expansion(x, w, w_sq)[0]


def _masked_block(x: torch.Tensor, w: torch.Tensor, metric: str) -> torch.Tensor:
    """Distances over the observed (non-NaN) features of each sample in ``x``."""
    obs = ~torch.isnan(x)
    x0 = torch.where(obs, x, torch.zeros((), dtype=x.dtype, device=x.device))
    o = obs.to(x.dtype)
    if metric in ("euclidean", "sqeuclidean"):
        d = (x0 * x0).sum(1, keepdim=True) - 2.0 * (x0 @ w.T) + o @ (w * w).T
        return d.clamp_min_(0.0)  # squared; callers (centred data) take the root
    if metric == "cosine":
        num = x0 @ w.T
        wn = (o @ (w * w).T).sqrt()
        xn = x0.norm(dim=1, keepdim=True)
        return 1.0 - num / (xn * wn + 1e-8)
    diff = (x0.unsqueeze(1) - w.unsqueeze(0)).abs() * o.unsqueeze(1)
    return diff.sum(-1) if metric == "manhattan" else diff.amax(-1)


def _unit_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` scaled by one power of two to unit magnitude when its values are tiny or huge
    (below 2**-20 or above 2**20): their norms would under- or overflow.  In between ``t`` is
    left as it is, so that MiniSom's ``1 - x.w / (|x| |w| + 1e-8)``, whose ``1e-8`` is not
    scale-free, keeps its values there."""
    big = float(torch.nan_to_num(t, nan=0.0).abs().amax()) if t.numel() else 0.0
    if big == 0.0 or not math.isfinite(big) or 2.0**-20 <= big <= 2.0**20:
        return t
    return t * _pow2_scale(torch.nan_to_num(t, nan=0.0))


def pairwise_distances(
    X: torch.Tensor,
    W: torch.Tensor,
    metric: str = "euclidean",
    *,
    missing: bool = False,
    exact: bool = False,
    ref: torch.Tensor | None = None,
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
    ref : [m] tensor, optional
        The point data and prototypes are centred on before the (sq)euclidean expansion
        (default: the prototypes' mean, :func:`reference_point`); a fit passes one fixed point
        so that every chunk and every map rounds alike.  Data and prototypes are also scaled
        by a power of two (:func:`centred`), so offsets such as ``+1000`` and scales such as
        ``1e-21`` or ``1e20`` give the distances of data near zero.
    """
    if metric not in METRICS:
        raise ValueError(f"distance must be one of {METRICS}, got {metric!r}")
    n, k = X.shape[0], W.shape[0]
    out = torch.empty(n, k, dtype=X.dtype, device=X.device)
    broadcast = missing and metric in ("manhattan", "chebyshev")
    step = _chunk_rows(k, X.shape[1] if broadcast else 1)
    squared = metric in ("euclidean", "sqeuclidean")
    if squared and ref is None and not exact:
        ref = reference_point(W)
    if metric == "cosine":
        W = _unit_rows(W)
        w_norm = W.norm(dim=1)
    for s in range(0, n, step):
        x = X[s : s + step]
        if metric == "cosine":  # as MiniSom: 1 - x.w / (|x| |w| + 1e-8), on unit-scale rows
            x = _unit_rows(x)
        if missing and metric != "cosine":
            if squared:
                xc, wc, sc = centred(x, W, ref, nan=True)
                d = _masked_block(xc, wc, metric)
                out[s : s + step] = (
                    d.sqrt_().div_(sc) if metric == "euclidean" else d.div_(sc).div_(sc)
                )
            else:
                out[s : s + step] = _masked_block(x, W, metric)
        elif missing:
            out[s : s + step] = _masked_block(x, W, metric)
        elif squared:
            if exact:
                d = torch.cdist(x, W, compute_mode="donot_use_mm_for_euclid_dist")
                out[s : s + step] = d if metric == "euclidean" else d * d
            else:
                xc, wc, sc = centred(x, W, ref)
                d = _sq_euclidean_matmul(xc, wc, (wc * wc).sum(1))
                out[s : s + step] = (
                    d.sqrt_().div_(sc) if metric == "euclidean" else d.div_(sc).div_(sc)
                )
        elif metric == "manhattan":
            out[s : s + step] = torch.cdist(x, W, p=1.0)
        elif metric == "chebyshev":
            out[s : s + step] = torch.cdist(x, W, p=float("inf"))
        else:
            out[s : s + step] = 1.0 - (x @ W.T) / (x.norm(dim=1, keepdim=True) * w_norm + 1e-8)
    return out


def _argmin_width(k: int) -> int:
    """Columns per block of :func:`first_min`: a divisor of ``k`` in [32, 128] nearest to 64
    (400 nodes: 50, 1,600: 64), so that no partial block is left, else 64."""
    for w in sorted(range(32, 129), key=lambda w: (abs(w - 64), w)):
        if k % w == 0:
            return w
    return _ARGMIN_WIDTH


def _block_rows_of(blocks: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``blocks[i, g[i]]`` of ``blocks [n, groups, width]``, ``[n, width]`` (a copy): one row
    gather of the ``[n * groups, width]`` view when there is one (``gather``'s element walk is
    several times slower)."""
    n, groups, width = blocks.shape
    if blocks.is_contiguous():
        rows = torch.arange(n, device=g.device).mul_(groups).add_(g)
        return blocks.view(n * groups, width).index_select(0, rows)
    return blocks.gather(1, g.view(n, 1, 1).expand(n, 1, width)).view(n, width)


def first_min(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the first minimum of each row of ``d [n, k]``, as
    ``d.min(1)`` (ties to the lowest index; a NaN counts as the minimum) in a fraction of its
    time on wide rows.

    ``min``/``argmin`` walk a row one element at a time; ``amin`` is vectorised.  The row is cut
    into blocks of about 64 columns (:func:`_argmin_width`): the vectorised minimum of each
    block, the first block holding the row's minimum (``min`` over ``k / 64`` values; like
    ``argmin`` it returns the first minimum), then the first minimum inside that block; a last
    partial block is compared apart.  On 163 x 1,600 float32 distances: 0.09 ms against
    ``argmin``'s 0.41.
    """
    n, k = d.shape
    width = _argmin_width(k)
    groups = k // width
    if groups < 2 or n == 0:
        return d.min(1)
    k0 = groups * width
    blocks = d[:, :k0].view(n, groups, width)
    best, g = blocks.amin(2).min(1)  # the first block holding the minimum (NaN counts)
    inner = _block_rows_of(blocks, g)
    j = inner.min(1)[1].add_(g * width)
    if k0 < k:
        tv, tj = d[:, k0:].min(1)
        take = (tv < best) | (torch.isnan(tv) & ~torch.isnan(best))
        j = torch.where(take, tj + k0, j)
        best = torch.where(take, tv, best)
    return best, j


def first_two_min(d: torch.Tensor):
    """The first and the second minimum of each row of ``d [n, k]`` (``k`` a multiple of
    :func:`_argmin_width` and at least two blocks), ``((v1, j1), (v2, j2))``: what
    :func:`first_min`, then ``first_min`` again with ``d[j1]`` set to inf, give, from one pass
    over ``d`` (which is left as it is).  The second minimum is in the winner's block without
    the winner, or the first minimum of another block."""
    n, k = d.shape
    width = _argmin_width(k)
    groups = k // width
    blocks = d.view(n, groups, width)
    bmin = blocks.amin(2)
    v1, g1 = bmin.min(1)
    inner = _block_rows_of(blocks, g1)  # a copy
    j1 = inner.min(1)[1]
    inner.scatter_(1, j1.unsqueeze(1), float("inf"))
    v_in, j_in = inner.min(1)
    bmin.scatter_(1, g1.unsqueeze(1), v_in.unsqueeze(1))
    v2, g2 = bmin.min(1)
    other = _block_rows_of(blocks, g2).min(1)[1]
    j2 = torch.where(g2 == g1, j_in, other).add_(g2 * width)
    return (v1, j1.add_(g1 * width)), (v2, j2)


def first_argmin(d: torch.Tensor) -> torch.Tensor:
    """``d.argmin(1)`` of ``d [n, k]`` by :func:`first_min`."""
    return first_min(d)[1]


# The winner search ranks a block of rows at a time whose distances fill about 1 MB of
# float32 (at least _MIN_BLOCK_ROWS rows): the matrix product, the ranking and the gathers of
# a block then run in the core's cache instead of streaming an [n, k] matrix through memory
# three times (on 5,000 x 1,600 nodes x 64 features that is 3x faster, see benchmarks/RESULTS.md).
_CACHE_BLOCK = 1 << 18
_MIN_BLOCK_ROWS = 64
_ARGMIN_WIDTH = 64


def _block_rows(n_nodes: int, n_features: int = 0) -> int:
    """Rows per cache block: their distances and centred features fill ~_CACHE_BLOCK."""
    return max(_MIN_BLOCK_ROWS, _CACHE_BLOCK // max(1, n_nodes + n_features))


def best_matching_units(
    X: torch.Tensor,
    W: torch.Tensor,
    metric: str = "euclidean",
    *,
    k: int = 1,
    missing: bool = False,
    exact: bool = False,
    node_mask: torch.Tensor | None = None,
    ref: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and distances of the ``k`` closest prototypes of each sample, ``[n, k]`` each.

    Ties go to the lowest node index; ``node_mask`` (``[k_nodes]`` bool) excludes inactive nodes.
    Computed block by block, so memory is O(block * n_nodes).  (Sq)euclidean winners come from
    the expansion on centred, scaled data (see ``ref`` in :func:`pairwise_distances`), ranked
    by squared distance; the best unit's distance is recomputed in the direct form where the
    expansion may have lost digits (:func:`refine_sq`), so a quantization error is exact to
    rounding.
    """
    n, n_nodes = X.shape[0], W.shape[0]
    fast = metric in ("euclidean", "sqeuclidean") and not exact and not missing
    if fast:
        if ref is None:
            ref = reference_point(W)
        mod = _kernel_for(X, W, k, node_mask, ref)
        if mod:
            return _bmu_compiled(mod, X, W, metric, k, node_mask, ref)
    idx = torch.empty(n, k, dtype=torch.long, device=X.device)
    dist = torch.empty(n, k, dtype=X.dtype, device=X.device)
    if not fast:
        step = _chunk_rows(n_nodes, 4)
        for s in range(0, n, step):
            d = pairwise_distances(
                X[s : s + step], W, metric, missing=missing, exact=exact, ref=ref
            )
            _rank(d, k, node_mask, idx[s : s + step], dist[s : s + step])
        return idx, dist
    # |wc|^2 - 2 xc.wc of centred data scaled by sc (centred()), a cache block of rows at a
    # time into one reused buffer: no [n, m] or [n, k] temporary, whose fresh pages cost more
    # than the arithmetic.  |xc|^2 is added to the chosen units only (it does not change a
    # row's ranking).
    sc = _centred_scale(X, W, ref)
    wc = (W - ref).contiguous()  # (|wc|^2 summed as on contiguous rows, whatever W's layout)
    if sc != 1.0:
        wc.mul_(sc)
    w_sq = (wc * wc).sum(1)
    wt = wc.T
    x_sq = torch.empty(n, dtype=X.dtype, device=X.device)
    inner = max(1, min(n, _block_rows(n_nodes, X.shape[1])))
    buf = torch.empty(inner, n_nodes, dtype=X.dtype, device=X.device)
    xbuf = torch.empty(inner, X.shape[1], dtype=X.dtype, device=X.device)
    sqbuf = torch.empty_like(xbuf)
    mask = None if node_mask is None else ~node_mask.unsqueeze(0)
    w_row = w_sq.unsqueeze(0)
    node_major = _node_major(k, n_nodes, X.device)
    for s in range(0, n, inner):
        rows = slice(s, s + inner)
        xb = torch.sub(X[rows], ref, out=xbuf[: min(inner, n - s)])
        if sc != 1.0:
            xb.mul_(sc)
        x_sq[rows] = torch.mul(xb, xb, out=sqbuf[: xb.shape[0]]).sum(1)
        # |wc|^2 - 2 xc.wc as the compiled search forms it: the product (node-major where it
        # is), then one rounding
        if node_major:
            d = torch.mm(wc, xb.T).T
            d = torch.add(w_row, d, alpha=-2.0).contiguous()
        else:
            d = torch.mm(xb, wt, out=buf[: xb.shape[0]])
            d = torch.add(w_row, d, alpha=-2.0, out=d)
        if mask is not None:
            d.masked_fill_(mask, float("inf"))
        _rank(d, k, None, idx[rows], dist[rows])
    for r in range(k):
        dv = dist[:, r].add_(x_sq).clamp_min_(0.0)
        if r == 0:
            dv = _refine_rows(dv, x_sq, w_sq, wc, idx[:, 0], lambda b: (X[b] - ref).mul_(sc))
        dist[:, r] = dv.sqrt_().div_(sc) if metric == "euclidean" else dv.div_(sc).div_(sc)
    return idx, dist


_WINNERS: list = []  # [the compiled row loops (core/_winners.pyx), or None where not built]

#: Rows per block of the compiled search: the block's product and centred rows fill about
#: this many bytes, so that they stay in the core's L2 cache (2 MB on the development machine)
#: between the product and the ranking.
_KERNEL_BLOCK_BYTES = 1 << 21


#: Nodes up to which the search ranks k <= 2 units on the node-major product ``wc.xb^T``
#: (rank2t: the rows' two best kept elementwise across rows, without a per-row reduction),
#: on the CPU with at most _NODE_MAJOR_THREADS torch threads; beyond, the row-major product
#: ``xb.wc^T`` and a pass per row (rank).  The torch loops take the same orientation, so both
#: find the same units.  Measured (benchmarks/RESULTS.md, "orientation"): on one thread
#: node-major is 2-30 % faster up to 128 nodes and level to 30 % slower from 144 on; on two
#: threads MKL's node-major product is slower from 64 nodes on (5,000 x 64, 100 nodes: 36-57 %
#: of ``torch.mm`` against 56-67 % row-major; 784 features: 32-61 % against 76-102 %).
_NODE_MAJOR_NODES = 128
_NODE_MAJOR_THREADS = 1


def _node_major(k: int, n_nodes: int, device) -> bool:
    """Whether the winner search of ``k`` units among ``n_nodes`` uses the node-major product
    (with torch's current thread count: the compiled search and the torch loops ask alike)."""
    return (
        k <= 2
        and n_nodes <= _NODE_MAJOR_NODES
        and device.type == "cpu"
        and torch.get_num_threads() <= _NODE_MAJOR_THREADS
    )


#: The largest squared row norm a block may have at the prototypes' scale (|wc| < 1) for the
#: search to keep that scale: rows within 2**20 (float32; float64 2**200) of the prototypes'
#: size, so that no square, product or sum overflows (see _bmu_compiled).  Smaller rows keep
#: it: the data's scale is then the prototypes' own.
_SCALE_FIT = {True: 2.0**40, False: 2.0**400}

#: Entries per block (rows x (nodes + features)) from which the compiled passes run on torch's
#: threads (with fewer, starting the threads costs more than they save).
_PASS_PARALLEL = 1 << 16
_OPENMP_SHARED: list = []  # [whether the module's OpenMP runtime is torch's, once known]
_LOAD = [-math.inf, 1]  # [when the load was last looked at, the threads it left free]
_LOAD_EVERY = 0.5


def _pass_threads(mod, work: int) -> int:
    """Threads for the compiled passes of a block of ``work`` entries: torch's thread count where
    the block is large enough and the module's OpenMP runtime is torch's own (one thread pool,
    so the passes and the products take turns on the same threads; a second runtime would keep
    its own threads spinning beside torch's), else 1."""
    if work < _PASS_PARALLEL or not mod.OPENMP:
        return 1
    nt = torch.get_num_threads()
    if nt <= 1:
        return 1
    if not _OPENMP_SHARED:
        path, home = os.path.realpath(mod.openmp_path()), os.path.realpath(torch.__file__)
        _OPENMP_SHARED.append(bool(path) and path.startswith(os.path.dirname(home) + os.sep))
    if not _OPENMP_SHARED[0]:
        return 1
    from somlab._utils import governed

    if governed():  # a fit's thread_governor looked at the load already: its count
        return nt
    # the cores no other process is using (choose_threads' look at the load, 0.2 ms, taken at
    # most every _LOAD_EVERY s): a team thread waiting for a busy core stalls each pass for a
    # time slice (2 threads beside a spinning process: 36 ms where one thread takes 0.6)
    now = time.monotonic()
    if now - _LOAD[0] > _LOAD_EVERY:
        from somlab._utils import choose_threads

        _LOAD[:] = [now, choose_threads(math.inf, "cpu")]
    return min(nt, _LOAD[1])


_WORK = threading.local()  # this thread's workspace of the compiled search, per dtype
_WORK_KEEP = 1 << 22  # bytes: larger workspaces are not kept


def _workspace(count: int, dtype: torch.dtype) -> torch.Tensor:
    """``count`` entries of ``dtype`` for one compiled search, from this thread's kept buffer
    (grown as needed; at most _WORK_KEEP bytes are kept)."""
    kept = getattr(_WORK, "buffers", None)
    if kept is None:
        kept = _WORK.buffers = {}
    buf = kept.get(dtype)
    if buf is None or buf.numel() < count:
        buf = torch.empty(count, dtype=dtype)
        if buf.numel() * buf.element_size() <= _WORK_KEEP:
            kept[dtype] = buf
    return buf[:count]


def _winners_module():
    """The compiled row loops, imported at the first winner search (not at ``import somlab``);
    None where the extension is not built (the torch loops below are used then)."""
    if not _WINNERS:
        try:
            from somlab.core import _winners
        except ImportError:  # a source tree without build_ext
            _winners = None
        _WINNERS.append(_winners)
    return _WINNERS[0]


def _kernel_for(X, W, k, node_mask, ref):
    """The compiled module where it applies to this call (CPU, float32/64 of one dtype,
    contiguous rows, no autograd, k <= its MAXK, at least one sample and active node), else
    None."""
    if (
        X.device.type != "cpu"
        or X.dtype not in (torch.float32, torch.float64)
        or W.dtype != X.dtype
        or ref.dtype != X.dtype
        or W.device.type != "cpu"
        or X.dim() != 2
        or W.dim() != 2
        or W.shape[1] != X.shape[1]
        or ref.device.type != "cpu"
        or tuple(ref.shape) != (X.shape[1],)  # the C passes read m values of a 1-D ref
        or X.shape[0] == 0
        or X.shape[1] == 0
        or W.shape[0] == 0
        or not X.is_contiguous()
        or X.requires_grad
        or W.requires_grad
    ):
        return None
    mod = _winners_module()
    if mod is None or k > mod.MAXK:
        return None
    if node_mask is not None and not bool(node_mask.any()):
        return None
    return mod


def _bmu_compiled(mod, X, W, metric, k, node_mask, ref, spread=False):
    """:func:`best_matching_units`' (sq)euclidean search with the compiled row loops
    (core/_winners.pyx): ``spread`` (``max |x - ref|``, the scale's X part, one pass), then per
    cache block of samples ``prep`` (``xb = (x - ref) sc`` and ``|xb|^2``), torch's ``mm`` of
    ``xb.wc^T`` (or of ``wc.xb^T``: :func:`_node_major`) into one reused buffer, and ``rank``
    (``rank2t``): ``d = |wc|^2 - 2 xb.wc``, the k first minima (argmin's ties and NaN),
    ``max(d + |xb|^2, 0)`` and the rows whose winner the expansion may have cancelled,
    recomputed here in the direct form; then ``roots`` (IEEE square roots, as torch's, and the
    exact unscaling).  The units are the torch loops' (the same product and the same ``d``),
    except where X is up to 2**20 times larger than W and some prototype coordinates are
    within 2**-100 of the reference (the loops' smaller scale, from X's range, underflows them;
    this search's does not); the distances agree with theirs to rounding (``|xb|^2`` is summed
    in another order).
    Inactive nodes are left out of the product."""
    n, m = X.shape
    f32 = X.dtype == torch.float32
    ref = ref.contiguous()  # read as m contiguous values by spread and prep
    wc = W - ref
    # The scale, a power of two: any that keeps every value clear of under- and overflow gives
    # the same bits (scaling by 2**e is exact there), so the prototypes' own (W's range) is
    # taken, and the blocks check that the rows fit it (|xb|^2 up to _SCALE_FIT); where one
    # does not (X far larger than W, a NaN or an infinity), the search starts again
    # at _centred_scale's scale, whose X part is one compiled pass (spread; NaN: a NaN or an
    # infinity in X, scale 1 as there; max(x, w) keeps x where w is NaN, as _pow2_scale does).
    big = float(wc.abs().amax())
    if spread:
        big = max(mod.spread(f32, X.data_ptr(), n, m, ref.data_ptr()), big)
    sc = _pow2_scale_of(big)
    hi = _SCALE_FIT[f32]
    if sc != 1.0:
        wc.mul_(sc)
    wc_all = wc.contiguous()
    w_sq_all = (wc_all * wc_all).sum(1)  # (a row's sum does not depend on the other rows)
    wc, w_sq, amap = wc_all, w_sq_all, 0
    if node_mask is not None and not bool(node_mask.all()):  # inactive nodes left out
        active = torch.nonzero(node_mask).squeeze(1)
        wc, w_sq = wc_all.index_select(0, active), w_sq_all.index_select(0, active)
        amap = active.data_ptr()
    n_act = wc.shape[0]
    wlim = 2.0 * float(w_sq.amax())
    wlim = wlim if math.isfinite(wlim) else math.inf  # rank's bound on |d| (NaN: none)
    size = X.element_size()
    # a block's product and rows fill ~_KERNEL_BLOCK_BYTES (the core's L2; twice that on two
    # threads measured slower), in blocks of even size (a short last block is slow in mm)
    inner = max(1, min(n, _KERNEL_BLOCK_BYTES // (size * (n_act + m))))
    inner = -(-n // -(-n // inner))
    nt = _pass_threads(mod, inner * (n_act + m))
    idx = torch.empty(n, k, dtype=torch.long)
    dist = torch.empty(n, k, dtype=X.dtype)
    bad = torch.empty(n, dtype=torch.long)
    # one workspace, kept between calls (fresh pages cost more than the ranking): the block's
    # product [inner, n_act], its centred rows [inner, m] and their |xb|^2 [inner], one row
    # of d [n_act]
    node_major = _node_major(k, W.shape[0], X.device)  # (the torch loops' rule)
    work = _workspace(inner * (n_act + m + 5) + nt * n_act, X.dtype)  # (+4: rank2t's scratch)
    xbuf = work[inner * n_act : inner * (n_act + m)].view(inner, m)
    pbuf = work.data_ptr()
    pxb = pbuf + inner * n_act * size
    pxsq = pxb + inner * m * size
    pdrow = pxsq + inner * size
    pX, pref, pidx, pdist, pwsq = (
        X.data_ptr(),
        ref.data_ptr(),
        idx.data_ptr(),
        dist.data_ptr(),
        w_sq.data_ptr(),
    )
    pbad, nbad = bad.data_ptr(), 0
    if node_major:  # wc.xb^T [n_act, rows]: the rows' two best kept elementwise (rank2t)
        d0 = pdrow + nt * n_act * size
        rank, tail = (
            mod.rank2t,
            (d0, d0 + inner * size, d0 + 2 * inner * size, d0 + 3 * inner * size),
        )
        full = (wc, xbuf.T, work[: n_act * inner].view(n_act, inner))
    else:  # xb.wc^T [rows, n_act] and a pass per row (rank; pdrow: nt rows of d)
        rank, tail = mod.rank, (pdrow,)
        full = (xbuf, wc.T, work[: inner * n_act].view(inner, n_act))
    for s in range(0, n, inner):
        rows = min(inner, n - s)
        fit = mod.prep(nt, f32, pX + s * m * size, rows, m, pref, sc, pxb, pxsq)  # max |xb|^2
        if not (spread or fit <= hi):  # rows far beyond W's size, or NaN: X's range too
            return _bmu_compiled(mod, X, W, metric, k, node_mask, ref, spread=True)
        if rows == inner:
            torch.mm(full[0], full[1], out=full[2])
        elif node_major:
            torch.mm(wc, xbuf[:rows].T, out=work[: n_act * rows].view(n_act, rows))
        else:
            torch.mm(xbuf[:rows], full[1], out=full[2][:rows])
        nbad += rank(
            nt, f32, pbuf, rows, n_act, k, amap, pxsq, wlim, pwsq, REFINE_SHARE, s,
            pbad + nbad * 8, *tail, pidx + s * k * 8, pdist + s * k * size,
        )  # fmt: skip
    if nbad:  # the winners the expansion may have cancelled: _refine_rows' direct form
        b = bad[:nbad]
        diff = (X[b] - ref).mul_(sc) - wc_all[idx[b, 0]]
        dist[b, 0] = (diff * diff).sum(-1)
    mod.roots(f32, pdist, n * k, sc, metric == "euclidean")  # sqrt(d2) / sc, or d2 / sc^2
    return idx, dist


def _rank(d, k, node_mask, idx_out, dist_out) -> None:
    """The ``k`` smallest entries of each row of ``d [rows, n_nodes]`` (first minimum first;
    ``d`` may be overwritten) into ``idx_out`` and ``dist_out`` ``[rows, k]``."""
    if node_mask is not None:
        d.masked_fill_(~node_mask.unsqueeze(0), float("inf"))
    r = 0
    n_nodes = d.shape[1]
    if k >= 2 and n_nodes % _argmin_width(n_nodes) == 0 and n_nodes >= 2 * 32:
        for r, (v, j) in enumerate(first_two_min(d)):
            idx_out[:, r], dist_out[:, r] = j, v
        r = 2
        if k > 2:
            d.scatter_(1, idx_out[:, :2], float("inf"))
    while r < k:
        v, j = first_min(d)
        idx_out[:, r], dist_out[:, r] = j, v
        r += 1
        if r < k:
            d.scatter_(1, j.unsqueeze(1), float("inf"))


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
