"""The map drawn in data space: prototypes as points joined by their grid edges, over the data.

For 2-D and 3-D data (or two / three chosen features), as in the NeuPy SOM article's figures:
how the elastic net of prototypes spreads over the samples, and where it folds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection

from ..core.grids import Grid
from ._arrays import _check_X, as_map
from ._draw import _save

__all__ = ["grid_edges", "plot_data_space"]


def grid_edges(grid: Grid) -> np.ndarray:
    """Pairs of nodes joined in a data-space drawing, ``[n_edges, 2]`` (i < j): the lattice
    edges of length 1 (4 per node inside a rectangular map, 6 inside a hexagonal one), without
    a toroidal map's wrap-around edges, which would cross the whole drawing (6 per node inside
    a 3-D grid)."""
    plain = Grid(grid.rows, grid.cols, grid.topology, layers=grid.layers)
    return plain.neighbours_within(1.0 + 1e-6).numpy()


def plot_data_space(
    som,
    X=None,
    y=None,
    features=None,
    ax=None,
    path=None,
    grid=None,
    node_color="k",
    edge_color="0.25",
    sample_size=8.0,
    cmap="tab10",
):
    """Draw the prototypes in data space with their grid edges, over the samples ``X``.

    Parameters
    ----------
    som : fitted SOM, or weights array with ``grid``
    X : array-like of shape (n_samples, n_features), optional
        Samples drawn as small points (coloured by ``y`` when given).
    features : sequence of 2 or 3 ints, optional
        Features to draw; default all of them, which needs 2 or 3 features.  Three features
        give a 3-D plot (``ax`` must then be a 3-D Axes, or None).

    Returns
    -------
    Axes (Axes3D for three features)
    """
    W, grid = as_map(som, grid, spatial=True)
    m = W.shape[-1]
    if features is None:
        if m not in (2, 3):
            raise ValueError(
                f"the map has {m} features: pass features=(i, j) or (i, j, k) to choose the "
                "2 or 3 drawn in data space"
            )
        features = list(range(m))
    features = [int(f) for f in features]
    if len(features) not in (2, 3) or not all(0 <= f < m for f in features):
        raise ValueError(f"features must be 2 or 3 feature indices below {m}, got {features}")
    P = W.reshape(grid.n_nodes, m)[:, features]
    three = len(features) == 3
    if ax is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(6, 5.5))
        ax = fig.add_subplot(projection="3d" if three else None)
    elif three and getattr(ax, "name", "") != "3d":
        raise ValueError("three features need a 3-D Axes (projection='3d') or ax=None")
    if X is not None:
        Xs = _check_X(X, m)[:, features].astype(float)
        c = None if y is None else np.unique(np.asarray(y), return_inverse=True)[1]
        if c is not None and len(c) != len(Xs):
            raise ValueError(f"y has {len(c)} labels for {len(Xs)} samples")
        ax.scatter(
            *Xs.T,
            s=sample_size,
            c=c,
            cmap=cmap if c is not None else None,
            color=None if c is not None else "C0",
            alpha=0.5,
            linewidths=0,
        )
    e = grid_edges(grid)
    segments = np.stack([P[e[:, 0]], P[e[:, 1]]], axis=1)
    if three:
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        ax.add_collection3d(Line3DCollection(segments, colors=edge_color, linewidths=0.8))
    else:
        ax.add_collection(LineCollection(segments, colors=edge_color, linewidths=0.8))
    ax.scatter(*P.T, s=14, color=node_color, zorder=3)
    names = [f"feature {f}" for f in features]
    fn = getattr(som, "feature_names_in_", None)
    if fn is not None:
        names = [str(fn[f]) for f in features]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if three:
        ax.set_zlabel(names[2])
    else:
        ax.set_aspect("equal", adjustable="datalim")
        ax.autoscale_view()
    ax.set_title(f"{'x'.join(map(str, grid.shape))} map in data space")
    _save(ax.figure, path)
    return ax
