"""Data-parallel Batch SS-SOM: the data is sharded, the map is replicated.

Every rank draws the same global batches (the single process's generator, over the global
row indices); the rows of each batch are gathered from their owners; then every rank runs
the torch engine's own batch step (:meth:`somlab.relevance._multi_engine.MultiEngine.step_rows`,
one map) on the same rows.  The step is deterministic, so insertions, removals and merges happen
identically on every rank, and the map equals the one a single process trains on the
concatenated data.
"""

from __future__ import annotations

import numpy as np

from .._utils import seeded_generator
from ..relevance._fit import engine_params, torch_inputs
from ..relevance._multi_engine import MultiEngine
from ._comm import Comm, Layout


class _ShardEngine(MultiEngine):
    """The torch engine, one map, over ``N`` global rows of which this rank holds a block.

    The schedule and every rule are :class:`MultiEngine`'s; only :meth:`_rows` differs: it
    gathers the batch's rows from their owners.
    """

    def __init__(self, X, y, p, gen, comm: Comm, layout: Layout):
        super().__init__(X, y, [p], [gen])
        self.N = layout.total  # the batch stream draws global row indices
        self.comm, self.layout = comm, layout

    def _rows(self, idx):
        Xb, yb = self.comm.gather_rows(self.layout, idx, self.X, self.y.unsqueeze(1))
        return Xb, yb.squeeze(1).round().long()


def _broadcast_state(engine: MultiEngine, comm: Comm) -> None:
    """Rank 0's map on every rank.  On the CPU the ranks already agree bit for bit; on CUDA,
    atomic float additions (``index_add_``) may differ in the last bit between ranks."""
    for name in ("n_nodes", "C", "delta", "omega", "wins", "classes", "adj"):
        setattr(engine, name, comm.broadcast(getattr(engine, name)))


def _global_classes(model, comm: Comm, y_idx: np.ndarray) -> np.ndarray:
    """Make ``classes_`` the labels of all shards and re-encode this shard's class indices."""
    local = model.classes_
    parts = [c for c in comm.all_gather_object(local) if len(c)]
    classes = np.unique(np.concatenate(parts)) if parts else local
    model.classes_ = classes
    model.supervised_ = len(classes) > 0
    if len(local) == 0:
        return y_idx
    remap = np.searchsorted(classes, local)
    return np.where(y_idx >= 0, remap[np.maximum(y_idx, 0)], y_idx)


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
    step of the torch engine, so node insertions, removals, merges and clones are the same
    on every rank by construction.  The step itself is not split: it is node bookkeeping on a
    few dozen rows and a map of at most ``max_nodes`` nodes, cheaper than the collective that
    splitting its activations across ranks would add per stage.  Use it when the data, not the
    map, is what does not fit one machine; it is not faster than one process.

    The single-process fit on the CPU uses the compiled (Cython) engine where it implements the
    flags; this runs the torch engine on every device (the two agree to 1e-5, as tested
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
    Xn, y_idx, dev = model._prepare_fit(X_shard, y_shard)
    comm = Comm()
    layout = comm.layout(Xn.shape[0], {"n_features": Xn.shape[1], **model.get_params()})
    y_idx = _global_classes(model, comm, y_idx)
    p = engine_params(
        model, layout.total, len(model.classes_), int(getattr(model, "batch_size", 1))
    )
    gen = comm.sync_generator(seeded_generator(model.random_state))
    engine = _ShardEngine(*torch_inputs(Xn, y_idx, dev), p, gen, comm, layout)
    engine.run()
    _broadcast_state(engine, comm)
    model._store_map(engine.map_arrays(0), engine.history[0])
    return model
