"""A compiled (numba) engine for SPEC.md §2: SS-SOM / LARFDSSOM one sample at a time (B = 1).

The tensorized engine (:mod:`._engine`) with ``batch_size=1`` implements the same rules, but pays
torch's per-call overhead (about 1-4 ms per presented sample); this engine runs one plain loop
per sample over fixed-capacity numpy arrays and is about three orders of magnitude faster.

Arithmetic follows the oracle's conventions (``tests/oracles/sssom.py``): float32 everywhere the
torch engine uses float32 —

* K1/K2 ``S_j = sum_i omega_ji (x_i - c_ji)^2``, ``a_j = sw_j / (sw_j + D_j + 1e-7)`` with
  ``sw_j = sum_i omega_ji`` (cached per node, recomputed whenever omega_j changes);
* K3 ``q = s (dmax - dmin)``, ``omega_i = 1 / (1 + exp((delta_i - mean) / q))``;
* K4 ``e``, ``e beta`` and ``1 - e beta`` formed in float64 and rounded once to float32;
* thresholds rounded to float32 (``a < at``, ``||w_i - w_j|| < minwd``, ``wins < lp t``).

Sums are sequential, so the last bit can differ from torch's vectorised reductions; the tests
check agreement with the oracle to 1e-5 with identical structure (nodes, classes, edges).

Randomness is the torch engine's: ``init="random"`` draws ``torch.rand(m, generator=gen)`` first,
then the sample stream is a sequence of draws (``torch.randperm(N)`` or, for
``sampling="replacement"``, ``torch.randint(0, N, (N,))``) consumed one index per step.  Draws are
made in Python in chunks and handed to the kernel, which keeps its phase (organisation,
convergence (a), (c)) between calls.
"""

from __future__ import annotations

import math

import numpy as np
import torch

try:  # numba is optional: without it the torch engine is used (see available())
    from numba import njit

    _HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    _HAVE_NUMBA = False

    def njit(*args, **kwargs):
        def wrap(f):
            return f

        return wrap(args[0]) if args and callable(args[0]) else wrap


_F32 = np.float32
_EPS = np.float32(1e-7)
_CHUNK = 1 << 14  # indices handed to the kernel per call (whole draws; at least one draw)

# indices into the kernel's int64 state vector
_K, _T, _MAXN, _PHASE, _ORG, _INS, _REM, _WIN, _SEEN = range(9)
_N_STATE = 9
# phases of the schedule
_ORGANISATION, _CONV_A, _CONV_C, _DONE = range(4)


def available() -> bool:
    """True when numba is importable, i.e. :func:`run_online` can run compiled."""
    return _HAVE_NUMBA


def supports(p: dict) -> bool:
    """Whether ``p`` (the effective parameters of ``RelevanceMapBase._effective``) asks for
    something this engine implements: batch size 1 and the §2 flags.

    Flags of §3 that coincide with §2 at B = 1 (count_unit, unsup_insert, capacity,
    conflict_update, clone_wins) are accepted; ``labelled_conflict="clone"``,
    ``distance="reference"``, ``convergence="reference"`` and ``unsup_threshold="mean"`` together
    with ``count_all_wins`` are not (the torch engine handles them).
    """
    if int(p.get("batch_size", 1)) != 1:
        return False
    if p.get("distance", "weighted") not in ("weighted", "weighted_sq"):
        return False
    if p.get("convergence", "cpp") not in ("cpp", "none"):
        return False
    if p.get("labelled_conflict", "push") != "push":
        return False
    if p.get("unsup_threshold", "sample") == "mean" and p.get("count_all_wins", False):
        return False  # the torch engine's mean path skips count_all_wins
    return True


# --------------------------------------------------------------------------- kernels (SPEC §1)
@njit(cache=True, inline="always")  # inlined into the loops: ~10-15 % a step
def _activations(x, C, omega, sw, K, squared, act):
    """K1 + K2 for every active node: ``act[j] = sw_j / (sw_j + D_j(x) + eps)``, float32.

    Each S_j is summed over features in order; the loop runs over nodes innermost (node-major
    columns), so it vectorises across nodes without changing any node's rounding.
    """
    m = x.shape[0]
    for j in range(K):
        act[j] = _F32(0.0)
    for i in range(m):
        xi = x[i]
        Ci = C[i]
        Oi = omega[i]
        for j in range(K):
            d = xi - Ci[j]
            act[j] += d * d * Oi[j]
    for j in range(K):
        S = act[j]
        D = S if squared else np.sqrt(S)
        act[j] = sw[j] / (sw[j] + D + _EPS)


