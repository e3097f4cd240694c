"""fit() shared by the three relevance maps: run an engine on encoded labels, store the map."""

from __future__ import annotations

from .._utils import seeded_generator
from . import _batch_numba, _online_numba
from ._base import COMPAT_PRESETS
from ._engine import Engine

#: "auto": on the CPU, the compiled engines (numba) when the flags are theirs -- SPEC §2's
#: per-sample engine when batch_size == 1, SPEC §3's mini-batch engine otherwise; "torch":
#: always the tensorized engine (tests use it to check every engine against the oracles).
ONLINE_ENGINE = "auto"


def compiled_engine(p: dict, device) -> str | None:
    """Which compiled engine runs ``p`` on ``device``: "online", "batch" or None (torch)."""
    if ONLINE_ENGINE != "auto" or device.type != "cpu" or not _online_numba.available():
        return None
    if int(p.get("batch_size", 1)) == 1 and _online_numba.supports(p):
        return "online"
    if _batch_numba.supports(p):
        return "batch"
    return None


def fit_relevance_map(est, X, y, batch_size: int):
    Xt, y_idx, dev = est._prepare_fit(X, y)
    p = est._effective(Xt.shape[0])
    p["n_classes"] = len(est.classes_)
    if "batch_size" not in COMPAT_PRESETS.get(est.compat or "", {}):  # a C++ preset: B = 1
        p["batch_size"] = batch_size
    gen = seeded_generator(est.random_state)
    kind = compiled_engine(p, dev)
    if kind is not None:
        run = _online_numba.run_online if kind == "online" else _batch_numba.run_batch
        out = run(Xt.numpy(), y_idx.numpy(), p, gen)
        est._store_map(_online_numba.to_node_state(out, dev), out["history"])
        return est
    engine = Engine(Xt, y_idx, p, gen)
    est._store_map(engine.run(), engine.history)
    return est
