"""Neighbourhood functions h(d; sigma) on grid displacements.

Each takes ``disp`` of shape ``[..., 2]`` (row and column displacement from the winner, see
:mod:`somlab.core.grids`) and a positive ``sigma`` and returns ``[...]``.  Formulas follow
MiniSom 2.3 so that :class:`somlab.compat.MiniSom` can use them unchanged:

* gaussian:      exp(-(dr^2 + dc^2) / (2 sigma^2))
* mexican_hat:   exp(-p / (2 sigma^2)) * (1 - p / sigma^2),  p = dr^2 + dc^2
* bubble:        1 if |dr| < sigma and |dc| < sigma else 0   (a box, per axis)
* triangle:      max(sigma - |dr|, 0) * max(sigma - |dc|, 0)  (per axis)
* winner:        1 at the winner, 0 elsewhere: no neighbour moves (sigma is ignored; winner-only
  or "hard" competitive learning, k-means in batch mode)

:class:`CutOff` multiplies any of them by a radius cut-off, ``[|d| <= ratio * sigma]``: with
the gaussian it is NeuPy's ``learning_radius`` (nodes beyond it are not updated) times a
gaussian fall-off of width ``std``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _sq_norm(disp: torch.Tensor) -> torch.Tensor:
    """``(disp * disp).sum(-1)``, bit for bit, by elementwise adds over the 2 or 3 axes (a
    reduction over an axis of length 2 is 2-3x slower; this is most of a batch epoch's time
    on maps of ~1,000+ nodes)."""
    p = disp[..., 0] * disp[..., 0]
    for axis in range(1, disp.shape[-1]):
        p.add_(disp[..., axis] * disp[..., axis])
    return p


def gaussian(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    d = 2.0 * sigma * sigma
    # exp(-p / d): -(p) / d == p / (-d) exactly; sigma may be a tensor of per-map values
    return (_sq_norm(disp) / -d).exp_()


def mexican_hat(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    p = _sq_norm(disp)
    d = 2.0 * sigma * sigma
    return torch.exp(-p / d) * (1.0 - 2.0 / d * p)


def bubble(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    inside = (disp.abs() < sigma).all(-1)
    return inside.to(disp.dtype)


def triangle(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    t = (sigma - disp.abs()).clamp_min(0.0)
    out = t[..., 0] * t[..., 1]
    for axis in range(2, t.shape[-1]):  # the third axis of a 3-D grid
        out = out * t[..., axis]
    return out


def winner(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    return (disp == 0).all(-1).to(disp.dtype)


NEIGHBOURHOODS = {
    "gaussian": gaussian,
    "mexican_hat": mexican_hat,
    "bubble": bubble,
    "triangle": triangle,
    "winner": winner,
}


@dataclass(frozen=True)
class CutOff:
    """``fn(disp, sigma) * [|disp| <= ratio * sigma]``: a neighbourhood cut at a radius that
    shrinks with sigma (``ratio`` = cut-off radius / sigma at the start of training).

    Grid distances are compared with a relative tolerance of 1e-9, so that a node at exactly
    the radius (a lattice neighbour at distance 1, up to rounding) is inside.
    """

    fn: object
    ratio: float

    def __call__(self, disp: torch.Tensor, sigma) -> torch.Tensor:
        h = self.fn(disp, sigma)
        limit = (self.ratio * sigma) ** 2 * (1.0 + 1e-9)
        inside = (disp * disp).sum(-1) <= limit
        return h * inside.to(h.dtype)


def get_neighbourhood(name: str):
    """The neighbourhood function called ``name`` (see :data:`NEIGHBOURHOODS`)."""
    try:
        return NEIGHBOURHOODS[name]
    except KeyError:
        raise ValueError(
            f"neighbourhood must be one of {sorted(NEIGHBOURHOODS)}, got {name!r}"
        ) from None
