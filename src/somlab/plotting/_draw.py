"""Matplotlib drawing of SOM maps: thin wrappers around the arrays of :mod:`._arrays`.

Every ``plot_*`` function draws into ``ax`` (a new figure when None), saves a PNG to ``path``
when given (dpi 120, tight bounding box) and returns the Axes.  Maps are drawn with node
``(r, c)`` at ``x = column coordinate``, ``y = row coordinate`` and row 0 at the top; hexagonal
maps use the true lattice coordinates of :meth:`Grid.coordinates` (pointy-top hexagons, odd rows
shifted half a cell to the right) so neighbouring hexagons share an edge.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.colors import Normalize
from matplotlib.patches import Patch, Rectangle, RegularPolygon, Wedge
from matplotlib.ticker import MaxNLocator

from ..core.grids import HEX_ROW_HEIGHT, Grid
from ._arrays import (
    _map_distance,
    as_map,
    class_distribution,
    class_markers,
    component_planes,
    expanded_umatrix,
    hit_map,
    prototype_mosaic,
    umatrix,
)

__all__ = [
    "plot_class_pies",
    "plot_components",
    "plot_expanded_umatrix",
    "plot_hits",
    "plot_markers",
    "plot_prototypes",
    "plot_training",
    "plot_umatrix",
]

HEX_RADIUS = 1.0 / math.sqrt(3.0)  # circumradius of a hexagon 1 wide across its flats
DPI = 120
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "p", "h", "<", ">")


# ---------------------------------------------------------------- helpers
def _axes(ax, figsize=None):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")


def _use_hex(grid: Grid, hexagonal) -> bool:
    return grid.topology == "hexagonal" if hexagonal is None else bool(hexagonal)


def node_xy(grid: Grid, hexagonal=None) -> np.ndarray:
    """Plot position ``(x, y)`` of every node, ``[n_nodes, 2]``: x = column, y = row coordinate.

    Hexagonal layout uses the hexagonal lattice coordinates; square layout the grid indices.
    """
    topology = "hexagonal" if _use_hex(grid, hexagonal) else "rectangular"
    rc = Grid(grid.rows, grid.cols, topology).coordinates().numpy()
    return rc[:, ::-1].copy()


def _figsize(grid: Grid, hexagonal, width=6.0) -> tuple[float, float]:
    h = (grid.rows - 1) * (HEX_ROW_HEIGHT if hexagonal else 1.0) + 1.2
    w = grid.cols + (0.5 if hexagonal and grid.rows > 1 else 0.0)
    return (width, max(2.0, min(12.0, width * h / w)))


def _frame(ax, grid: Grid, hexagonal: bool):
    """Limits (row 0 at the top), equal aspect, ticks at rows and columns."""
    rows, cols = grid.shape
    if hexagonal:
        right = cols - 0.5 + (0.5 if rows > 1 else 0.0)
        ax.set_xlim(-0.5, right)
        ax.set_ylim((rows - 1) * HEX_ROW_HEIGHT + HEX_RADIUS, -HEX_RADIUS)
    else:
        ax.set_xlim(-0.5, cols - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
    ax.set_aspect("equal")
    step_r = max(1, math.ceil(rows / 10))
    step_c = max(1, math.ceil(cols / 10))
    r = np.arange(0, rows, step_r)
    ax.set_yticks(r * (HEX_ROW_HEIGHT if hexagonal else 1.0), [str(v) for v in r])
    ax.set_xticks(np.arange(0, cols, step_c))
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def _cells(grid: Grid, hexagonal: bool, scale=None):
    """One hexagon (or unit square) patch per node, optionally scaled per node."""
    xy = node_xy(grid, hexagonal)
    s = np.ones(grid.n_nodes) if scale is None else np.asarray(scale, dtype=float).ravel()
    if hexagonal:
        return [
            RegularPolygon((x, y), numVertices=6, radius=HEX_RADIUS * k, orientation=0.0)
            for (x, y), k in zip(xy, s)
        ]
    return [Rectangle((x - k / 2, y - k / 2), k, k) for (x, y), k in zip(xy, s)]


def _draw_cells(ax, values, grid: Grid, hexagonal: bool, cmap, vmin=None, vmax=None):
    """Colour every node by ``values[r, c]``; returns the mappable (for a colorbar)."""
    values = np.asarray(values, dtype=float)
    if hexagonal:
        # thin grey seams: the hexagons tile exactly; the seams show the map's outline where a
        # cell has the background colour
        seam = min(0.4, 8 / max(grid.shape))
        coll = PatchCollection(_cells(grid, True), cmap=cmap, edgecolors="0.78", linewidths=seam)
        coll.set_array(values.ravel())
        coll.set_norm(Normalize(vmin, vmax))
        coll.autoscale_None()
        ax.add_collection(coll)
        mappable = coll
    else:
        mappable = ax.imshow(
            values,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
            extent=(-0.5, grid.cols - 0.5, grid.rows - 0.5, -0.5),
        )
    _frame(ax, grid, hexagonal)
    return mappable


def _outline(ax, grid: Grid, hexagonal: bool, face="0.94", edge="0.75"):
    """Light cells showing the map's shape under markers, pies or sized hits."""
    coll = PatchCollection(
        _cells(grid, hexagonal), facecolors=face, edgecolors=edge, linewidths=0.5
    )
    ax.add_collection(coll)
    _frame(ax, grid, hexagonal)
    return coll


