"""Metrics of SPEC.md §8: clustering error (CE), accuracy, purity, NMI, ARI, QE and TE; and a
model-selection scorer for SOMs weighing QE against TE (:func:`make_som_scorer`)."""

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
from ._scoring import make_som_scorer, som_score
from ._som import quantization_error, topographic_error

__all__ = [
    "accuracy",
    "ari",
    "clustering_error",
    "clustering_report",
    "contingency",
    "make_som_scorer",
    "nmi",
    "purity",
    "quantization_error",
    "som_score",
    "subspace_clustering_error",
    "topographic_error",
]
