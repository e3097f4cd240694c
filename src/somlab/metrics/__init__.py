"""Metrics of SPEC.md §8: clustering error (CE), accuracy, purity, NMI, ARI, QE and TE."""

from ._clustering import (
    accuracy,
    ari,
    clustering_error,
    clustering_report,
    contingency,
    nmi,
    purity,
    subspace_clustering_error,
)
from ._som import quantization_error, topographic_error

__all__ = [
    "accuracy",
    "ari",
    "clustering_error",
    "clustering_report",
    "contingency",
    "nmi",
    "purity",
    "quantization_error",
    "subspace_clustering_error",
    "topographic_error",
]
