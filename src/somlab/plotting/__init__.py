"""Plots of trained maps: U-matrix, hits, class markers and pies, component planes, prototypes.

The arrays behind the plots are pure NumPy functions (:func:`umatrix`, :func:`expanded_umatrix`,
:func:`hit_map`, :func:`class_markers`, :func:`class_distribution`, :func:`component_planes`,
:func:`prototype_mosaic`); the ``plot_*`` functions draw them with matplotlib, return the Axes,
draw into ``ax=`` when given and save a PNG to ``path=`` when given.  All accept a fitted
:class:`somlab.SOM`, or a weights array ``(rows, cols, n_features)`` with ``grid=Grid(...)``.
"""

from ._arrays import (
    best_matching_nodes,
    class_distribution,
    class_markers,
    component_planes,
    expanded_umatrix,
    hit_map,
    prototype_distance,
    prototype_mosaic,
    umatrix,
)
from ._dcsomrl import (
    closest_samples,
    cluster_intersection,
    decode,
    latent_traversal,
    plot_closest_samples,
    plot_cluster_intersection,
    plot_decoded_prototypes,
    plot_latent_traversal,
    plot_relevance_histograms,
    plot_relevance_perturbation,
    plot_tsne,
    relevance_perturbation,
    tsne_embedding,
)
from ._draw import (
    node_xy,
    plot_class_pies,
    plot_components,
    plot_expanded_umatrix,
    plot_hits,
    plot_markers,
    plot_prototypes,
    plot_training,
    plot_umatrix,
)
from ._nodes import plot_clusters, plot_node_values, plot_target_map, target_map
from ._relevance import plot_relevances, relevance_matrix
from ._space import grid_edges, plot_data_space

__all__ = [
    "prototype_distance",
    "plot_data_space",
    "grid_edges",
    "target_map",
    "plot_target_map",
    "plot_node_values",
    "plot_clusters",
    "best_matching_nodes",
    "class_distribution",
    "class_markers",
    "closest_samples",
    "cluster_intersection",
    "component_planes",
    "decode",
    "expanded_umatrix",
    "hit_map",
    "latent_traversal",
    "node_xy",
    "plot_class_pies",
    "plot_closest_samples",
    "plot_cluster_intersection",
    "plot_components",
    "plot_decoded_prototypes",
    "plot_expanded_umatrix",
    "plot_hits",
    "plot_latent_traversal",
    "plot_markers",
    "plot_prototypes",
    "plot_relevance_histograms",
    "plot_relevance_perturbation",
    "plot_relevances",
    "plot_training",
    "plot_tsne",
    "plot_umatrix",
    "prototype_mosaic",
    "relevance_matrix",
    "relevance_perturbation",
    "tsne_embedding",
    "umatrix",
]