@njit(cache=True)
def _argmax(act, K):
    """First maximum of ``act[:K]`` (ties -> lowest index)."""
    best = 0
    for j in range(1, K):
        if act[j] > act[best]:
            best = j
    return best


@njit(cache=True)
def _relevance(j, delta, omega, sw, s32):
    """K3 on node j: ``q = s (dmax - dmin)``; omega = sigmoid(-(delta - mean) / q) if
    0 < q < inf, else ones; refreshes the cached relevance sum ``sw_j``."""
    m = delta.shape[0]
    dmax = delta[0, j]
    dmin = delta[0, j]
    dsum = _F32(0.0)
    for i in range(m):
        v = delta[i, j]
        dsum += v
        if v > dmax:
            dmax = v
        if v < dmin:
            dmin = v
    dmean = dsum / _F32(m)
    q = (dmax - dmin) * s32
    total = _F32(0.0)
    if q > 0 and math.isfinite(q):
        for i in range(m):
            z = (delta[i, j] - dmean) / q
            w = _F32(1.0) / (_F32(1.0) + np.exp(z))
            omega[i, j] = w
            total += w
    else:
        for i in range(m):
            omega[i, j] = _F32(1.0)
            total += _F32(1.0)
    sw[j] = total


@njit(cache=True, inline="always")  # inlined into the loops: ~10-15 % a step
def _update(j, x, C, delta, omega, sw, rate, s32):
    """K4 U(j, x, e) with ``rate = (1 - e beta, e beta, e)`` in float32: delta with the old
    centre, then omega = K3(delta), then ``c <- c + e (x - c)``."""
    keep, eb, e = rate[0], rate[1], rate[2]
    m = x.shape[0]
    for i in range(m):
        delta[i, j] = keep * delta[i, j] + eb * abs(x[i] - C[i, j])
    _relevance(j, delta, omega, sw, s32)
    for i in range(m):
        C[i, j] = C[i, j] + e * (x[i] - C[i, j])


@njit(cache=True)
def _connected(i, j, omega, classes, minwd32, conn_sq):
    """K5: ``||omega_i - omega_j|| < minwd`` (squared norm with ``conn_metric="sq"``) and
    classes equal or either unlabelled."""
    ci, cj = classes[i], classes[j]
    if not (ci == cj or ci == -1 or cj == -1):
        return False
    sq = _F32(0.0)
    for k in range(omega.shape[0]):
        d = omega[k, i] - omega[k, j]
        sq += d * d
    dist = sq if conn_sq else _F32(math.sqrt(sq))
    return dist < minwd32


@njit(cache=True)
def _refresh_incident(i, K, omega, classes, adj, minwd32, conn_sq):
    """K5 for every pair (i, k), k != i, written symmetrically; no self loop."""
    for k in range(K):
        v = False if k == i else _connected(i, k, omega, classes, minwd32, conn_sq)
        adj[i, k] = v
        adj[k, i] = v


@njit(cache=True)
def _refresh_all(K, omega, classes, adj, minwd32, conn_sq):
    """K5 for all pairs of the K active nodes."""
    for i in range(K):
        adj[i, i] = False
        for k in range(i + 1, K):
            v = _connected(i, k, omega, classes, minwd32, conn_sq)
            adj[i, k] = v
            adj[k, i] = v


@njit(cache=True)
def _insert(x, cls, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq):
    """New node last (slot K): c = x, delta = 0, omega = 1, wins = 0, its edges (K5)."""
    K = st[_K]
    m = x.shape[0]
    for i in range(m):
        C[i, K] = x[i]
        delta[i, K] = 0.0
        omega[i, K] = 1.0
    sw[K] = _F32(m)
    wins[K] = 0
    classes[K] = cls
    st[_K] = K + 1
    st[_INS] += 1
    _refresh_incident(K, K + 1, omega, classes, adj, minwd32, conn_sq)


