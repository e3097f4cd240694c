"""Shared kernels of every somlab model: grids, distances, neighbourhoods, schedules, updates.

Kernels are pure functions on tensors (shapes in their docstrings); models hold state and call
them.  See SPEC.md §1 for the relevance kernels K1-K7.
"""

from .distances import (
    METRICS,
    best_matching_units,
    pairwise_distances,
    relevance_activation,
    weighted_sq_distances,
)
from .grids import Grid, displacements, grid_distance, parse_grid
from .neighbourhoods import NEIGHBOURHOODS, get_neighbourhood
from .schedules import SCHEDULES, decay
from .updates import accumulate, grouped_mean, grouped_sum, neighbourhood_rows

__all__ = [
    "METRICS",
    "NEIGHBOURHOODS",
    "SCHEDULES",
    "Grid",
    "accumulate",
    "best_matching_units",
    "decay",
    "displacements",
    "get_neighbourhood",
    "grid_distance",
    "grouped_mean",
    "grouped_sum",
    "neighbourhood_rows",
    "pairwise_distances",
    "parse_grid",
    "relevance_activation",
    "weighted_sq_distances",
]