def _colorbar(ax, mappable, label):
    cb = ax.figure.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label(label)
    return cb


def _class_names(classes, names):
    if names is None:
        return [str(c) for c in classes]
    names = list(names)
    if len(names) != len(classes):
        raise ValueError(f"names has {len(names)} entries for {len(classes)} classes")
    return [str(n) for n in names]


def _class_colors(n, colors):
    if colors is None:
        import matplotlib

        cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
        return [cmap(i % cmap.N) for i in range(n)]
    colors = list(colors)
    if len(colors) < n:
        raise ValueError(f"colors has {len(colors)} entries for {n} classes")
    return colors


def _legend_above(ax, handles, title=None):
    ncol = min(len(handles), 5)
    return ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.01),
        ncol=ncol,
        frameon=False,
        title=title,
        handletextpad=0.4,
        columnspacing=1.2,
    )


# ---------------------------------------------------------------- distance maps
def plot_umatrix(
    som,
    ax=None,
    path=None,
    hexagonal=None,
    cmap="bone_r",
    colorbar=True,
    grid=None,
    distance=None,
):
    """Draw the U-matrix (:func:`umatrix`): light = close prototypes, dark = cluster borders.

    Parameters
    ----------
    som : fitted SOM, or weights array with ``grid``
    hexagonal : bool or None
        Draw hexagons at the hexagonal lattice positions; None: when the map is hexagonal.
    distance : str or None
        Prototype distance; None: the SOM's own ``distance`` (Euclidean for an array).
    """
    W, grid = as_map(som, grid)
    distance = _map_distance(som, distance)
    hexagonal = _use_hex(grid, hexagonal)
    ax = _axes(ax, _figsize(grid, hexagonal))
    m = _draw_cells(ax, umatrix(W, grid, distance), grid, hexagonal, cmap)
    if colorbar:
        _colorbar(ax, m, "mean distance to neighbours")
    ax.set_title("U-matrix")
    _save(ax.figure, path)
    return ax