@njit(cache=True, inline="always")  # inlined into the loops: ~10-15 % a step
def _pull(j, x, C, delta, omega, sw, adj, K, rates, s32):
    """U(j, x, eb), then U(k, x, e_n) for the neighbours k of j (edges unchanged by K4)."""
    _update(j, x, C, delta, omega, sw, rates[0], s32)
    for k in range(K):
        if adj[j, k]:
            _update(k, x, C, delta, omega, sw, rates[1], s32)


@njit(cache=True)
def _close_window(C, delta, omega, sw, wins, classes, adj, st, lp, minwd32, conn_sq):
    """Remove nodes with wins < lp t (both in float32); keep the node with most wins when none
    passes (ties -> lowest index); compact in logical order; wins <- 0, t <- 0; all edges."""
    K = st[_K]
    thr = _F32(lp * st[_T])
    n_keep = 0
    for j in range(K):
        if not (_F32(wins[j]) < thr):
            n_keep += 1
    if n_keep == 0 and K > 0:
        best = 0
        for j in range(1, K):
            if wins[j] > wins[best]:
                best = j
        keep_only = best
    else:
        keep_only = -1
    k = 0
    for j in range(K):
        kept = (j == keep_only) if keep_only >= 0 else not (_F32(wins[j]) < thr)
        if kept:
            if k != j:
                C[:, k] = C[:, j]
                delta[:, k] = delta[:, j]
                omega[:, k] = omega[:, j]
                sw[k] = sw[j]
                classes[k] = classes[j]
            k += 1
    st[_REM] += K - k
    st[_K] = k
    for j in range(k):
        wins[j] = 0
    st[_T] = 0
    st[_WIN] += 1
    _refresh_all(k, omega, classes, adj, minwd32, conn_sq)


# --------------------------------------------------------------------------- one sample (§2)
@njit(cache=True, inline="always")  # inlined into the loops: ~10-15 % a step
def _present(
    x,
    y,
    C,
    delta,
    omega,
    sw,
    wins,
    classes,
    adj,
    act,
    st,
    rates,
    at32,
    lp,
    age,
    s32,
    minwd32,
    squared,
    conn_sq,
    always,
    count_all_wins,
):
    """Init / unsupervised / supervised step on one sample, then the window check.
    Returns True when a window closed."""
    K = st[_K]
    if K == 0:  # Init: the first sample creates node 0 at x with class y; no update
        _insert(x, y, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq)
    else:
        _activations(x, C, omega, sw, K, squared, act)
        s = _argmax(act, K)
        room = K < st[_MAXN]
        if y < 0:  # unsupervised step
            if act[s] < at32:
                if count_all_wins:
                    wins[s] += 1
                if room:
                    _insert(x, -1, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq)
            else:
                wins[s] += 1
                if always:
                    _refresh_all(K, omega, classes, adj, minwd32, conn_sq)
                _pull(s, x, C, delta, omega, sw, adj, K, rates, s32)
        elif classes[s] == y or classes[s] == -1:  # supervised, compatible winner
            if act[s] < at32:
                if room:
                    _insert(x, y, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq)
            else:
                wins[s] += 1
                classes[s] = y
                if always:
                    _refresh_all(K, omega, classes, adj, minwd32, conn_sq)
                else:
                    _refresh_incident(s, K, omega, classes, adj, minwd32, conn_sq)
                _pull(s, x, C, delta, omega, sw, adj, K, rates, s32)
        else:  # supervised, conflict: s' = best active node of class y or unlabelled
            sp = -1
            for j in range(K):
                if act[j] >= at32 and (classes[j] == y or classes[j] == -1):
                    if sp < 0 or act[j] > act[sp]:
                        sp = j
            if sp < 0:
                if room:
                    _insert(x, y, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq)
            else:
                if always:
                    _refresh_all(K, omega, classes, adj, minwd32, conn_sq)
                _update(s, x, C, delta, omega, sw, rates[2], s32)  # push
                wins[sp] += 1
                _pull(sp, x, C, delta, omega, sw, adj, K, rates, s32)
    st[_T] += 1
    if st[_T] >= age:
        _close_window(C, delta, omega, sw, wins, classes, adj, st, lp, minwd32, conn_sq)
        return True
    return False


