"""fit() shared by the three relevance maps: choose an engine, run it on encoded labels, store
the map; :func:`fit_many` trains many settings of the same data at once.

Two engines (the estimators' ``engine`` parameter):

* ``"compiled"`` -- :mod:`._compiled`, the Cython kernel built at install time: SPEC §3 with §2
  as its batch size 1 case, CPU only;
* ``"torch"`` -- :mod:`._multi_engine`, tensorized, any device, every flag of SPEC §5; a single
  map is its K = 1 case.

``"auto"`` (the default) takes the compiled engine on the CPU when it implements the flags, else
the torch engine -- with an :class:`EngineFallbackWarning` naming the flags when on the CPU.

Each engine declares the flag values it supports (``SUPPORTED`` in its module); this module
checks those allow-lists against :data:`._base.FLAGS` when it is imported, so a new flag or value
that no engine lists fails the import instead of being ignored silently.
"""

from __future__ import annotations

import warnings
from functools import partial

from .._utils import seeded_generator
from . import _auto, _compiled
from . import _multi_engine as _torch_engine
from ._base import COMPAT_PRESETS, FLAGS

ENGINES = ("auto", "compiled", "torch")
_DECLARED = {"compiled": _compiled.SUPPORTED, "torch": _torch_engine.SUPPORTED}


class EngineFallbackWarning(UserWarning):
    """``engine="auto"`` on the CPU runs the torch engine: the compiled one lacks a flag."""


def check_allow_lists(declared=None, flags=None) -> None:
    """Each engine's allow-list names every flag of ``FLAGS`` with known values only, and every
    value of ``FLAGS`` is supported by at least one engine."""
    declared = _DECLARED if declared is None else declared
    flags = FLAGS if flags is None else flags
    for name, allowed in declared.items():
        if set(allowed) != set(flags):
            missing, extra = sorted(set(flags) - set(allowed)), sorted(set(allowed) - set(flags))
            raise ImportError(
                f"engine {name!r}: allow-list flags differ from FLAGS "
                f"(missing {missing}, unknown {extra})"
            )
        for flag, values in allowed.items():
            unknown = set(values) - set(flags[flag])
            if unknown:
                raise ImportError(f"engine {name!r}: {flag} lists unknown values {unknown}")
    for flag, values in flags.items():
        for v in values:
            if not any(v in allowed[flag] for allowed in declared.values()):
                raise ImportError(f"no engine implements {flag}={v!r}")


check_allow_lists()


def _torch_unsupported(p: dict) -> list[str]:
    return [
        f"{flag}={p[flag]!r}"
        for flag, values in _torch_engine.SUPPORTED.items()
        if flag in p and p[flag] not in values
    ]


