"""Differentiable SOM layers for deep clustering (SPEC.md §6) and the autoencoder of §7."""

from .autoencoder import DenseAutoencoder
from .somrl import SOMRL

__all__ = ["SOMRL", "DenseAutoencoder"]
