"""Map grids: node coordinates, grid distances and adjacency.

Nodes of an ``rows x cols`` map are numbered row-major: node ``k`` sits at row ``k // cols``,
column ``k % cols``.  Coordinates are Euclidean positions on the plane, as ``[n_nodes, 2]``
tensors holding ``(row_coord, col_coord)``:

* rectangular: ``(r, c)``;
* hexagonal ("odd-r" offset, pointy-top hexagons): ``(r * sqrt(3)/2, c + 0.5 * (r % 2))`` so that
  each of the six neighbours of a node is at distance exactly 1.

A rectangular grid may have a third axis, ``rows x cols x layers`` (``Grid(r, c,
layers=l)``, ``grid_shape=(r, c, l)``): node ``k`` sits at ``(k // (c l), (k // l) % c,
k % l)``, row-major as numpy's ``unravel_index``, with ``[n_nodes, 3]`` coordinates
``(r, c, l)``.  Hexagonal grids are 2-D only.  A 1-D chain of ``n`` nodes is the 2-D ``n x 1``
grid.

A toroidal grid wraps every axis; distances use the minimum-image convention, which is exact
because the periodic cell is rectangular (``rows`` by ``cols`` (by ``layers``) for rectangular
grids, ``rows*sqrt(3)/2`` by ``cols`` for hexagonal grids, which therefore need an even number
of rows).

Nothing here builds an ``n_nodes x n_nodes`` matrix unless asked for a block of rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

import torch

TOPOLOGIES = ("rectangular", "hexagonal")
HEX_ROW_HEIGHT = math.sqrt(3.0) / 2.0


@dataclass(frozen=True)
class Grid:
    """A 2-D map lattice, or a 3-D rectangular one.

    Parameters
    ----------
    rows, cols : int
        Map shape.
    topology : {"rectangular", "hexagonal"}
    toroidal : bool
        Wrap every axis (a hexagonal torus needs an even number of rows).
    layers : int, optional
        A third axis (rectangular grids only): the grid is ``rows x cols x layers``.  None (the
        default) is a 2-D grid.
    """

    rows: int
    cols: int
    topology: str = "rectangular"
    toroidal: bool = False
    layers: int | None = None

    def __post_init__(self):
        dims = self.shape
        if min(dims) < 1:
            raise ValueError(f"grid shape must be positive, got {'x'.join(map(str, dims))}")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, got {self.topology!r}")
        if self.layers is not None and self.topology != "rectangular":
            raise ValueError(
                f"a {self.topology} grid is 2-D: the 3-dimensional grid {dims} needs "
                "topology='rectangular'"
            )
        if self.topology == "hexagonal" and self.toroidal and self.rows % 2:
            raise ValueError(
                f"a toroidal hexagonal grid needs an even number of rows, got {self.rows}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """``(rows, cols)``, or ``(rows, cols, layers)`` for a 3-D grid."""
        if self.layers is None:
            return (int(self.rows), int(self.cols))
        return (int(self.rows), int(self.cols), int(self.layers))

    @property
    def ndim(self) -> int:
        """Number of grid axes: 2, or 3 for a 3-D grid."""
        return 2 if self.layers is None else 3

    @property
    def n_nodes(self) -> int:
        return math.prod(self.shape)

    def unravel(self, nodes) -> torch.Tensor:
        """Integer grid index ``[..., ndim]`` (int64) of node numbers ``nodes`` (row-major)."""
        k = torch.as_tensor(nodes, dtype=torch.long)
        out = []
        for size in reversed(self.shape):
            out.append(k % size)
            k = k // size
        return torch.stack(out[::-1], dim=-1)

    def indices(self, device=None) -> torch.Tensor:
        """Integer grid index of every node, ``[n_nodes, ndim]`` (int64)."""
        return self.unravel(torch.arange(self.n_nodes, device=device))

    def coordinates(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Euclidean position of every node, ``[n_nodes, ndim]``."""
        rc = self.indices(device).to(dtype)
        if self.topology == "hexagonal":
            r, c = rc[:, 0], rc[:, 1]
            return torch.stack([r * HEX_ROW_HEIGHT, c + 0.5 * (r % 2)], dim=1)
        return rc

    def periods(self) -> tuple[float, ...] | None:
        """Periodic cell of a toroidal grid (one length per axis), or None."""
        if not self.toroidal:
            return None
        height = self.rows * (HEX_ROW_HEIGHT if self.topology == "hexagonal" else 1.0)
        return (float(height),) + tuple(float(v) for v in self.shape[1:])

    def displacements(self, coords: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Wrapped displacements ``coords[None] - centres[:, None]``, ``[k, n_nodes, ndim]``."""
        return displacements(coords, centres, self.periods())

    def neighbours_within(self, radius: float = 1.0 + 1e-6) -> torch.Tensor:
        """Sparse adjacency as an ``[n_edges, 2]`` index list (i < j) of nodes within ``radius``.

        Built row block by row block, so memory is O(n_nodes * block).
        """
        coords = self.coordinates()
        out = []
        block = max(1, 4_000_000 // max(1, self.n_nodes))
        for start in range(0, self.n_nodes, block):
            stop = min(self.n_nodes, start + block)
            d = self.displacements(coords, coords[start:stop]).norm(dim=-1)
            i, j = torch.nonzero(d <= radius, as_tuple=True)
            i = i + start
            keep = i < j
            out.append(torch.stack([i[keep], j[keep]], dim=1))
        return torch.cat(out) if out else torch.empty(0, 2, dtype=torch.long)

    def adjacency_radius(self) -> float:
        """Grid distance up to which two nodes count as adjacent (SPEC.md §8, TE).

        Rectangular: the nodes one step away along any axis or diagonal (Chebyshev distance
        1): the 8-neighbourhood in 2-D (sqrt(2); MiniSom's 1.42 threshold) and the
        26-neighbourhood in 3-D (sqrt(3) = 1.732...; 1.74).  Hexagonal: the six lattice
        neighbours at distance 1.
        """
        if self.topology != "rectangular":
            return 1.0 + 1e-6
        return 1.42 if self.ndim == 2 else 1.74

    def axes_by_length(self) -> list[int]:
        """Grid axes from the one with most nodes to the one with fewest (ties in axis order):
        the axes along which a PCA initialisation lays the leading principal components."""
        return sorted(range(self.ndim), key=lambda a: -self.shape[a])


def displacements(
    coords: torch.Tensor, centres: torch.Tensor, periods: tuple[float, ...] | None = None
) -> torch.Tensor:
    """Grid displacement of every node from each centre, ``[k, n, d]``.

    ``coords`` is ``[n, d]``, ``centres`` is ``[k, d]`` (d = 2, or 3 on a 3-D grid); with
    ``periods`` each axis is wrapped to the nearest periodic image.
    """
    d = coords.unsqueeze(0) - centres.unsqueeze(1)
    if periods is not None:
        p = torch.tensor(periods, dtype=d.dtype, device=d.device)
        d = d - p * torch.round(d / p)
    return d


def grid_distance(
    coords: torch.Tensor, a: torch.Tensor, b: torch.Tensor, periods=None
) -> torch.Tensor:
    """Elementwise grid distance between node indices ``a`` and ``b`` (same shape)."""
    d = coords[a] - coords[b]
    if periods is not None:
        p = torch.tensor(periods, dtype=d.dtype, device=d.device)
        d = d - p * torch.round(d / p)
    return d.norm(dim=-1)


def parse_grid_shape(spec) -> tuple[int, ...]:
    """Parse ``"20x20"``, ``(20, 20)``, ``20``, ``(n,)``, ``(4, 5, 6)`` or ``"4x5x6"`` into 2 or
    3 positive integers, ``(rows, cols)`` or ``(rows, cols, layers)``: ``(2.5, 3)`` or
    ``(True, 3)`` is a ValueError, not a 2x3 or 1x3 map.

    A 1-D chain of ``n`` nodes is ``(n,)`` (or ``"n"``...), held as an ``n x 1`` grid: a 1-D map
    is a 2-D map with one column, so every estimator, metric and plot takes it unchanged.
    """
    if isinstance(spec, str):
        parts = spec.lower().replace("*", "x").split("x")
        try:
            vals = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"grid must look like 20x20 or 4x5x6, got {spec!r}") from None
    else:
        try:
            vals = tuple(spec)
        except TypeError:
            vals = (spec, spec)
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in vals):
            vals = ()
    if len(vals) == 1 and not isinstance(spec, str):
        vals = (vals[0], 1)  # a chain
    if len(vals) not in (2, 3) or min(vals) < 1:
        raise ValueError(
            f"grid_shape must be 2 or 3 positive integers like (20, 20), '20x20' or (4, 5, 6) "
            f"(a 1-D chain: (n,) or (n, 1)), got {spec!r}"
        )
    return tuple(int(v) for v in vals)


def make_grid(spec, topology: str = "rectangular", toroidal: bool = False) -> Grid:
    """The :class:`Grid` of an estimator's ``grid_shape`` (:func:`parse_grid_shape`),
    ``topology`` and ``toroidal``: chains and 2-D grids of either topology, 3-D grids for the
    rectangular one (a 3-D hexagonal grid is a ValueError that says so)."""
    dims = parse_grid_shape(spec)
    if len(dims) == 3 and topology != "rectangular":
        raise ValueError(
            f"grid_shape {dims} has 3 dimensions, which only topology='rectangular' supports "
            f"(a {topology} grid is 2-D)"
        )
    return Grid(dims[0], dims[1], topology, bool(toroidal), dims[2] if len(dims) == 3 else None)


def parse_grid(spec) -> tuple[int, int]:
    """Parse ``"20x20"``, ``(20, 20)`` or ``20`` into ``(rows, cols)``, for the estimators whose
    maps are 2-D (see :func:`parse_grid_shape`).  A grid of 3 dimensions is a ValueError here;
    :class:`somlab.SOM` takes one (:func:`make_grid`).
    """
    try:
        dims = parse_grid_shape(spec)
    except ValueError:
        dims = ()
    if len(dims) != 2:
        raise ValueError(
            f"grid_shape must be two positive integers (rows, cols) like (20, 20) or '20x20' "
            f"(a 1-D chain: (n,) or (n, 1); grids of 3 dimensions are for SOM with "
            f"topology='rectangular'), got {spec!r}"
        )
    return dims
