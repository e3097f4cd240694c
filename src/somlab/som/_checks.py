"""Input checks and training guards of the classic SOM: the training tensor (NaN, inf,
overflow, precision), the memory estimate a fit is refused by, and divergence checks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from .._errors import DataError
from .._utils import (
    FitMemoryError,
    as_tensor,
    available_memory,
    check_finite_tensor,
    format_bytes,
)
from ..core.grids import Grid
from ._init import _EIGH_MAX_FEATURES

# Distances computed from squares (||x||^2, x.w): these must stay finite in the training dtype.
# (Euclidean distances are centred and scaled before the expansion, core.distances.centred, so
# only the distances themselves and the per-node sums of the updates must stay finite.)
_SQUARING = ("sqeuclidean", "cosine")
# Sums of up to 2**40 samples per node must stay finite too.
_SUM_HEADROOM = 2.0**40


def checked_tensor(X, dt, dev, distance: str, *, allow_nan=False, columns=False, hint=None):
    """Validated ``X`` as a ``dt`` tensor on ``dev``, refused (DataError) for inf, NaN unless
    ``allow_nan``, a feature NaN in every row (``columns``), or values whose squared distances
    overflow ``dt``; a float64 value that the cast itself made inf is named as such."""
    T = as_tensor(X, dt, dev)
    try:
        check_finite_tensor(
            T,
            allow_nan=allow_nan,
            columns=columns,
            max_abs=_max_abs(distance, dt, T.shape[1]),
            hint=hint,
        )
    except DataError:
        _check_cast(X, T)
        raise
    _check_precision(X, T)
    return T


def _max_abs(distance: str, dtype: torch.dtype, m: int) -> float | None:
    """Largest |x| whose distances cannot overflow ``dtype``: with every coordinate of x and of
    the prototypes within M, ``||x||^2 + ||w||^2 - 2 x.w <= 4 m M^2 <= finfo.max``."""
    if distance == "euclidean":  # ||x - w|| <= 2 sqrt(m) M, and the sums of the updates
        return torch.finfo(dtype).max / (_SUM_HEADROOM * max(m, 1))
    if distance not in _SQUARING:
        return None
    return math.sqrt(torch.finfo(dtype).max / (4 * max(m, 1)))


def _check_precision(X, T: torch.Tensor) -> None:
    """Refuse a cast to a narrower dtype that erases the data: a feature whose values sit so
    far from zero that the dtype's spacing there exceeds 1/16 of their spread (timestamps
    ``1.7e9 + U(0, 100)`` in float32 keep a handful of distinct values, spaced 128 apart).
    Centring inside the distances (core.distances.centred) keeps float32 training exact for
    what float32 can hold, but not for values the cast has already rounded away.  A feature
    far narrower than the others (noise of 1e-9 around 0.3 beside features of spread 0.3) is
    not refused: it weighs nothing in the distances either way."""
    if not (isinstance(X, np.ndarray) and X.dtype.itemsize > T.element_size()) or X.size == 0:
        return
    if X.shape[0] < 2:
        return
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # all-NaN features: checked later
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(X, axis=0)
        big = np.nanmax(np.abs(X), axis=0)
    spacing = np.spacing(big.astype(np.float32 if T.dtype == torch.float32 else np.float16))
    # a feature whose spread is below 1e-4 of the widest feature's weighs under 1e-8 in every
    # squared distance: what the cast rounds away there (noise around a constant) is harmless
    matters = spread >= 1e-4 * np.nanmax(spread)
    bad = np.flatnonzero((spread > 0) & (spacing.astype(np.float64) > spread / 16) & matters)
    if bad.size:
        j = int(bad[0])
        dt = str(T.dtype).replace("torch.", "")
        raise DataError(
            f"feature {j} of X (values up to {big[j]:.6g}, standard deviation {spread[j]:.3g}) "
            f"cannot be held in {dt}: its values there are {float(spacing[j]):.3g} apart, so "
            f"the cast would erase the differences between samples ({bad.size} feature(s) "
            f"affected); pass dtype='float64', or subtract an offset (e.g. the first "
            "timestamp) before fitting"
        )


def _check_cast(X, T: torch.Tensor) -> None:
    """Called when ``T``, ``X`` cast to the training dtype, failed its check: if the cast
    itself made inf of finite values (1e300 in float32), say so (error path only)."""
    if not (isinstance(X, np.ndarray) and X.dtype.itemsize > T.element_size()):
        return
    if bool(torch.isinf(T).any()) and not np.isinf(X).any():
        dt = str(T.dtype).replace("torch.", "")
        raise DataError(
            f"X has values beyond the range of {dt} (max {torch.finfo(T.dtype).max:.3g}) that "
            f"overflow when cast to dtype='{dt}'; pass dtype='float64' or scale the data"
        ) from None


def fit_memory(
    n_samples: int | None,
    n_features: int,
    n_nodes: int,
    *,
    itemsize: int = 4,
    init="pca",
    chunk_rows: int | None = None,
) -> dict:
    """Bytes a SOM fit allocates at its peak, estimated from the shapes alone, by part.

    ``n_samples`` rows in memory (None: streamed ``chunk_rows`` at a time); ``itemsize`` of
    the training dtype.  The parts: ``"prototypes"`` (the map, its update sums, the new map
    and a temporary: about 5 ``[n_nodes, m]`` tensors, plus counts), ``"grid"`` (float64 node
    coordinates and one block of neighbourhood rows: displacements, weights), ``"init"``
    (float64 copies of the map for "pca" and "random", and for "pca" the covariance when it is
    formed), ``"data"`` (the data tensor and its float64 centred copy for the statistics, or
    two streamed chunks) and ``"distances"`` (the bounded distance blocks).  Used by
    :func:`check_fit_memory` to refuse a fit before it allocates.
    """
    from ..core.distances import _ELEMENT_BUDGET
    from ..core.updates import _BLOCK_ELEMENTS

    k, m, b = int(n_nodes), int(n_features), int(itemsize)
    parts = {
        "prototypes": k * (5 * m + 2) * b,
        "grid": k * 16 + max(k, _BLOCK_ELEMENTS) * (16 + 8 + 8 + b),
        "init": 0,
        "distances": 3 * min(_ELEMENT_BUDGET, max(k, 1) * (n_samples or chunk_rows or 1)) * b,
    }
    stats = isinstance(init, str) and init in ("pca", "random")
    if stats:
        parts["init"] = k * (2 * 8 * m + 4 * 16)
        if init == "pca" and m <= _EIGH_MAX_FEATURES:
            parts["init"] += 3 * 8 * m * m
    if n_samples is not None:
        parts["data"] = n_samples * m * (b + (16 if stats else 0))
    else:
        parts["data"] = 2 * (chunk_rows or 0) * m * (b + 8)
    return parts


def check_fit_memory(est, grid: Grid, n_samples, n_features, dev, dt, chunk_rows=None, maps=1):
    """Refuse (:class:`~somlab._utils.FitMemoryError`) a fit whose :func:`fit_memory` estimate
    exceeds the memory free on ``dev``, naming the size and the ways out, before anything of
    the map's size is allocated."""
    itemsize = torch.empty((), dtype=dt).element_size()
    parts = fit_memory(
        n_samples,
        n_features,
        grid.n_nodes * maps,
        itemsize=itemsize,
        init=est.init,
        chunk_rows=chunk_rows,
    )
    need = sum(parts.values())
    free = available_memory(dev)
    if free is None or need <= free:
        return
    name = type(est).__name__
    what = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v > need / 20)
    rows = "streamed" if n_samples is None else f"{n_samples:,}"
    ways = [f"a smaller map (grid_shape={grid.shape} has {grid.n_nodes:,} nodes)"]
    if parts["init"] > need / 20:
        ways.append("init='sample' (no float64 statistics)")
    if parts["data"] > need / 5:
        ways.append(
            "a smaller chunk_size"
            if n_samples is None
            else "fit on a .npy path or memory map with a chunk_size (read a chunk at a time)"
        )
    raise FitMemoryError(
        f"{name}.fit would need about {format_bytes(need)} ({what}) for {rows} samples x "
        f"{n_features:,} features on a {' x '.join(map(str, grid.shape))} map"
        + (f" x {maps} maps" if maps > 1 else "")
        + f", more than the {format_bytes(free)} free on {dev}; use "
        + ", or ".join(ways)
    )


