"""The compiled CPU engine (:mod:`._kernel`, Cython built at install time): SPEC.md §3 with §2 as
its batch size 1 case.

SS-SOM and LARFDSSOM run it at ``batch_size=1``; Batch SS-SOM at its own batch size.  The kernel
holds the map in fixed-capacity feature-major numpy buffers; this module makes them, feeds the
kernel the sample stream and returns the K active nodes.

Randomness is the torch engine's stream: ``init="random"`` draws ``torch.rand(m, generator=gen)``
first, then each draw of the CPU generator (``torch.randperm(N)``, or ``torch.randint(0, N, (N,))``
for ``sampling="replacement"``) is split into ceil(N/B) batches; draws are made in chunks and
handed to the kernel, which keeps its phase of the schedule between calls (and releases the GIL
while it runs, so :func:`run_many` trains several maps on several threads).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    from . import _kernel
except ImportError as exc:  # pragma: no cover - an installation without the built extension
    _kernel = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = ""

#: SPEC §5 flag values this engine implements, for every flag (checked against FLAGS in _fit).
SUPPORTED = {
    "distance": ("weighted", "weighted_sq"),
    "conn_metric": ("euclid", "sq"),
    "count_unit": ("sample", "batch"),
    "unsup_insert": ("group", "per_sample"),
    "capacity": ("greedy",),
    "conflict_update": ("grouped", "per_sample"),
    "labelled_conflict": ("push",),
    "connection_refresh": ("events", "always"),
    "convergence": ("cpp", "none"),
    "label_fallback": ("any", "within_at"),  # prediction only
    "init": ("first_sample", "random"),
    "sampling": ("permutation", "replacement"),
    "unsup_threshold": ("sample",),
    "clone_wins": ("zero", "copy"),
}
#: Values that coincide with a supported one at batch size 1 (SPEC §3: all_or_nothing tests
#: K < max_nodes for one candidate; the mean of one sample is the sample), so §2 runs them.
SUPPORTED_AT_B1 = {
    "capacity": ("all_or_nothing",),
    "unsup_threshold": ("mean",),
}

_CHUNK = 1 << 16  # indices handed to the kernel per call (whole draws; at least one draw)


def available() -> bool:
    """True when the compiled extension is built and importable."""
    return _kernel is not None


def unsupported(p: dict) -> list[str]:
    """The ``flag=value`` settings of the effective parameters ``p`` this engine cannot run
    (empty: it runs ``p`` exactly)."""
    b1 = int(p.get("batch_size", 1)) == 1
    bad = []
    for flag, values in SUPPORTED.items():
        v = p.get(flag, values[0])
        if v in values or (b1 and v in SUPPORTED_AT_B1.get(flag, ())):
            continue
        bad.append(f"{flag}={v!r}")
    if b1 and p.get("unsup_threshold") == "mean" and p.get("count_all_wins"):
        bad.append("unsup_threshold='mean' with count_all_wins=True")  # the torch engine's rule
    if int(p["max_nodes"]) >= (_kernel.MAX_CAPACITY if _kernel else 1 << 17):
        bad.append(f"max_nodes={p['max_nodes']} (at most {(1 << 17) - 1})")
    return bad


def supports(p: dict) -> bool:
    return not unsupported(p)


def _rates(p: dict) -> np.ndarray:
    """K4 scalars ``(1 - e beta, e beta, e)`` per rate (eb, e_n, -e_push): float64, then float32
    once, as the torch engine and the oracles form them."""
    beta = float(p["beta"])
    out = np.empty((3, 3), dtype=np.float32)
    for r, e in enumerate((float(p["eb"]), float(p["e_n"]), -float(p["e_push"]))):
        eb = e * beta
        out[r] = (1.0 - eb, eb, e)
    return out


def _flags(p: dict) -> int:
    bits = _kernel.FLAG_BITS
    f = 0
    f |= bits["squared"] if p.get("distance", "weighted") == "weighted_sq" else 0
    f |= bits["conn_sq"] if p.get("conn_metric", "euclid") == "sq" else 0
    f |= bits["always"] if p.get("connection_refresh", "events") == "always" else 0
    f |= bits["count_all"] if p.get("count_all_wins", False) else 0
    f |= bits["unit_batch"] if p.get("count_unit", "sample") == "batch" else 0
    f |= bits["unsup_per_sample"] if p.get("unsup_insert", "group") == "per_sample" else 0
    f |= bits["conflict_per_sample"] if p.get("conflict_update", "grouped") == "per_sample" else 0
    f |= bits["clone_copy"] if p.get("clone_wins", "zero") == "copy" else 0
    return f


def _draw(n: int, gen: torch.Generator, replacement: bool) -> torch.Tensor:
    """One draw of the sample stream (SPEC §2: a permutation, or N draws with replacement)."""
    if replacement:
        return torch.randint(0, n, (n,), generator=gen)
    return torch.randperm(n, generator=gen)


class _Job:
    """One map: its buffers, the kernel's Run, and the draws of its generator."""

    def __init__(self, X: np.ndarray, y: np.ndarray, p: dict, gen: torch.Generator):
        bad = unsupported(p)
        if bad:
            raise NotImplementedError(
                f"the compiled engine does not implement {', '.join(bad)}; use engine='torch'"
            )
        if _kernel is None:
            raise RuntimeError(f"the compiled engine is not built ({_IMPORT_ERROR})")
        n, m = X.shape
        self.n, self.gen = n, gen
        self.B = max(1, int(p.get("batch_size", 1)))
        cap = int(p["max_nodes"])
        epochs = int(p["epochs"])
        age = int(p["age_wins_samples"])
        self.replacement = p.get("sampling", "permutation") == "replacement"
        nb = -(-n // self.B)
        b = dict(  # node-major columns: C[:, j] is node j
            C=np.zeros((m, cap), np.float32),
            delta=np.zeros((m, cap), np.float32),
            omega=np.ones((m, cap), np.float32),
            sw=np.zeros(cap, np.float32),
            wins=np.zeros(cap, np.int64),
            classes=np.full(cap, -1, np.int64),
            adj=np.zeros((cap, cap), np.bool_),
            st=np.zeros(_kernel.N_STATE_PY, np.int64),
            n_nodes=np.zeros(epochs, np.int64),
        )
        b["st"][2] = cap  # S_MAXN
        if p.get("init", "first_sample") == "random":  # one random node before anything else
            b["C"][:, 0] = torch.rand(m, generator=gen, dtype=torch.float32).numpy()
            b["sw"][0] = np.float32(m)
            b["st"][0] = 1  # as the torch engine: not counted in history["inserted"]
        self.bufs = b
        self.run = _kernel.Run(
            X, y, b, _rates(p), float(np.float32(p["at"])), float(np.float32(p["s"])),
            float(np.float32(p["minwd"])), float(p["lp"]), age, _flags(p),
            int(p.get("n_classes", 0)), self.B, epochs * nb, p.get("convergence", "cpp") == "cpp",
        )  # fmt: skip
        # draws per call: the training epochs (one draw each) and the convergence phase's two
        # windows first, then two windows at a time, at most _CHUNK indices a call
        per_window = -(-age // (nb if p.get("count_unit") == "batch" else n))
        self.per_call = max(1, _CHUNK // n)
        self.ahead = epochs + 2 * per_window
        self.then = 2 * per_window
        # every batch advances t by at least 1, so each window closes: a safe bound on draws
        self.limit = epochs + 4 * (age + self.B) + 4
        self.drawn = 0

    def next_idx(self) -> np.ndarray:
        if self.drawn > self.limit:  # pragma: no cover - a logic error, not a user error
            raise RuntimeError("compiled engine ran out of sample draws")
        k = max(1, min(self.per_call, self.then if self.drawn else self.ahead))
        self.drawn += k
        return torch.cat([_draw(self.n, self.gen, self.replacement) for _ in range(k)]).numpy()

    def result(self) -> dict:
        """The K active nodes (feature-major buffers transposed back) and the history."""
        b = self.bufs
        st = b["st"]
        K = int(st[0])
        history = {
            "n_nodes": [int(v) for v in b["n_nodes"]] + [K],
            "inserted": int(st[5]),
            "removed": int(st[6]),
            "windows": int(st[7]),
            "presented": int(st[8]),
        }
        return {
            "C": np.ascontiguousarray(b["C"][:, :K].T),
            "delta": np.ascontiguousarray(b["delta"][:, :K].T),
            "omega": np.ascontiguousarray(b["omega"][:, :K].T),
            "wins": b["wins"][:K].copy(),
            "classes": b["classes"][:K].copy(),
            "adj": b["adj"][:K, :K].copy(),
            "history": history,
        }

    def train(self) -> dict:
        while not self.run.done:
            self.run.chunk(self.next_idx())
        return self.result()


def _inputs(X, y):
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    return X, y


def run(X: np.ndarray, y: np.ndarray, p: dict, gen: torch.Generator) -> dict:
    """Train one map (SPEC §3; §2 at ``batch_size=1``) with the compiled engine.

    Parameters
    ----------
    X : float32 array [N, m]
    y : int64 array [N]
        Class indices 0..C-1, −1 = unlabelled.
    p : dict
        Effective parameters (``RelevanceMapBase._effective``, with ``batch_size`` and
        ``n_classes``).
    gen : torch.Generator
        The CPU generator of the run (consumed as the torch engine consumes it, except that the
        last chunk of draws may be drawn without being used).

    Returns
    -------
    dict
        ``C``, ``delta``, ``omega`` (float32 [K, m]), ``wins``, ``classes`` (int64 [K]), ``adj``
        (bool [K, K]) in logical (creation) order, and ``history`` with ``inserted``,
        ``removed``, ``windows``, ``presented`` and ``n_nodes`` (K after each epoch, then K).
    """
    X, y = _inputs(X, y)
    return _Job(X, y, p, gen).train()


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def run_many(jobs, n_threads: int | None = None) -> list[dict]:
    """Train several maps, each ``(X, y, p, gen)``, on ``n_threads`` threads (default: the
    usable cores).  The kernel runs without the GIL, so the maps train in parallel; each result
    equals :func:`run` on the same job (every map has its own buffers and generator)."""
    prepared = []
    for X, y, p, gen in jobs:
        X, y = _inputs(X, y)
        prepared.append(_Job(X, y, p, gen))
    n_threads = default_threads() if n_threads is None else max(1, int(n_threads))
    if n_threads == 1 or len(prepared) <= 1:
        return [j.train() for j in prepared]
    with ThreadPoolExecutor(max_workers=min(n_threads, len(prepared))) as pool:
        return list(pool.map(_Job.train, prepared))
