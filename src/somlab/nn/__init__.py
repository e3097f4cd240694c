"""Differentiable SOM layers for deep clustering (SPEC.md §6)."""

from .somrl import SOMRL

__all__ = ["SOMRL"]
