"""The arrays behind the SOM plots: pure NumPy functions, no matplotlib.

Every function takes a fitted estimator (anything with ``weights_`` of shape
``[rows, cols, n_features]`` and a ``grid_`` :class:`~somlab.core.grids.Grid`) or a bare weights
array together with a ``grid``.  Node ``(r, c)`` is node ``r * cols + c``, as in
:meth:`somlab.SOM.predict`.
"""

from __future__ import annotations

import numpy as np

from ..core.grids import Grid

__all__ = [
    "class_distribution",
    "class_markers",
    "component_planes",
    "expanded_umatrix",
    "hit_map",
    "prototype_distance",
    "prototype_mosaic",
    "umatrix",
]


# ---------------------------------------------------------------- input handling
def _to_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _is_estimator(obj) -> bool:
    return hasattr(obj, "fit") and hasattr(obj, "get_params")


def _is_fitted(obj) -> bool:
    """scikit-learn's convention: a fitted estimator has public attributes ending in "_"."""
    return any(k.endswith("_") and not k.startswith("_") for k in getattr(obj, "__dict__", {}))


def as_map(som_or_weights, grid: Grid | None = None, *, spatial=False) -> tuple[np.ndarray, Grid]:
    """Weights ``[rows, cols, n_features]`` (float64) and the Grid of a SOM or a weights array.

    A map on a 3-D grid (``SOM((4, 5, 6))``) has no picture on the plane: it is a ValueError
    unless ``spatial`` (plots that draw the prototypes in data space), which get weights
    ``[rows, cols, layers, n_features]``.

    Parameters
    ----------
    som_or_weights : fitted SOM, or array of shape (rows, cols, n_features) or (n_nodes, n_features)
    grid : Grid, optional
        Needed for a 2-D weights array; for a 3-D array the default is a rectangular,
        non-toroidal grid of the array's shape.  Ignored for a SOM, which knows its grid.
    """
    obj = som_or_weights
    if _is_estimator(obj) or hasattr(obj, "weights_"):
        if not hasattr(obj, "weights_"):
            if _is_fitted(obj):
                raise ValueError(
                    f"this plot draws a SOM's grid of prototypes; a {type(obj).__name__} has "
                    "none (relevance maps: plot_relevances; DC-SOMRL: plot_decoded_prototypes)"
                )
            raise ValueError(
                f"fit the SOM before plotting: this {type(obj).__name__} has no weights_ yet"
            )
        W = _to_numpy(obj.weights_)
        grid = obj.grid_ if hasattr(obj, "grid_") else Grid(*W.shape[:2])
        if getattr(grid, "ndim", 2) == 3:
            if not spatial:
                raise ValueError(
                    f"this plot draws 2-D maps; the grid {grid.shape} is 3-D: use "
                    "plot_data_space, or the arrays (weights_, bmu_coordinates(X))"
                )
            return W.astype(np.float64, copy=False), grid
    else:
        W = _to_numpy(obj)
        if W.ndim == 2:
            if grid is None:
                raise ValueError(
                    "a 2-D weights array (n_nodes, n_features) needs grid=Grid(rows, cols, ...)"
                )
            if W.shape[0] != grid.n_nodes:
                raise ValueError(
                    f"weights have {W.shape[0]} nodes but the grid {grid.rows}x{grid.cols} "
                    f"has {grid.n_nodes}"
                )
            W = W.reshape(grid.rows, grid.cols, W.shape[1])
        elif W.ndim != 3:
            raise ValueError(
                "expected a fitted SOM or weights of shape (rows, cols, n_features), "
                f"got an array of shape {W.shape}"
            )
        if grid is None:
            grid = Grid(W.shape[0], W.shape[1])
    if W.ndim != 3 or W.shape[:2] != grid.shape:
        raise ValueError(f"weights of shape {W.shape} do not match the grid shape {grid.shape}")
    if W.dtype.kind not in "fiu":
        raise ValueError(f"weights must be numeric, got dtype {W.dtype}")
    return W.astype(np.float64, copy=False), grid


def _check_X(X, n_features: int) -> np.ndarray:
    X = _to_numpy(X)
    if X.ndim == 1:
        X = X.reshape(-1, 1) if n_features == 1 else X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(
            f"X must have shape (n_samples, {n_features}) to match the prototypes, got {X.shape}"
        )
    if X.shape[0] == 0:
        raise ValueError("X is empty")
    return X


