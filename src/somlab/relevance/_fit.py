"""fit() shared by the three relevance maps: run an engine on encoded labels, store the map."""

from __future__ import annotations

from .._utils import seeded_generator
from . import _online_numba
from ._engine import Engine

#: "auto": the compiled SPEC §2 engine (numba) when batch_size == 1, the device is the CPU and
#: the flags are §2's; "torch": always the tensorized engine (tests use it to check both).
ONLINE_ENGINE = "auto"


def fit_relevance_map(est, X, y, batch_size: int):
    Xt, y_idx, dev = est._prepare_fit(X, y)
    p = est._effective(Xt.shape[0])
    p["n_classes"] = len(est.classes_)
    p["batch_size"] = batch_size
    gen = seeded_generator(est.random_state)
    if (
        ONLINE_ENGINE == "auto"
        and dev.type == "cpu"
        and _online_numba.available()
        and _online_numba.supports(p)  # batch_size == 1 and flags with a §2 meaning
    ):
        out = _online_numba.run_online(Xt.numpy(), y_idx.numpy(), p, gen)
        est._store_map(_online_numba.to_node_state(out, dev), out["history"])
        return est
    engine = Engine(Xt, y_idx, p, gen)
    est._store_map(engine.run(), engine.history)
    return est