def plot_expanded_umatrix(
    som, ax=None, path=None, cmap="bone_r", colorbar=True, grid=None, distance=None
):
    """Draw :func:`expanded_umatrix`; node ``(r, c)`` is centred at its map position.

    Rectangular maps: square cells, node ``(r, c)`` at ``x = c, y = r``.  Hexagonal maps:
    hexagons of half the node spacing at the nodes and at the midpoints of the lattice edges.
    ``distance``: see :func:`plot_umatrix`.
    """
    W, grid = as_map(som, grid)
    distance = _map_distance(som, distance)
    E = expanded_umatrix(W, grid, distance)
    hexagonal = grid.topology == "hexagonal"
    ax = _axes(ax, _figsize(grid, hexagonal))
    if hexagonal:
        R, J = np.nonzero(np.isfinite(E))
        x = (J + 0.5 * (R % 2)) / 2
        y = R * HEX_ROW_HEIGHT / 2
        cells = [
            RegularPolygon((a, b), numVertices=6, radius=HEX_RADIUS / 2, orientation=0.0)
            for a, b in zip(x, y)
        ]
        m = PatchCollection(cells, cmap=cmap, edgecolors="face", linewidths=0.2)
        m.set_array(E[R, J])
        ax.add_collection(m)
        _frame(ax, grid, True)
    else:
        m = ax.imshow(
            E,
            cmap=cmap,
            interpolation="nearest",
            extent=(-0.25, grid.cols - 0.75, grid.rows - 0.75, -0.25),
        )
        _frame(ax, grid, False)
        ax.set_xlim(-0.25, grid.cols - 0.75)
        ax.set_ylim(grid.rows - 0.75, -0.25)
    if colorbar:
        _colorbar(ax, m, "distance between prototypes")
    ax.set_title("U-matrix with cells between nodes")
    _save(ax.figure, path)
    return ax


# ---------------------------------------------------------------- data on the map
def plot_hits(
    som,
    X,
    ax=None,
    path=None,
    hexagonal=None,
    style="cells",
    annotate=None,
    cmap="Blues",
    colorbar=True,
    grid=None,
):
    """Draw the hit map (:func:`hit_map`).

    Parameters
    ----------
    style : {"cells", "size"}
        "cells": each node coloured by its hit count; "size": a filled cell whose area is
        proportional to the hits, over the outline of the map.
    annotate : bool or None
        Write the count in every node; None: when the map has at most 400 nodes.
    """
    W, grid = as_map(som, grid)
    hexagonal = _use_hex(grid, hexagonal)
    H = hit_map(som if hasattr(som, "weights_") else W, X, grid)
    ax = _axes(ax, _figsize(grid, hexagonal))
    if style == "cells":
        m = _draw_cells(ax, H, grid, hexagonal, cmap, vmin=0)
        if colorbar:
            _colorbar(ax, m, "hits")
    elif style == "size":
        _outline(ax, grid, hexagonal)
        scale = np.sqrt(H / max(H.max(), 1))
        keep = H.ravel() > 0
        patches = [p for p, k in zip(_cells(grid, hexagonal, scale), keep) if k]
        ax.add_collection(PatchCollection(patches, facecolors="C0", edgecolors="none"))
    else:
        raise ValueError(f"style must be 'cells' or 'size', got {style!r}")
    if annotate is None:
        annotate = grid.n_nodes <= 400
    if annotate:
        xy = node_xy(grid, hexagonal)
        top = max(int(H.max()), 1)
        size = max(5, min(10, 120 / max(grid.shape)))
        for (x, y), h in zip(xy, H.ravel()):
            if h == 0:
                continue
            dark = style == "size" or h > 0.55 * top
            ax.text(
                x,
                y,
                str(int(h)),
                ha="center",
                va="center",
                fontsize=size,
                color="white" if dark else "black",
            )
    ax.set_title(f"Hits (n = {int(H.sum())})")
    _save(ax.figure, path)
    return ax


