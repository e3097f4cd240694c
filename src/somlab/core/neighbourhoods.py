"""Neighbourhood functions h(d; sigma) on grid displacements.

Each takes ``disp`` of shape ``[..., 2]`` (row and column displacement from the winner, see
:mod:`somlab.core.grids`) and a positive ``sigma`` and returns ``[...]``.  Formulas follow
MiniSom 2.3 so that :class:`somlab.compat.MiniSom` can use them unchanged:

* gaussian:      exp(-(dr^2 + dc^2) / (2 sigma^2))
* mexican_hat:   exp(-p / (2 sigma^2)) * (1 - p / sigma^2),  p = dr^2 + dc^2
* bubble:        1 if |dr| < sigma and |dc| < sigma else 0   (a box, per axis)
* triangle:      max(sigma - |dr|, 0) * max(sigma - |dc|, 0)  (per axis)
"""

from __future__ import annotations

import torch


def gaussian(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    d = 2.0 * sigma * sigma
    return torch.exp(-(disp * disp).sum(-1) / d)


def mexican_hat(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    p = (disp * disp).sum(-1)
    d = 2.0 * sigma * sigma
    return torch.exp(-p / d) * (1.0 - 2.0 / d * p)


def bubble(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    inside = (disp.abs() < sigma).all(-1)
    return inside.to(disp.dtype)


def triangle(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    t = (sigma - disp.abs()).clamp_min(0.0)
    return t[..., 0] * t[..., 1]


NEIGHBOURHOODS = {
    "gaussian": gaussian,
    "mexican_hat": mexican_hat,
    "bubble": bubble,
    "triangle": triangle,
}


def get_neighbourhood(name: str):
    """The neighbourhood function called ``name`` (see :data:`NEIGHBOURHOODS`)."""
    try:
        return NEIGHBOURHOODS[name]
    except KeyError:
        raise ValueError(
            f"neighbourhood must be one of {sorted(NEIGHBOURHOODS)}, got {name!r}"
        ) from None
