"""fit() shared by the three relevance maps: run the engine on encoded labels, store the map."""

from __future__ import annotations

from .._utils import seeded_generator
from ._engine import Engine


def fit_relevance_map(est, X, y, batch_size: int):
    Xt, y_idx, _ = est._prepare_fit(X, y)
    p = est._effective(Xt.shape[0])
    p["n_classes"] = len(est.classes_)
    p["batch_size"] = batch_size
    engine = Engine(Xt, y_idx, p, seeded_generator(est.random_state))
    est._store_map(engine.run(), engine.history)
    return est
