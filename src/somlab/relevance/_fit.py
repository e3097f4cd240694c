"""fit() shared by the three relevance maps: encode labels, run the engine, store the map."""

from __future__ import annotations

import numpy as np
import torch

from .._utils import seeded_generator
from ._engine import Engine


def fit_relevance_map(est, X, y, batch_size: int):
    Xt, yt, dev = est._prepare_fit(X, y)
    y_np = yt.cpu().numpy()
    idx = np.full(y_np.shape, -1, dtype=np.int64)
    lab = y_np >= 0
    idx[lab] = np.searchsorted(est.classes_, y_np[lab])
    p = est._effective(Xt.shape[0])
    p["n_classes"] = len(est.classes_)
    p["batch_size"] = p.get("batch_size", batch_size) if batch_size is None else batch_size
    engine = Engine(Xt, torch.as_tensor(idx, device=dev), p, seeded_generator(est.random_state))
    state = engine.run()
    est._store_map(state, engine.history)
    # node classes back to the user's labels (−1 stays −1)
    cls = est.node_classes_
    if len(est.classes_):
        est.node_classes_ = np.where(cls >= 0, est.classes_[np.maximum(cls, 0)], -1)
    return est