def best_matching_nodes(som_or_weights, X, grid: Grid | None = None) -> np.ndarray:
    """Best-matching node index (row-major) of each sample, shape ``[n_samples]``.

    A SOM answers with its own :meth:`predict` (its distance metric and missing-value rule); a
    bare weights array uses the Euclidean distance.
    """
    W, grid = as_map(som_or_weights, grid)
    if hasattr(som_or_weights, "predict") and hasattr(som_or_weights, "weights_"):
        return np.asarray(som_or_weights.predict(X), dtype=np.int64)
    flat = W.reshape(grid.n_nodes, -1)
    X = _check_X(X, flat.shape[1]).astype(np.float64)
    w2 = (flat * flat).sum(1)
    out = np.empty(X.shape[0], dtype=np.int64)
    step = max(1, 2_000_000 // max(1, grid.n_nodes))
    for s in range(0, X.shape[0], step):
        xb = X[s : s + step]
        d2 = w2[None, :] - 2.0 * xb @ flat.T  # + |x|^2, the same for every node
        out[s : s + step] = d2.argmin(1)
    return out


def _check_y(y, n: int) -> np.ndarray:
    y = _to_numpy(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must be a 1-D array of {n} labels (one per sample), got {y.shape}")
    return y


# ---------------------------------------------------------------- distance maps
PROTOTYPE_DISTANCES = ("euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine")


def _map_distance(som_or_weights, distance) -> str:
    """The distance a map's plots measure prototypes in: ``distance`` when given, else the
    estimator's own ``distance`` parameter, else Euclidean (a bare weights array)."""
    if distance is None:  # a relevance map's own "distance" is not a prototype distance
        distance = getattr(som_or_weights, "distance", None)
        return distance if distance in PROTOTYPE_DISTANCES else "euclidean"
    if distance not in PROTOTYPE_DISTANCES:
        raise ValueError(f"distance must be one of {PROTOTYPE_DISTANCES}, got {distance!r}")
    return distance


def prototype_distance(a: np.ndarray, b: np.ndarray, distance: str = "euclidean") -> np.ndarray:
    """Distance between paired prototypes ``a[..., m]`` and ``b[..., m]`` (float64), in the
    SOM's metric: cosine is ``1 - a.b / (|a| |b| + 1e-8)`` as in best-matching-unit search."""
    diff = a - b
    if distance == "euclidean":
        return np.linalg.norm(diff, axis=-1)
    if distance == "sqeuclidean":
        return (diff * diff).sum(-1)
    if distance == "manhattan":
        return np.abs(diff).sum(-1)
    if distance == "chebyshev":
        return np.abs(diff).max(-1)
    if distance == "cosine":
        num = (a * b).sum(-1)
        return 1.0 - num / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-8)
    raise ValueError(f"distance must be one of {PROTOTYPE_DISTANCES}, got {distance!r}")


def umatrix(som_or_weights, grid: Grid | None = None, distance=None) -> np.ndarray:
    """U-matrix: mean distance from each prototype to its grid neighbours.

    ``U[r, c] = mean_{j in N(r, c)} dist(w_(r,c), w_j)`` where ``N`` holds the nodes adjacent
    on the grid, as the topographic error counts them (``Grid.adjacency_radius``): the
    8-neighbourhood on rectangular maps, the six lattice neighbours on hexagonal maps, wrapped
    around on toroidal maps.  A node without neighbours (a 1x1 map) gets 0.

    ``distance`` (see :data:`PROTOTYPE_DISTANCES`) defaults to the map's own ``distance`` (a
    cosine SOM gets a cosine U-matrix), Euclidean for a bare weights array.

    Returns
    -------
    ndarray of shape (rows, cols)
    """
    W, grid = as_map(som_or_weights, grid)
    distance = _map_distance(som_or_weights, distance)
    flat = W.reshape(grid.n_nodes, -1)
    edges = grid.neighbours_within(grid.adjacency_radius()).numpy()  # [n_edges, 2], i < j
    i, j = edges[:, 0], edges[:, 1]
    d = prototype_distance(flat[i], flat[j], distance)
    n = grid.n_nodes
    total = np.bincount(i, d, n) + np.bincount(j, d, n)
    count = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    U = np.divide(total, count, out=np.zeros(n), where=count > 0)
    return U.reshape(grid.shape)


def expanded_umatrix(som_or_weights, grid: Grid | None = None, distance=None) -> np.ndarray:
    """U-matrix with cells between nodes (NeuPy's expanded heat map).

    Rectangular maps: shape ``(2*rows - 1, 2*cols - 1)``; node ``(r, c)`` sits at cell
    ``(2r, 2c)``:

    * ``E[2r, 2c+1] = dist(w_(r,c), w_(r,c+1))`` and ``E[2r+1, 2c] = dist(w_(r,c), w_(r+1,c))``:
      the cell between two adjacent nodes holds their prototype distance;
    * ``E[2r+1, 2c+1]`` = mean of the two diagonal distances
      ``dist(w_(r,c), w_(r+1,c+1))`` and ``dist(w_(r,c+1), w_(r+1,c))``;
    * ``E[2r, 2c]`` = mean of the (up to four) between-node cells next to it.

    Hexagonal maps: the nodes and the midpoints of the lattice edges form a hexagonal lattice
    of half the spacing, returned in the same "odd-r" layout as the map, shape
    ``(2*rows - 1, 2*cols)``: cell ``(R, J)`` sits at row coordinate ``R * sqrt(3)/4`` and
    column coordinate ``(J + 0.5 * (R % 2)) / 2``.  Node ``(r, c)`` is cell
    ``(2r, 2c + r % 2)`` and holds the mean distance to its (up to six) neighbours; the cell
    at the midpoint of two adjacent nodes holds their distance; cells outside the map are NaN.

    ``distance`` defaults to the map's own (see :func:`umatrix`).  A toroidal map's
    wrap-around distances have no cell here, so they are left out.
    """
    W, grid = as_map(som_or_weights, grid)
    distance = _map_distance(som_or_weights, distance)
    if grid.topology == "hexagonal":
        return _expanded_hex(W, grid, distance)
    rows, cols, _ = W.shape
    E = np.zeros((2 * rows - 1, 2 * cols - 1))
    horiz = prototype_distance(W[:, 1:], W[:, :-1], distance)  # [rows, cols-1]
    vert = prototype_distance(W[1:], W[:-1], distance)  # [rows-1, cols]
    E[0::2, 1::2] = horiz
    E[1::2, 0::2] = vert
    diag = prototype_distance(W[1:, 1:], W[:-1, :-1], distance)
    anti = prototype_distance(W[1:, :-1], W[:-1, 1:], distance)
    E[1::2, 1::2] = 0.5 * (diag + anti)
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    total[:, :-1] += horiz
    total[:, 1:] += horiz
    count[:, :-1] += 1
    count[:, 1:] += 1
    total[:-1] += vert
    total[1:] += vert
    count[:-1] += 1
    count[1:] += 1
    E[0::2, 0::2] = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return E


def _expanded_hex(W: np.ndarray, grid: Grid, distance: str) -> np.ndarray:
    rows, cols, _ = W.shape
    flat = W.reshape(grid.n_nodes, -1)
    plain = Grid(rows, cols, "hexagonal")  # no wrap-around edges
    edges = plain.neighbours_within(1.0 + 1e-6).numpy()
    i, j = edges[:, 0], edges[:, 1]
    d = prototype_distance(flat[i], flat[j], distance)
    r, c = np.divmod(np.arange(grid.n_nodes), cols)
    x2 = 2 * c + r % 2  # twice the column coordinate
    E = np.full((2 * rows - 1, 2 * cols), np.nan)
    R = r[i] + r[j]
    J = (x2[i] + x2[j]) // 2  # (2 * midpoint x) - 0.5 * (R % 2), an integer
    E[R, J] = d
    n = grid.n_nodes
    total = np.bincount(i, d, n) + np.bincount(j, d, n)
    count = np.bincount(i, minlength=n) + np.bincount(j, minlength=n)
    E[2 * r, x2] = np.divide(total, count, out=np.zeros(n), where=count > 0)
    return E


# ---------------------------------------------------------------- data on the map
def hit_map(som_or_weights, X, grid: Grid | None = None) -> np.ndarray:
    """Number of samples of ``X`` whose best-matching unit is each node, shape (rows, cols)."""
    W, grid = as_map(som_or_weights, grid)
    bmu = best_matching_nodes(som_or_weights, X, grid)
    return np.bincount(bmu, minlength=grid.n_nodes).reshape(grid.shape)


def class_markers(som_or_weights, X, y, grid: Grid | None = None):
    """Best-matching unit ``(row, col)`` of every sample, with its label.

    Returns
    -------
    positions : ndarray of shape (n_samples, 2), int
        Grid row and column of each sample's best-matching unit.
    labels : ndarray of shape (n_samples,)
        ``y`` as an array.
    """
    W, grid = as_map(som_or_weights, grid)
    bmu = best_matching_nodes(som_or_weights, X, grid)
    y = _check_y(y, bmu.shape[0])
    return np.stack([bmu // grid.cols, bmu % grid.cols], axis=1), y


def class_distribution(som_or_weights, X, y, classes=None, grid: Grid | None = None):
    """Share of each class among the samples mapped to each node.

    Parameters
    ----------
    classes : sequence, optional
        Class order of the last axis; default ``np.unique(y)``.

    Returns
    -------
    ndarray of shape (rows, cols, n_classes)
        ``P[r, c, k]`` = hits of class ``k`` at node ``(r, c)`` / hits at ``(r, c)``; every node
        with hits sums to 1, nodes without hits are all zero.
    """
    W, grid = as_map(som_or_weights, grid)
    bmu = best_matching_nodes(som_or_weights, X, grid)
    y = _check_y(y, bmu.shape[0])
    classes = np.unique(y) if classes is None else np.asarray(classes)
    sorter = np.argsort(classes, kind="stable")
    pos = np.searchsorted(classes, y, sorter=sorter)
    pos = np.clip(pos, 0, len(classes) - 1)
    k = sorter[pos]
    unknown = classes[k] != y
    if np.any(unknown):
        raise ValueError(f"labels {np.unique(y[unknown])[:5].tolist()} are not in classes")
    counts = np.zeros((grid.n_nodes, len(classes)))
    np.add.at(counts, (bmu, k), 1.0)
    hits = counts.sum(1, keepdims=True)
    P = np.divide(counts, hits, out=np.zeros_like(counts), where=hits > 0)
    return P.reshape(grid.rows, grid.cols, len(classes))


# ---------------------------------------------------------------- prototypes
def component_planes(som_or_weights, grid: Grid | None = None) -> np.ndarray:
    """Prototype values per feature, ``[n_features, rows, cols]``: ``planes[f] = weights_[..., f]``.

    Each plane is a map of one input variable; similar planes reveal correlated features.
    """
    W, _ = as_map(som_or_weights, grid)
    return np.moveaxis(W, -1, 0).copy()


def prototype_mosaic(weights, image_shape, pad: int = 0, fill: float = np.nan, grid=None):
    """Tile the prototypes, read as images, into one array laid out like the map.

    Prototype ``(r, c)`` reshaped to ``image_shape = (h, w[, channels])`` lands in the block
    ``mosaic[r*(h+pad) : r*(h+pad)+h, c*(w+pad) : c*(w+pad)+w]``; the ``pad`` rows and columns
    between blocks hold ``fill``.  Hexagonal maps are tiled by grid index (no half-cell shift).

    Returns
    -------
    ndarray of shape (rows*(h+pad) - pad, cols*(w+pad) - pad[, channels])
    """
    W, grid = as_map(weights, grid)
    rows, cols, m = W.shape
    shape = tuple(int(s) for s in np.atleast_1d(image_shape))
    if len(shape) not in (2, 3) or int(np.prod(shape)) != m:
        raise ValueError(
            f"plot_prototypes needs image_shape whose product equals n_features={m} "
            f"(as (height, width) or (height, width, channels)), got {tuple(shape)}"
        )
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    h, w, rest = shape[0], shape[1], shape[2:]
    tiles = W.reshape(rows, cols, h, w, *rest)
    if pad:
        widths = [(0, 0), (0, 0), (0, pad), (0, pad)] + [(0, 0)] * len(rest)
        tiles = np.pad(tiles, widths, constant_values=fill)
    H, Wd = h + pad, w + pad
    order = (0, 2, 1, 3) + tuple(range(4, 4 + len(rest)))
    mosaic = tiles.transpose(order).reshape(rows * H, cols * Wd, *rest)
    return mosaic[: rows * H - pad, : cols * Wd - pad]