# --------------------------------------------------------------------------- schedule (§2)
@njit(cache=True)
def _run_chunk(
    X,
    y,
    idx,
    n,
    n_org,
    conv_cpp,
    C,
    delta,
    omega,
    sw,
    wins,
    classes,
    adj,
    act,
    st,
    n_nodes,
    rates,
    at32,
    lp,
    age,
    s32,
    minwd32,
    squared,
    conn_sq,
    always,
    count_all_wins,
):
    """Present the samples ``idx`` in order, moving through the phases organisation ->
    convergence (a) -> (b) freeze -> (c) -> done; stops early when done.  ``n_nodes[e]`` gets K
    at the end of epoch e.  Returns the number of indices consumed."""
    pos = 0
    while True:
        if st[_PHASE] == _ORGANISATION and st[_ORG] >= n_org:
            st[_PHASE] = _CONV_A if conv_cpp else _DONE
        if st[_PHASE] == _CONV_A and st[_T] == 0:  # (a) done: (b) freeze insertion
            st[_MAXN] = st[_K]
            st[_PHASE] = _CONV_C
        if st[_PHASE] == _DONE or pos >= idx.shape[0]:
            return pos
        i = idx[pos]
        pos += 1
        st[_SEEN] += 1
        closed = _present(
            X[i],
            y[i],
            C,
            delta,
            omega,
            sw,
            wins,
            classes,
            adj,
            act,
            st,
            rates,
            at32,
            lp,
            age,
            s32,
            minwd32,
            squared,
            conn_sq,
            always,
            count_all_wins,
        )
        if st[_PHASE] == _ORGANISATION:
            st[_ORG] += 1
            if st[_ORG] % n == 0:
                n_nodes[st[_ORG] // n - 1] = st[_K]
        elif st[_PHASE] == _CONV_C and closed:  # (c) ends with the window it opened
            st[_PHASE] = _DONE


def _rates(p: dict) -> np.ndarray:
    """K4 scalars ``(1 - e beta, e beta, e)`` per rate (eb, e_n, -e_push): float64, then float32
    once, as the torch engine and the oracle form them."""
    beta = float(p["beta"])
    out = np.empty((3, 3), dtype=np.float32)
    for r, e in enumerate((float(p["eb"]), float(p["e_n"]), -float(p["e_push"]))):
        eb = e * beta
        out[r] = (1.0 - eb, eb, e)
    return out


def _draw(n: int, gen: torch.Generator, replacement: bool) -> torch.Tensor:
    """One draw of the sample stream (SPEC §2: a permutation, or N draws with replacement)."""
    if replacement:
        return torch.randint(0, n, (n,), generator=gen)
    return torch.randperm(n, generator=gen)


def run_online(X: np.ndarray, y: np.ndarray, p: dict, gen: torch.Generator) -> dict:
    """Train one SS-SOM / LARFDSSOM map online (SPEC §2) with the compiled engine.

    Parameters
    ----------
    X : float32 array [N, m]
    y : int64 array [N]
        Class indices 0..C-1, −1 = unlabelled.
    p : dict
        Effective parameters (``RelevanceMapBase._effective``): at, lp, beta, age_wins_samples,
        eb, e_n, e_push, s, minwd, epochs, max_nodes and the flags distance, conn_metric,
        connection_refresh, convergence, count_all_wins, init, sampling.
    gen : torch.Generator
        The CPU generator of the run (consumed exactly as the torch engine consumes it, except
        that the last chunk of draws may be drawn without being used).

    Returns
    -------
    dict
        ``C``, ``delta``, ``omega`` (float32 [K, m]), ``wins``, ``classes`` (int64 [K]),
        ``adj`` (bool [K, K]) in logical (creation) order, and ``history`` with ``inserted``,
        ``removed``, ``windows``, ``presented`` (samples presented, convergence included) and
        ``n_nodes`` (K after each epoch, then the final K).
    """
    if not supports(p):
        raise NotImplementedError(
            "run_online implements SPEC §2 at batch size 1 with distance weighted/weighted_sq, "
            "convergence cpp/none and labelled_conflict push; use the torch engine otherwise"
        )
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    n, m = X.shape
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    cap = int(p["max_nodes"])
    epochs = int(p["epochs"])
    age = int(p["age_wins_samples"])
    conv_cpp = p.get("convergence", "cpp") == "cpp"
    replacement = p.get("sampling", "permutation") == "replacement"

    # node-major columns: C[:, j] is node j (see _activations)
    C = np.zeros((m, cap), dtype=np.float32)
    delta = np.zeros((m, cap), dtype=np.float32)
    omega = np.ones((m, cap), dtype=np.float32)
    sw = np.zeros(cap, dtype=np.float32)
    wins = np.zeros(cap, dtype=np.int64)
    classes = np.full(cap, -1, dtype=np.int64)
    adj = np.zeros((cap, cap), dtype=np.bool_)
    act = np.zeros(cap, dtype=np.float32)
    n_nodes = np.zeros(epochs, dtype=np.int64)
    st = np.zeros(_N_STATE, dtype=np.int64)
    st[_MAXN] = cap

    if p.get("init", "first_sample") == "random":  # one random node before anything else
        x0 = torch.rand(m, generator=gen, dtype=torch.float32).numpy()
        C[:, 0] = x0
        sw[0] = np.float32(m)
        st[_K] = 1  # as the torch engine: not counted in history["inserted"]

    args = (
        _rates(p),
        np.float32(p["at"]),
        float(p["lp"]),
        age,
        np.float32(p["s"]),
        np.float32(p["minwd"]),
        p.get("distance", "weighted") == "weighted_sq",
        p.get("conn_metric", "euclid") == "sq",
        p.get("connection_refresh", "events") == "always",
        bool(p.get("count_all_wins", False)),
    )
    # at most: organisation, an open window (a) of age - 1 samples and the window (c)
    n_total = epochs * n + (2 * age - 1 if conv_cpp else 0)
    draws_left = -(-n_total // n)
    per_call = max(1, _CHUNK // n)
    while st[_PHASE] != _DONE:
        if draws_left <= 0:  # cannot happen: the schedule is bounded by n_total
            raise RuntimeError("online engine ran out of sample draws")
        k = min(per_call, draws_left)
        draws_left -= k
        idx = torch.cat([_draw(n, gen, replacement) for _ in range(k)]).numpy()
        _run_chunk(
            X, y, idx, n, epochs * n, conv_cpp,
            C, delta, omega, sw, wins, classes, adj, act, st, n_nodes, *args,
        )  # fmt: skip

    return _result(st, n_nodes, C, delta, omega, wins, classes, adj)


def _result(st, n_nodes, C, delta, omega, wins, classes, adj) -> dict:
    """The K active nodes (feature-major buffers transposed back) and the history of a run."""
    K = int(st[_K])
    history = {
        "n_nodes": [int(v) for v in n_nodes] + [K],
        "inserted": int(st[_INS]),
        "removed": int(st[_REM]),
        "windows": int(st[_WIN]),
        "presented": int(st[_SEEN]),
    }
    return {
        "C": np.ascontiguousarray(C[:, :K].T),
        "delta": np.ascontiguousarray(delta[:, :K].T),
        "omega": np.ascontiguousarray(omega[:, :K].T),
        "wins": wins[:K].copy(),
        "classes": classes[:K].copy(),
        "adj": adj[:K, :K].copy(),
        "history": history,
    }


def to_node_state(out: dict, device="cpu"):
    """The result of :func:`run_online` as a :class:`~._nodes.NodeState` (capacity K), ready
    for ``RelevanceMapBase._store_map``."""
    from ._nodes import NodeState

    K, m = out["C"].shape
    state = NodeState(max(K, 1), m, torch.float32, device)
    state.K = K
    state.C[:K] = torch.from_numpy(out["C"])
    state.delta[:K] = torch.from_numpy(out["delta"])
    state.omega[:K] = torch.from_numpy(out["omega"])
    state.wins[:K] = torch.from_numpy(out["wins"])
    state.classes[:K] = torch.from_numpy(out["classes"])
    state.adj[:K, :K] = torch.from_numpy(out["adj"])
    return state


__all__ = ["available", "run_online", "supports", "to_node_state"]