def _check_training(W: torch.Tensor, qe: float, epoch: int | None = None) -> None:
    """Refuse a map whose training diverged (prototypes not finite) or whose distances
    overflow the dtype (a quantization error that is not finite), with what to do."""
    when = "after training" if epoch is None else f"after epoch {epoch + 1}"
    dt = str(W.dtype).replace("torch.", "")
    if not bool(torch.isfinite(W).all()):
        raise DataError(
            f"training diverged: the prototypes are not finite {when}; lower learning_rate, "
            "scale the data (e.g. StandardScaler) or pass dtype='float64'"
        )
    if not math.isfinite(qe):
        raise DataError(
            f"the distances to the prototypes overflow {dt} (quantization error {qe} {when}); "
            "scale the data (e.g. StandardScaler), pass dtype='float64' or lower learning_rate"
        )


def _span(W: torch.Tensor) -> float:
    """The largest per-feature extent of the prototypes ``W [k, m]`` (NaN-free)."""
    if W.shape[0] < 2:
        return 0.0
    lo, hi = torch.aminmax(W.double(), dim=0)
    return float((hi - lo).amax())


# A mini-batch or online map whose prototypes spread this much wider than the initial map's
# has diverged (w' - x = (1 - lr h)(w - x): steps with lr h > 2 overshoot further each time).
# With a learning rate <= 1 every step is a convex combination: the map stays inside the hull
# of the initial prototypes and the data, which the initialisations span.
_DIVERGED_SPAN = 1e4


def _check_span(W: torch.Tensor, span0: float, epoch: int, lr: float) -> None:
    """Refuse a mini-batch / online map that exploded while staying finite (issue 17:
    ``learning_rate=50`` reached weights of 4e21 without a message)."""
    span = _span(W)
    if span0 > 0 and span > _DIVERGED_SPAN * span0:
        raise DataError(
            f"training diverged: after epoch {epoch + 1} the prototypes span {span:.3g}, "
            f"{span / span0:.3g} times the initial map's {span0:.3g}; lower learning_rate "
            f"(it is {lr:g}; a step with learning_rate > 2 can overshoot the sample)"
        )
