"""Compatibility layers: drop-in replacements for other SOM libraries' APIs.

:class:`MiniSom` reproduces MiniSom 2.3.x's public API and numbers on somlab's kernels::

    from somlab.compat import MiniSom
"""

from .minisom import (
    MiniSom,
    asymptotic_decay,
    bubble,
    fast_norm,
    gaussian,
    inverse_decay_to_one,
    inverse_decay_to_zero,
    linear_decay_to_one,
    linear_decay_to_zero,
    mexican_hat,
    triangle,
)

__all__ = [
    "MiniSom",
    "asymptotic_decay",
    "bubble",
    "fast_norm",
    "gaussian",
    "inverse_decay_to_one",
    "inverse_decay_to_zero",
    "linear_decay_to_one",
    "linear_decay_to_zero",
    "mexican_hat",
    "triangle",
]
