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
    return gaussian_of_sq(_sq_norm(disp), sigma)


def gaussian_of_sq(p: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`gaussian` of squared grid distances ``p [...]`` (``p`` is left as it is)."""
    d = 2.0 * sigma * sigma
    # exp(-p / d): -(p) / d == p / (-d) exactly; sigma may be a tensor of per-map values
    return (p / -d).exp_()


def mexican_hat(disp: torch.Tensor, sigma: float) -> torch.Tensor:
    return mexican_hat_of_sq(_sq_norm(disp), sigma)


def mexican_hat_of_sq(p: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`mexican_hat` of squared grid distances ``p [...]`` (``p`` is left as it is)."""
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
        inside = (disp * disp).sum(-1) <= self._limit(sigma)
        return h * inside.to(h.dtype)

    def _limit(self, sigma):
        return (self.ratio * sigma) ** 2 * (1.0 + 1e-9)

    def of_sq(self, p: torch.Tensor, sigma) -> torch.Tensor:
        """The cut neighbourhood of squared grid distances ``p`` (``fn`` radial, see
        :func:`of_squared`): ``p`` is the ``(disp * disp).sum(-1)`` the cut compares, the same
        bits on every grid (its 2 or 3 terms are summed with one rounding each, or exactly)."""
        h = of_squared(self.fn)(p, sigma)
        return h * (p <= self._limit(sigma)).to(h.dtype)


#: The neighbourhoods that depend on the displacement only through the squared grid distance
#: ``p = dr^2 + dc^2 (+ dl^2)``, as functions of ``p`` (the same bits as of the displacement).
_OF_SQUARED = {gaussian: gaussian_of_sq, mexican_hat: mexican_hat_of_sq}


def of_squared(fn):
    """``fn`` as a function ``h(p, sigma)`` of squared grid distances ``p``, equal bit for bit
    to ``fn(disp, sigma)`` with ``p`` from :func:`_sq_norm` of ``disp``, when ``fn`` is radial
    (gaussian, mexican hat, either cut by :class:`CutOff`); None for the others (bubble and
    triangle are boxes per axis, winner compares displacements with 0)."""
    if isinstance(fn, CutOff):
        return fn.of_sq if of_squared(fn.fn) is not None else None
    try:
        return _OF_SQUARED.get(fn)
    except TypeError:  # an unhashable callable
        return None


def get_neighbourhood(name: str):
    """The neighbourhood function called ``name`` (see :data:`NEIGHBOURHOODS`)."""
    try:
        return NEIGHBOURHOODS[name]
    except KeyError:
        raise ValueError(
            f"neighbourhood must be one of {sorted(NEIGHBOURHOODS)}, got {name!r}"
        ) from None
