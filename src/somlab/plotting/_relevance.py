"""Plots of relevance-learning maps (LARFDSSOM, SS-SOM, Batch SS-SOM)."""

from __future__ import annotations

import numpy as np

from ._arrays import _is_fitted
from ._draw import _axes, _colorbar, _save


def relevance_matrix(model) -> tuple[np.ndarray, np.ndarray]:
    """``(relevances (n_nodes, n_features), node classes (n_nodes,))`` of a fitted map."""
    if not hasattr(model, "relevances_"):
        if _is_fitted(model):
            raise ValueError(
                f"plot_relevances draws a relevance map (LARFDSSOM, SSSOM, BatchSSSOM, DCSOMRL); a "
                f"{type(model).__name__} has no relevances_"
            )
        raise ValueError("fit the relevance map before plotting (it has no relevances_)")
    # DC-SOMRL: the relevances training learned (its default's refinement sets relevances_ to 1)
    learned = getattr(model, "learned_relevances_", None)
    R = np.asarray(model.relevances_ if learned is None else learned)
    # maps without node classes (DC-SOMRL's prototypes) show "-" like an unlabelled node
    classes = getattr(model, "node_classes_", None)
    return R, np.full(R.shape[0], -1) if classes is None else np.asarray(classes)


def plot_relevances(model, feature_names=None, ax=None, path=None, cmap="viridis"):
    """Heat map of every node's per-feature relevance (rows: nodes, labelled by their class)."""
    R, classes = relevance_matrix(model)
    ax = _axes(ax, figsize=(max(4.0, 0.35 * R.shape[1] + 2), max(2.5, 0.3 * R.shape[0] + 1.5)))
    im = ax.imshow(R, aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xlabel("feature")
    ax.set_ylabel("node (class)")
    ax.set_yticks(range(R.shape[0]))
    ax.set_yticklabels([f"{i} ({c})" if c != -1 else f"{i} (-)" for i, c in enumerate(classes)])
    if feature_names is not None:
        ax.set_xticks(range(R.shape[1]))
        ax.set_xticklabels(list(feature_names), rotation=90)
    ax.set_title("Node relevances")
    _colorbar(ax, im, "relevance")
    _save(ax.figure, path)
    return ax