def select_engine(engine: str, p: dict, device) -> str:
    """``"compiled"`` or ``"torch"`` for the effective parameters ``p`` on ``device``."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "torch":
        bad = _torch_unsupported(p)
        if bad:
            raise ValueError(f"engine='torch' does not implement {', '.join(bad)}")
        return "torch"
    reasons = []
    if device.type != "cpu":
        reasons.append(f"it runs on the CPU only (device={str(device)!r})")
    elif not _compiled.available():
        reasons.append(f"the extension is not built ({_compiled._IMPORT_ERROR})")
    else:
        bad = _compiled.unsupported(p)
        if bad:
            reasons.append("it does not implement " + ", ".join(bad))
    if not reasons:
        return "compiled"
    if engine == "compiled":
        raise ValueError(
            f"engine='compiled' cannot run this fit: {'; '.join(reasons)}; use engine='torch' "
            "or 'auto'"
        )
    if device.type == "cpu":  # on CUDA the torch engine is the engine, not a fallback
        warnings.warn(
            f"engine='auto' falls back to the torch engine: the compiled engine "
            f"{'; '.join(reasons)}",
            EngineFallbackWarning,
            stacklevel=4,
        )
    return "torch"


def engine_params(est, n_samples: int, n_classes: int, batch_size: int) -> dict:
    """The effective parameters an engine runs for ``est`` on ``n_samples`` rows: its
    ``_effective`` ones with ``n_classes`` and ``batch_size`` (a C++ preset keeps its B = 1)."""
    p = est._effective(n_samples)
    p["n_classes"] = n_classes
    if "batch_size" not in COMPAT_PRESETS.get(est.compat or "", {}):
        p["batch_size"] = batch_size
    return p


def _prepare(est, X, y, batch_size: int):
    Xn, y_idx, dev = est._prepare_fit(X, y)
    return Xn, y_idx, dev, engine_params(est, Xn.shape[0], len(est.classes_), batch_size)


def torch_inputs(Xn, y_idx, dev):
    """The torch engine's edge: ``_prepare_fit``'s arrays as tensors on ``dev`` (views on the
    CPU)."""
    import torch

    return torch.from_numpy(Xn).to(dev), torch.from_numpy(y_idx).to(dev)


def fit_checked(est, X, y, batch_size: int):
    """Fit ``est``'s map on ``X, y``; returns ``_prepare_fit``'s checked arrays ``(Xn, y_idx)``
    (float32 ``[N, m]``, class indices), so what follows the map (labels, the decision rule)
    need not validate ``X`` and split ``y`` again."""
    Xn, y_idx, dev, p = _prepare(est, X, y, batch_size)
    gen = seeded_generator(est.random_state)
    try:
        if select_engine(getattr(est, "engine", "auto"), p, dev) == "compiled":
            out = _compiled.run(Xn, y_idx, p, gen)
            est._store_map(out, out["history"])
            return Xn, y_idx
        engine = _torch_engine.MultiEngine(*torch_inputs(Xn, y_idx, dev), [p], [gen]).run()
        est._store_map(engine.map_arrays(0), engine.history[0])
        return Xn, y_idx
    finally:
        est.__dict__.pop("_merge_X", None)  # the training rows: never kept past the fit


def fit_relevance_map(est, X, y, batch_size: int):
    """:func:`fit_checked`, leaving the checked arrays as ``est._checked`` for the decision
    rule (:func:`._auto.decide` takes them away)."""
    est._checked = fit_checked(est, X, y, batch_size)
    return est


def fit_many(estimators, X, y=None, n_threads: int | None = None) -> list:
    """Fit many relevance maps on the same ``X, y`` at once; returns the fitted estimators.

    ``estimators`` holds unfitted LARFDSSOM / SSSOM / BatchSSSOM instances (fitted in place and
    returned) or ``(cls, params)`` pairs / param dicts with a ``"model"`` key naming the class.
    Maps the compiled engine runs (engine "auto" or "compiled" on the CPU) train together on
    ``n_threads`` threads (default: the usable cores) with the GIL released; the others fit one
    after the other with ``est.fit``.  Each result equals ``est.fit(X, y)`` on its own.
    """
    from . import LARFDSSOM, SSSOM, BatchSSSOM

    classes = {"LARFDSSOM": LARFDSSOM, "SSSOM": SSSOM, "BatchSSSOM": BatchSSSOM}
    ests = []
    for e in estimators:
        if isinstance(e, tuple):
            cls, params = e
            e = cls(**params)
        elif isinstance(e, dict):
            params = dict(e)
            e = classes[params.pop("model")](**params)
        ests.append(e)
    jobs, owners = [], []
    for e in ests:
        fy = None if isinstance(e, LARFDSSOM) else y  # LARFDSSOM.fit ignores labels
        bs = int(e.batch_size) if isinstance(e, BatchSSSOM) else 1
        Xn, y_idx, dev, p = _prepare(e, X, fy, bs)
        if select_engine(getattr(e, "engine", "auto"), p, dev) == "compiled":
            jobs.append((Xn, y_idx, p, seeded_generator(e.random_state)))
            owners.append(e)
        else:
            e.fit(X, fy) if fy is not None else e.fit(X)
    for e, job, out in zip(owners, jobs, _compiled.run_many(jobs, n_threads)):
        e._store_map(out, out["history"])
        Xn, y_idx = job[0], job[1]
        if isinstance(e, LARFDSSOM):  # as LARFDSSOM.fit
            e.labels_ = e._decide_checked(Xn)[0]
        else:  # as SSSOM.fit / BatchSSSOM.fit: the decision rule too
            bs = int(e.batch_size) if isinstance(e, BatchSSSOM) else 1
            _auto.decide(e, X, y, partial(fit_relevance_map, batch_size=bs), Xn, y_idx)
    return ests