def plot_markers(
    som,
    X,
    y,
    markers=None,
    colors=None,
    ax=None,
    path=None,
    names=None,
    hexagonal=None,
    jitter=0.0,
    random_state=0,
    cmap="bone_r",
    colorbar=True,
    markersize=9,
    grid=None,
):
    """U-matrix with one hollow marker per sample at its best-matching unit, one style per class.

    As in the MiniSom examples: the distance map is the background, each sample is a marker
    (shape and colour by class) on the node that wins it.

    Parameters
    ----------
    markers, colors : sequences, optional
        One per class, in the order of ``np.unique(y)``.
    names : sequence, optional
        Legend text per class (default: the labels).
    jitter : float
        Spread markers uniformly by up to ``jitter`` (grid units) around the node centre, so
        that samples sharing a node stay visible; seeded by ``random_state``.
    """
    W, grid = as_map(som, grid)
    hexagonal = _use_hex(grid, hexagonal)
    pos, labels = class_markers(som if hasattr(som, "weights_") else W, X, y, grid)
    distance = _map_distance(som, None)
    classes = np.unique(labels)
    names = _class_names(classes, names)
    colors = _class_colors(len(classes), colors)
    markers = list(MARKERS if markers is None else markers)
    if len(markers) < len(classes):
        raise ValueError(f"markers has {len(markers)} entries for {len(classes)} classes")
    ax = _axes(ax, _figsize(grid, hexagonal))
    m = _draw_cells(ax, umatrix(W, grid, distance), grid, hexagonal, cmap)
    if colorbar:
        _colorbar(ax, m, "mean distance to neighbours")
    xy = node_xy(grid, hexagonal)[pos[:, 0] * grid.cols + pos[:, 1]]
    if jitter:
        rng = np.random.default_rng(random_state)
        xy = xy + rng.uniform(-jitter, jitter, size=xy.shape)
    handles = []
    for k, cls in enumerate(classes):
        sel = labels == cls
        (line,) = ax.plot(
            xy[sel, 0],
            xy[sel, 1],
            linestyle="none",
            marker=markers[k],
            markerfacecolor="none",
            markeredgecolor=colors[k],
            markeredgewidth=1.6,
            markersize=markersize,
            label=names[k],
        )
        handles.append(line)
    _legend_above(ax, handles)
    _save(ax.figure, path)
    return ax


def plot_class_pies(
    som,
    X,
    y,
    ax=None,
    path=None,
    colors=None,
    names=None,
    hexagonal=None,
    radius=0.45,
    grid=None,
):
    """A pie per node showing the class shares of its samples (:func:`class_distribution`).

    Nodes without samples stay empty; the pies sit on a light outline of the map.
    """
    W, grid = as_map(som, grid)
    hexagonal = _use_hex(grid, hexagonal)
    y = np.asarray(y)
    classes = np.unique(y)
    P = class_distribution(som if hasattr(som, "weights_") else W, X, y, classes, grid)
    names = _class_names(classes, names)
    colors = _class_colors(len(classes), colors)
    ax = _axes(ax, _figsize(grid, hexagonal))
    _outline(ax, grid, hexagonal)
    wedges, faces = [], []
    for (x, yy), p in zip(node_xy(grid, hexagonal), P.reshape(grid.n_nodes, -1)):
        # angles in data coordinates; with the y axis pointing down, -90 is the top
        start = -90.0
        for k in np.flatnonzero(p > 0):
            stop = start + 360.0 * p[k]
            wedges.append(Wedge((x, yy), radius, start, stop))
            faces.append(colors[k])
            start = stop
    ax.add_collection(PatchCollection(wedges, facecolors=faces, edgecolors="white", linewidths=0.3))
    handles = [Patch(facecolor=c, label=n) for c, n in zip(colors, names)]
    _legend_above(ax, handles)
    _save(ax.figure, path)
    return ax


# ---------------------------------------------------------------- prototypes
def plot_components(
    som,
    features=None,
    names=None,
    ncols=4,
    path=None,
    hexagonal=None,
    cmap="coolwarm",
    colorbar=True,
    grid=None,
):
    """One map per feature coloured by the prototypes' value (:func:`component_planes`).

    Parameters
    ----------
    features : sequence of int or str, optional
        Features to show (default all); strings are looked up in ``names``.
    names : sequence of str, optional
        Name of every feature (default: the SOM's ``feature_names_in_`` or "feature i").

    Returns
    -------
    ndarray of Axes, shape (nrows, ncols)
        Axes beyond the shown features are hidden.
    """
    import matplotlib.pyplot as plt

    W, grid = as_map(som, grid)
    planes = component_planes(W, grid)
    m = planes.shape[0]
    if names is None:
        names = getattr(som, "feature_names_in_", None)
    names = [f"feature {f}" for f in range(m)] if names is None else [str(n) for n in names]
    if len(names) != m:
        raise ValueError(f"names has {len(names)} entries for n_features={m}")
    if features is None:
        features = list(range(m))
    idx = []
    for f in features:
        if isinstance(f, str):
            if f not in names:
                raise ValueError(f"unknown feature {f!r}; names are {names}")
            idx.append(names.index(f))
        elif 0 <= int(f) < m:
            idx.append(int(f))
        else:
            raise ValueError(f"feature index {f} out of range for n_features={m}")
    if not idx:
        raise ValueError("features is empty")
    hexagonal = _use_hex(grid, hexagonal)
    ncols = max(1, min(int(ncols), len(idx)))
    nrows = math.ceil(len(idx) / ncols)
    w, h = _figsize(grid, hexagonal, width=3.4)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, layout="constrained"
    )
    for a, f in zip(axes.flat, idx):
        mappable = _draw_cells(a, planes[f], grid, hexagonal, cmap)
        a.set_title(names[f])
        a.set(xlabel="", ylabel="", xticks=[], yticks=[])
        if colorbar:
            fig.colorbar(mappable, ax=a, shrink=0.9, pad=0.02)
    for a in axes.flat[len(idx) :]:
        a.set_visible(False)
    _save(fig, path)
    return axes


