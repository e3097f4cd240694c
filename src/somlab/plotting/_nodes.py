"""Per-node values on the map: any value, clusters of nodes, target statistics.

:func:`plot_node_values` colours every node by a number (NaN: light grey), on rectangular and
hexagonal maps; :func:`plot_clusters` draws the clusters of :meth:`somlab.SOM.cluster` with one
colour each and their borders; :func:`target_map` and :func:`plot_target_map` show the mean or
spread of a target per node (as a :class:`somlab.SOMRegressor` predicts it).
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import Patch

from ..core.grids import Grid
from ._arrays import _check_y, as_map, best_matching_nodes
from ._draw import (
    _axes,
    _class_colors,
    _colorbar,
    _draw_cells,
    _figsize,
    _save,
    _use_hex,
    node_xy,
)

__all__ = ["plot_clusters", "plot_node_values", "plot_target_map", "target_map"]


def _node_array(values, grid: Grid, name="values") -> np.ndarray:
    v = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values)
    if v.shape == (grid.n_nodes,):
        v = v.reshape(grid.shape)
    if v.shape != grid.shape:
        raise ValueError(
            f"{name} must have one entry per node: shape ({grid.n_nodes},) or {grid.shape}, "
            f"got {v.shape}"
        )
    return v


def _som_of(model):
    """The map of a SOMClassifier / SOMRegressor (``som_``), or the model itself."""
    return getattr(model, "som_", model)


def plot_node_values(
    som,
    values,
    ax=None,
    path=None,
    hexagonal=None,
    cmap="viridis",
    colorbar=True,
    label=None,
    title=None,
    vmin=None,
    vmax=None,
    annotate=False,
    fmt="{:.2g}",
    bad="0.88",
    grid=None,
):
    """Colour every node by ``values`` (shape ``(n_nodes,)`` row-major, or ``(rows, cols)``).

    Works on rectangular and hexagonal maps (hexagons at the lattice positions).  NaN values
    (e.g. nodes without data) are drawn in the colour ``bad`` (light grey).

    Parameters
    ----------
    som : fitted SOM (or SOMClassifier / SOMRegressor), or weights array with ``grid``
    values : array-like of shape (n_nodes,) or (rows, cols)
    label : str, optional
        Colour bar label.
    annotate : bool
        Write each finite value in its node with ``fmt``.

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> from somlab import SOM
    >>> from somlab.plotting import plot_node_values
    >>> X = np.random.default_rng(0).random((100, 3))
    >>> som = SOM((4, 5), topology="hexagonal", random_state=0).fit(X)
    >>> ax = plot_node_values(som, som.weights_[..., 0], label="feature 0")
    """
    W, grid = as_map(_som_of(som), grid)
    V = _node_array(values, grid).astype(float)
    hexagonal = _use_hex(grid, hexagonal)
    ax = _axes(ax, _figsize(grid, hexagonal))
    import matplotlib

    cmap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    cmap = cmap.with_extremes(bad=bad)
    m = _draw_cells(ax, V, grid, hexagonal, cmap, vmin=vmin, vmax=vmax)
    if colorbar:
        _colorbar(ax, m, label or "value")
    if annotate:
        size = max(5, min(10, 120 / max(grid.shape)))
        for (x, y), v in zip(node_xy(grid, hexagonal), V.ravel()):
            if np.isfinite(v):
                ax.text(x, y, fmt.format(v), ha="center", va="center", fontsize=size)
    if title is not None:
        ax.set_title(title)
    _save(ax.figure, path)
    return ax


def _borders(grid: Grid, labels: np.ndarray, hexagonal: bool):
    """Segments between adjacent cells with different labels (the shared cell edge)."""
    xy = node_xy(grid, hexagonal)
    radius = 1.0 + 1e-6  # edge-sharing neighbours: 4 on squares, 6 on hexagons
    layout = Grid(grid.rows, grid.cols, "hexagonal" if hexagonal else "rectangular")
    edges = layout.neighbours_within(radius).numpy()
    lab = labels.ravel()
    edges = edges[lab[edges[:, 0]] != lab[edges[:, 1]]]
    a, b = xy[edges[:, 0]], xy[edges[:, 1]]
    mid = (a + b) / 2
    d = b - a
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    # half the shared edge: 0.5 on squares, the hexagon's side / 2 = 1 / (2 sqrt 3) on hexagons
    half = (0.5 if not hexagonal else 0.5 / np.sqrt(3.0)) * normal
    return np.stack([mid - half, mid + half], axis=1)


def plot_clusters(
    som,
    labels=None,
    ax=None,
    path=None,
    hexagonal=None,
    colors=None,
    borders=True,
    names=None,
    legend=True,
    grid=None,
):
    """Draw the clusters of the nodes, one colour each, with black borders between clusters.

    Parameters
    ----------
    som : fitted SOM, or weights array with ``grid``
    labels : array-like of shape (n_nodes,) or (rows, cols), optional
        Cluster of every node; default the SOM's ``node_clusters_`` (from
        :meth:`somlab.SOM.cluster`).  ``-1`` (HDBSCAN noise) is drawn light grey.
    borders : bool
        Draw a line where two adjacent nodes are in different clusters.
    """
    W, grid = as_map(_som_of(som), grid)
    if labels is None:
        labels = getattr(_som_of(som), "node_clusters_", None)
        if labels is None:
            raise ValueError("pass labels=, or call som.cluster() first")
    L = _node_array(labels, grid, "labels")
    hexagonal = _use_hex(grid, hexagonal)
    classes = np.unique(L)
    real = classes[classes != -1] if L.dtype.kind in "iu" else classes
    cols = _class_colors(len(real), colors)
    index = {c: i for i, c in enumerate(real.tolist())}
    rgba = np.array(
        [cols[index[v]] if v in index else (0.85, 0.85, 0.85, 1.0) for v in L.ravel().tolist()],
        dtype=float,
    )
    if rgba.shape[1] == 3:
        rgba = np.c_[rgba, np.ones(len(rgba))]
    ax = _axes(ax, _figsize(grid, hexagonal))
    from matplotlib.collections import PatchCollection

    from ._draw import _cells, _frame

    coll = PatchCollection(
        _cells(grid, hexagonal), facecolors=rgba, edgecolors="white", linewidths=0.3
    )
    ax.add_collection(coll)
    _frame(ax, grid, hexagonal)
    if borders:
        ax.add_collection(LineCollection(_borders(grid, L, hexagonal), colors="k", linewidths=1.6))
    if legend and len(real):
        shown = [str(c) for c in real] if names is None else [str(n) for n in names]
        if len(shown) != len(real):
            raise ValueError(f"names has {len(shown)} entries for {len(real)} clusters")
        handles = [Patch(facecolor=c, label=n) for c, n in zip(cols, shown)]
        if len(real) < len(classes):
            handles.append(Patch(facecolor=(0.85, 0.85, 0.85), label="noise"))
        ax.legend(
            handles=handles,
            title="cluster",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            ncol=1 if len(handles) <= 12 else 2,
        )
    _save(ax.figure, path)
    return ax


def target_map(som, X, y, statistic="mean", grid=None) -> np.ndarray:
    """Per node, the ``statistic`` of the targets ``y`` of the samples it wins.

    Parameters
    ----------
    som : fitted SOM, or weights array with ``grid``
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), numeric
    statistic : {"mean", "std", "count"}
        "std" is the population standard deviation (ddof=0).

    Returns
    -------
    ndarray of shape (rows, cols), float64
        NaN at nodes that win no sample (count: 0).
    """
    if statistic not in ("mean", "std", "count"):
        raise ValueError(f"statistic must be 'mean', 'std' or 'count', got {statistic!r}")
    som = _som_of(som)
    W, grid = as_map(som, grid)
    bmu = best_matching_nodes(som, X, grid)
    y = np.asarray(_check_y(y, bmu.shape[0]), dtype=np.float64)
    from ..som._supervised import node_target_stats

    count, mean, std = node_target_stats(bmu, y[:, None], grid.n_nodes)
    value = {"count": count, "mean": mean[:, 0], "std": std[:, 0]}[statistic]
    return value.reshape(grid.shape)


def plot_target_map(
    som,
    X,
    y,
    statistic="mean",
    ax=None,
    path=None,
    hexagonal=None,
    cmap=None,
    colorbar=True,
    label=None,
    grid=None,
):
    """Draw :func:`target_map`: the mean (or spread, "std") of a numeric target per node.

    Nodes without samples are blank.  ``som`` may be a fitted SOM or a fitted
    :class:`somlab.SOMRegressor` (its map is used).
    """
    values = target_map(som, X, y, statistic, grid)
    if cmap is None:
        cmap = "magma" if statistic == "std" else "viridis"
    name = {"mean": "mean target", "std": "target std", "count": "samples"}[statistic]
    return plot_node_values(
        som,
        values,
        ax=ax,
        path=path,
        hexagonal=hexagonal,
        cmap=cmap,
        colorbar=colorbar,
        label=label or name,
        title=f"{name.capitalize()} per node",
        grid=grid,
    )
