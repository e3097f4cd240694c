"""Map-quality metrics of SPEC.md §8: quantization error and topographic error."""

from __future__ import annotations

import numpy as np
import torch

from .._errors import DataError
from ..core.distances import best_matching_units
from ..core.grids import Grid, grid_distance, make_grid


def _as_inputs(X, weights):
    W = np.asarray(weights, dtype=np.float64)
    if W.ndim not in (3, 4):
        raise DataError(
            "weights must have shape (rows, cols, n_features), or (rows, cols, layers, "
            f"n_features) for a 3-D grid, got {W.shape}"
        )
    if not np.isfinite(W).all():
        raise DataError(
            "weights contain NaN or inf: the map is not usable (did its training diverge? "
            "lower the learning rate, or scale the data)"
        )
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataError(f"X must be a non-empty 2-D array, got shape {X.shape}")
    if X.shape[1] != W.shape[-1]:
        raise DataError(f"X has {X.shape[1]} features but the map has {W.shape[-1]}")
    if not np.isfinite(X).all():
        raise DataError("X contains NaN or inf")
    return torch.from_numpy(X), torch.from_numpy(W.reshape(-1, W.shape[-1])), W.shape[:-1]


def quantization_error(X, weights) -> float:
    """QE = mean_x ||x - w_bmu(x)|| (Euclidean, not squared).

    ``weights`` has shape (rows, cols, n_features) or (rows, cols, layers, n_features).
    """
    Xt, Wt, _ = _as_inputs(X, weights)
    _, dist = best_matching_units(Xt, Wt, "euclidean", exact=True)
    return float(dist[:, 0].mean())


def topographic_error(X, weights, topology: str = "rectangular", toroidal: bool = False) -> float:
    """TE = share of samples whose best and second-best units are not grid neighbours.

    Rectangular: the 8-neighbourhood (grid distance <= 1.42, as MiniSom), and on a 3-D grid
    (weights of shape (rows, cols, layers, n_features)) the 26-neighbourhood (grid distance
    <= 1.74: one step along any axis or diagonal, Chebyshev distance 1); hexagonal (2-D only):
    the six lattice neighbours at distance 1; toroidal: the same with wrap-around.  NaN for a
    1-node map.
    """
    Xt, Wt, shape = _as_inputs(X, weights)
    grid = make_grid(shape, topology, toroidal)
    if grid.n_nodes < 2:
        return float("nan")
    bmu, _ = best_matching_units(Xt, Wt, "euclidean", k=2, exact=True)
    return topographic_error_from_bmus(bmu, grid)


def topographic_error_from_bmus(bmu, grid: Grid) -> float:
    """TE from the two best units of each sample (``bmu [n, 2]``): the share not adjacent."""
    if bmu.shape[1] < 2:
        return float("nan")
    coords = grid.coordinates(torch.float64, bmu.device)
    d = grid_distance(coords, bmu[:, 0], bmu[:, 1], grid.periods())
    return float((d > grid.adjacency_radius()).double().mean())