def plot_prototypes(som, image_shape=(28, 28), ax=None, path=None, cmap="gray", pad=1, grid=None):
    """Show every prototype as an image, tiled like the map (:func:`prototype_mosaic`).

    Grey-level images use ``cmap`` with one colour scale for all prototypes; ``image_shape``
    ``(h, w, 3)`` shows RGB prototypes (values in [0, 1] or 0..255).
    """
    W, grid = as_map(som, grid)
    mosaic = prototype_mosaic(W, image_shape, pad=pad, grid=grid)
    h, w = int(image_shape[0]), int(image_shape[1])
    fig_w = 7.0
    fig_h = fig_w * mosaic.shape[0] / mosaic.shape[1]
    ax = _axes(ax, (fig_w, max(2.0, min(14.0, fig_h))))
    if mosaic.ndim == 3:
        finite = mosaic[np.isfinite(mosaic)]
        if finite.size and finite.max() > 1.0:
            mosaic = mosaic / 255.0
        mosaic = np.clip(np.nan_to_num(mosaic, nan=1.0), 0.0, 1.0)
        ax.imshow(mosaic, interpolation="nearest")
    else:
        ax.set_facecolor("white")
        ax.imshow(mosaic, cmap=cmap, interpolation="nearest")
    step = max(1, math.ceil(grid.cols / 10))
    ax.set_xticks(np.arange(0, grid.cols, step) * (w + pad) + (w - 1) / 2)
    ax.set_xticklabels([str(c) for c in range(0, grid.cols, step)])
    step = max(1, math.ceil(grid.rows / 10))
    ax.set_yticks(np.arange(0, grid.rows, step) * (h + pad) + (h - 1) / 2)
    ax.set_yticklabels([str(r) for r in range(0, grid.rows, step)])
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title("Prototypes")
    _save(ax.figure, path)
    return ax


# ---------------------------------------------------------------- training
def plot_training(som, ax=None, path=None):
    """Quantization error (left axis) and topographic error (right axis) per epoch."""
    hist = getattr(som, "history_", None)
    if not isinstance(hist, dict) or not hist.get("quantization_error"):
        raise ValueError(
            "fit the SOM before plotting: plot_training needs a fitted SOM with history_"
        )
    qe = np.asarray(hist["quantization_error"], dtype=float)
    te = np.asarray(hist.get("topographic_error", []), dtype=float)
    ax = _axes(ax, (6.0, 3.6))
    (l1,) = ax.plot(np.arange(1, len(qe) + 1), qe, "o-", color="C0", ms=3, label="QE")
    ax.set_xlabel("epoch")
    ax.set_ylabel("quantization error", color="C0")
    ax.tick_params(axis="y", colors="C0")
    handles, top = [l1], ax
    if te.size:
        ax2 = ax.twinx()
        (l2,) = ax2.plot(np.arange(1, len(te) + 1), te, "s--", color="C1", ms=3, label="TE")
        ax2.set_ylabel("topographic error", color="C1")
        ax2.tick_params(axis="y", colors="C1")
        ax2.set_ylim(bottom=0)
        handles.append(l2)
        top = ax2
    top.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.set_title("Training", loc="left")
    _save(ax.figure, path)
    return ax
