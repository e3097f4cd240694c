"""Map grids: node coordinates, grid distances and adjacency.

Nodes of an ``rows x cols`` map are numbered row-major: node ``k`` sits at row ``k // cols``,
column ``k % cols``.  Coordinates are Euclidean positions on the plane, as ``[n_nodes, 2]``
tensors holding ``(row_coord, col_coord)``:

* rectangular: ``(r, c)``;
* hexagonal ("odd-r" offset, pointy-top hexagons): ``(r * sqrt(3)/2, c + 0.5 * (r % 2))`` so that
  each of the six neighbours of a node is at distance exactly 1.

A toroidal grid wraps both axes; distances use the minimum-image convention, which is exact
because the periodic cell is rectangular (``rows`` by ``cols`` for rectangular grids,
``rows*sqrt(3)/2`` by ``cols`` for hexagonal grids, which therefore need an even number of rows).

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
    """A 2-D map lattice.

    Parameters
    ----------
    rows, cols : int
        Map shape.
    topology : {"rectangular", "hexagonal"}
    toroidal : bool
        Wrap both axes (a hexagonal torus needs an even number of rows).
    """

    rows: int
    cols: int
    topology: str = "rectangular"
    toroidal: bool = False

    def __post_init__(self):
        if int(self.rows) < 1 or int(self.cols) < 1:
            raise ValueError(f"grid shape must be positive, got {self.rows}x{self.cols}")
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, got {self.topology!r}")
        if self.topology == "hexagonal" and self.toroidal and self.rows % 2:
            raise ValueError(
                f"a toroidal hexagonal grid needs an even number of rows, got {self.rows}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rows), int(self.cols))

    @property
    def n_nodes(self) -> int:
        return int(self.rows) * int(self.cols)

    def indices(self, device=None) -> torch.Tensor:
        """Integer ``(row, col)`` of every node, ``[n_nodes, 2]`` (int64)."""
        k = torch.arange(self.n_nodes, device=device)
        return torch.stack([k // self.cols, k % self.cols], dim=1)

    def coordinates(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Euclidean ``(row_coord, col_coord)`` of every node, ``[n_nodes, 2]``."""
        rc = self.indices(device).to(dtype)
        if self.topology == "hexagonal":
            r, c = rc[:, 0], rc[:, 1]
            return torch.stack([r * HEX_ROW_HEIGHT, c + 0.5 * (r % 2)], dim=1)
        return rc

    def periods(self) -> tuple[float, float] | None:
        """Periodic cell of a toroidal grid, or None."""
        if not self.toroidal:
            return None
        height = self.rows * (HEX_ROW_HEIGHT if self.topology == "hexagonal" else 1.0)
        return (float(height), float(self.cols))

    def displacements(self, coords: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Wrapped displacements ``coords[None] - centres[:, None]``, ``[k, n_nodes, 2]``."""
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

        Rectangular: the 8-neighbourhood (sqrt(2), MiniSom's 1.42 threshold); hexagonal: the
        six lattice neighbours at distance 1.
        """
        return 1.42 if self.topology == "rectangular" else 1.0 + 1e-6


def displacements(
    coords: torch.Tensor, centres: torch.Tensor, periods: tuple[float, float] | None = None
) -> torch.Tensor:
    """Grid displacement of every node from each centre, ``[k, n, 2]``.

    ``coords`` is ``[n, 2]``, ``centres`` is ``[k, 2]``; with ``periods`` each axis is wrapped to
    the nearest periodic image.
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


def parse_grid(spec) -> tuple[int, int]:
    """Parse ``"20x20"``, ``(20, 20)`` or ``20`` into ``(rows, cols)``: two positive integers,
    so ``(2.5, 3)`` or ``(True, 3)`` is a ValueError, not a 2x3 or 1x3 map.

    A 1-D chain of ``n`` nodes is ``(n,)`` (or ``"n"``...), held as an ``n x 1`` grid: a 1-D map
    is a 2-D map with one column, so every estimator, metric and plot takes it unchanged.
    Grids of three dimensions are refused (nodes carry 2-D coordinates throughout).
    """
    if isinstance(spec, str):
        parts = spec.lower().replace("*", "x").split("x")
        try:
            vals = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"grid must look like 20x20, got {spec!r}") from None
    else:
        try:
            vals = tuple(spec)
        except TypeError:
            vals = (spec, spec)
        if not all(isinstance(v, Integral) and not isinstance(v, bool) for v in vals):
            vals = ()
    if len(vals) == 1 and not isinstance(spec, str):
        vals = (vals[0], 1)  # a chain
    if len(vals) != 2 or min(vals) < 1:
        raise ValueError(
            f"grid_shape must be two positive integers (rows, cols) like (20, 20) or '20x20' "
            f"(a 1-D chain: (n,) or (n, 1); grids of 3 dimensions are not supported), "
            f"got {spec!r}"
        )
    return int(vals[0]), int(vals[1])
