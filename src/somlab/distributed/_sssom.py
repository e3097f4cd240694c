"""Data-parallel Batch SS-SOM: the data is sharded, the map is replicated.

Every rank draws the same global batches (the single process's generator, over the global
row indices); the rows of each batch are gathered from their owners; then every rank runs
the tensorized engine's own batch step (:meth:`somlab.relevance._engine.Engine.step_rows`) on the
same rows.  The step is deterministic, so insertions, removals and merges happen identically on
every rank, and the map equals the one a single process trains on the concatenated data.
"""

from __future__ import annotations

import numpy as np
import torch

from .._utils import seeded_generator
from ..relevance._base import COMPAT_PRESETS
from ..relevance._engine import Engine
from ._comm import Comm, Layout


class _ShardEngine(Engine):
    """The §3 engine over ``N`` global rows of which this rank holds a block.

    ``run`` (the schedule) and every rule are :class:`Engine`'s; only ``step`` differs: it
    gathers the batch's rows from their owners and presents them to ``Engine.step_rows``.
    """

    def __init__(self, X, y, p, gen, comm: Comm, layout: Layout):
        super().__init__(X, y, p, gen)
        self.N = layout.total  # the batch stream draws global row indices
        self.comm, self.layout = comm, layout
        self._shard = (X, y)

    def step(self, idx: torch.Tensor) -> bool:
        X, y = self._shard
        Xb, yb = self.comm.gather_rows(self.layout, idx, X, y.unsqueeze(1))
        return self.step_rows(Xb, yb.squeeze(1).round().long())


def _broadcast_state(state, comm: Comm):
    """Rank 0's map on every rank.  On the CPU the ranks already agree bit for bit; on CUDA,
    atomic float additions (``index_add_``) may differ in the last bit between ranks."""
    K = comm.broadcast(torch.tensor([state.K], device=state.C.device))
    state.K = int(K[0])
    for name in ("C", "delta", "omega", "wins", "classes", "adj"):
        setattr(state, name, comm.broadcast(getattr(state, name)))
    return state


def _global_classes(model, comm: Comm, y_idx: torch.Tensor) -> torch.Tensor:
    """Make ``classes_`` the labels of all shards and re-encode this shard's class indices."""
    local = model.classes_
    parts = [c for c in comm.all_gather_object(local) if len(c)]
    classes = np.unique(np.concatenate(parts)) if parts else local
    model.classes_ = classes
    model.supervised_ = len(classes) > 0
    if len(local) == 0:
        return y_idx
    remap = torch.as_tensor(np.searchsorted(classes, local), device=y_idx.device)
    return torch.where(y_idx >= 0, remap[y_idx.clamp_min(0)], y_idx)


def fit_batch_sssom(model, X_shard, y_shard=None):
    """Train ``model`` (a :class:`somlab.BatchSSSOM`) on data sharded over the process group.

    Rank r passes its block of the global data set, rows ``[offset_r, offset_r + n_r)`` with
    the blocks in rank order (see :func:`shard_range`; sizes may differ, none may be empty),
    and the matching labels (−1 = unlabelled; ``None``: all unlabelled).  Every rank must build
    the same estimator (checked).  All ranks end with the same fitted map (``prototypes_``,
    ``relevances_``, ``node_classes_``, ``classes_`` from the labels of all shards, ...), equal
    to ``BatchSSSOM(...).fit(X_global, y_global)`` on the concatenated shards; rank 0 can
    ``save`` it.

    What is distributed is the data: each rank reads and keeps only its shard.  The map state is
    replicated: for each global batch (the single process's batches: permutations of the global
    row indices from the shared generator) the B rows are gathered from their owners (one
    all-reduce of ``B x (m + 1)`` values), then every rank runs the same deterministic batch
    step of the tensorized engine, so node insertions, removals, merges and clones are the same
    on every rank by construction.  The step itself is not split: it is node bookkeeping on a
    few dozen rows and a map of at most ``max_nodes`` nodes, cheaper than the collective that
    splitting its activations across ranks would add per stage.  Use it when the data, not the
    map, is what does not fit one machine; it is not faster than one process.

    The single-process fit on the CPU uses the compiled (Cython) engine where it implements the
    flags; this runs the tensorized engine on every device (the two agree to 1e-5, as tested
    against the oracles).  ``random_state=None`` is allowed: rank 0's generator state is
    broadcast.

    Parameters
    ----------
    model : BatchSSSOM
    X_shard : array-like of shape (n_local, n_features)
    y_shard : array-like of shape (n_local,) or None

    Returns
    -------
    model : the fitted estimator
    """
    Xt, y_idx, _ = model._prepare_fit(X_shard, y_shard)
    comm = Comm()
    layout = comm.layout(Xt.shape[0], {"n_features": Xt.shape[1], **model.get_params()})
    y_idx = _global_classes(model, comm, y_idx)
    p = model._effective(layout.total)
    p["n_classes"] = len(model.classes_)
    if "batch_size" not in COMPAT_PRESETS.get(model.compat or "", {}):  # as fit_relevance_map
        p["batch_size"] = int(getattr(model, "batch_size", 1))
    gen = comm.sync_generator(seeded_generator(model.random_state))
    engine = _ShardEngine(Xt, y_idx, p, gen, comm, layout)
    model._store_map(_broadcast_state(engine.run(), comm), engine.history)
    return model
