"""A compiled (numba) engine for SPEC.md §3: Batch SS-SOM one mini-batch at a time.

The tensorized engine (:mod:`._engine`) issues a few hundred small torch operations per batch
(about 2-3 ms of fixed cost, whatever the batch holds); on UCI-sized data a run presents 200 to
3,000 batches, so it takes seconds.  This engine runs each batch as plain loops over
fixed-capacity numpy arrays, with the node kernels (K1-K5, insertion, window) of
:mod:`._online_numba`, and is two orders of magnitude faster.  It is the CPU engine of
``BatchSSSOM`` whenever :func:`supports` accepts the flags; the torch engine remains the one for
CUDA and for the flags not listed there.

The rules are the torch engine's, step for step (Stage S steps 1-6, Stage U, window):

* grouped means (K6): float32 sums in batch order from zero, divided by the group size;
* update rounds (S5): K4 reads and writes one node only, so applying round by round equals
  applying each node's contributions in the order (kind: push < winner pull < neighbour pull,
  key) -- one stable sort of the contributions, then one pass;
* insertion candidates in ascending (mean activation, key), while capacity allows.

Arithmetic follows the oracle (``tests/oracles/batch_sssom.py``) as the online engine does; the
tests check agreement with the oracle to 1e-5 with identical structure.  Randomness is the torch
engine's stream: each draw of the CPU generator (a permutation, or N draws with replacement) is
split into ceil(N/B) batches; draws are made in Python in chunks and handed to the kernel, which
keeps its phase of the schedule between calls.
"""

from __future__ import annotations

import numpy as np
import torch

from ._online_numba import (
    _CONV_A,
    _CONV_C,
    _DONE,
    _INS,
    _K,
    _MAXN,
    _N_STATE,
    _ORG,
    _ORGANISATION,
    _PHASE,
    _SEEN,
    _T,
    _activations,
    _argmax,
    _close_window,
    _draw,
    _insert,
    _rates,
    _refresh_all,
    _refresh_incident,
    _result,
    _update,
    available,
    njit,
)

_F32 = np.float32
_CHUNK = 1 << 16  # indices handed to the kernel per call (whole draws; at least one draw)
_NODE_SHIFT = 45  # contribution sort key: node << 45 | kind << 43 | key (key < 2**43)
_KIND_SHIFT = 43
_MAX_CAPACITY = 1 << 17  # node ids must fit the sort key above
_KEY = 1 << 20
# flag bits handed to the kernel
_SQUARED, _CONN_SQ, _ALWAYS, _COUNT_ALL, _UNIT_BATCH, _UNSUP_PER_SAMPLE, _CONFLICT_PER_SAMPLE = (
    1 << k for k in range(7)
)
_CLONE_COPY = 1 << 7


def supports(p: dict) -> bool:
    """Whether this engine implements the effective parameters ``p``: every §3 flag except
    ``distance="reference"`` (R1), ``capacity="all_or_nothing"`` (R5),
    ``labelled_conflict="clone"``, ``unsup_threshold="mean"`` and ``convergence="reference"``
    (R8), which run on the torch engine."""
    return (
        p.get("distance", "weighted") in ("weighted", "weighted_sq")
        and p.get("capacity", "greedy") == "greedy"
        and p.get("labelled_conflict", "push") == "push"
        and p.get("unsup_threshold", "sample") == "sample"
        and p.get("convergence", "cpp") in ("cpp", "none")
        and int(p["max_nodes"]) < _MAX_CAPACITY
    )


def _flags(p: dict) -> int:
    f = 0
    f |= _SQUARED if p.get("distance", "weighted") == "weighted_sq" else 0
    f |= _CONN_SQ if p.get("conn_metric", "euclid") == "sq" else 0
    f |= _ALWAYS if p.get("connection_refresh", "events") == "always" else 0
    f |= _COUNT_ALL if p.get("count_all_wins", False) else 0
    f |= _UNIT_BATCH if p.get("count_unit", "sample") == "batch" else 0
    f |= _UNSUP_PER_SAMPLE if p.get("unsup_insert", "group") == "per_sample" else 0
    f |= _CONFLICT_PER_SAMPLE if p.get("conflict_update", "grouped") == "per_sample" else 0
    f |= _CLONE_COPY if p.get("clone_wins", "zero") == "copy" else 0
    return f


# --------------------------------------------------------------------------- K6 helpers
@njit(cache=True)
def _groups(keys):
    """Stable grouping of ``keys``: (order, starts, n_groups); group g is
    ``order[starts[g]:starts[g + 1]]``, groups in ascending key, members in input order."""
    n = keys.shape[0]
    order = np.argsort(keys, kind="mergesort")
    starts = np.empty(n + 1, np.int64)
    g = 0
    for r in range(n):
        if r == 0 or keys[order[r]] != keys[order[r - 1]]:
            starts[g] = r
            g += 1
    starts[g] = n
    return order, starts, g


@njit(cache=True)
def _mean_rows(Xs, sel, order, lo, hi, out):
    """K6: float32 sum of rows ``Xs[sel[order[lo:hi]]]`` in that order, then / count."""
    m = Xs.shape[1]
    for i in range(m):
        out[i] = _F32(0.0)
    for r in range(lo, hi):
        row = Xs[sel[order[r]]]
        for i in range(m):
            out[i] += row[i]
    cnt = _F32(hi - lo)
    for i in range(m):
        out[i] = out[i] / cnt


@njit(cache=True)
def _mean_act(a, sel, order, lo, hi):
    acc = _F32(0.0)
    for r in range(lo, hi):
        acc += a[sel[order[r]]]
    return acc / _F32(hi - lo)


# --------------------------------------------------------------------------- S5 / S6
@njit(cache=True)
def _degree(node, adj, K):
    d = 0
    for k in range(K):
        if adj[node, k]:
            d += 1
    return d


@njit(cache=True)
def _add_pulls(node, row, key, adj, K, c_key, c_row, c_rate, nc):
    """Winner pull of ``node`` (rate eb) and pulls of its current neighbours (e_n), same key."""
    c_key[nc] = (node << _NODE_SHIFT) | (1 << _KIND_SHIFT) | key
    c_row[nc] = row
    c_rate[nc] = 0
    nc += 1
    for k in range(K):
        if adj[node, k]:
            c_key[nc] = (k << _NODE_SHIFT) | (2 << _KIND_SHIFT) | key
            c_row[nc] = row
            c_rate[nc] = 1
            nc += 1
    return nc


@njit(cache=True)
def _apply(rows, c_key, c_row, c_rate, nc, C, delta, omega, sw, rates, s32):
    """S5: every node's contributions in (kind, key) order; K4 touches one node only, so this
    equals the rounds of SPEC §3."""
    order = np.argsort(c_key[:nc], kind="mergesort")
    for r in range(nc):
        c = order[r]
        _update(c_key[c] >> _NODE_SHIFT, rows[c_row[c]], C, delta, omega, sw, rates[c_rate[c]], s32)


@njit(cache=True)
def _insert_candidates(
    cand_X, cand_cls, cand_act, cand_key, n_cand,
    C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq,
):  # fmt: skip
    """S6 greedy: ascending (mean activation, key) while K < max_nodes."""
    if n_cand == 0:
        return
    by_key = np.argsort(cand_key[:n_cand], kind="mergesort")
    by_act = np.argsort(cand_act[:n_cand][by_key], kind="mergesort")
    for r in range(n_cand):
        if st[_K] >= st[_MAXN]:
            break
        c = by_key[by_act[r]]
        _insert(
            cand_X[c], cand_cls[c], C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq
        )


# --------------------------------------------------------------------------- one batch (§3)
@njit(cache=True)
def _init_map(Xb, yb, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq):
    """Empty map: one node per distinct label (ascending, unlabelled last) at its mean."""
    n, m = Xb.shape
    keys = np.empty(n, np.int64)
    for i in range(n):
        keys[i] = yb[i] if yb[i] >= 0 else _KEY - 1
    sel = np.arange(n)
    order, starts, g = _groups(keys)
    x = np.empty(m, np.float32)
    for k in range(g):
        if st[_K] >= st[_MAXN]:
            break
        _mean_rows(Xb, sel, order, starts[k], starts[k + 1], x)
        lab = keys[order[starts[k]]]
        _insert(x, lab if lab != _KEY - 1 else -1, C, delta, omega, sw, wins, classes, adj, st,
                minwd32, conn_sq)  # fmt: skip
    _refresh_all(st[_K], omega, classes, adj, minwd32, conn_sq)


@njit(cache=True)
def _stage_s(
    Xb, yb, sel, C, delta, omega, sw, wins, classes, adj, st,
    rates, at32, s32, minwd32, flags, n_classes,
):  # fmt: skip
    """Stage S of SPEC §3 on the labelled rows ``sel`` of the batch."""
    nS = sel.shape[0]
    m = Xb.shape[1]
    K0 = st[_K]
    squared = (flags & _SQUARED) != 0
    conn_sq = (flags & _CONN_SQ) != 0
    always = (flags & _ALWAYS) != 0
    unit = (flags & _UNIT_BATCH) != 0
    C1 = n_classes + 1
    # step 1: activations on the stage-start map
    A = np.empty((nS, K0), np.float32)
    a = np.empty(nS, np.float32)
    w = np.empty(nS, np.int64)
    for r in range(nS):
        _activations(Xb[sel[r]], C, omega, sw, K0, squared, A[r])
        w[r] = _argmax(A[r], K0)
        a[r] = A[r, w[r]]
    # classify: 0 = low compatible (step 2), 1 = high compatible (step 3), 2 = conflict (step 4)
    kind = np.empty(nS, np.int64)
    n_low = n_high = n_conf = 0
    for r in range(nS):
        cw = classes[w[r]]
        if cw == yb[sel[r]] or cw == -1:
            if a[r] < at32:
                kind[r] = 0
                n_low += 1
            else:
                kind[r] = 1
                n_high += 1
        else:
            kind[r] = 2
            n_conf += 1

    rows = np.empty((nS, m), np.float32)  # group means (pull targets)
    n_rows = 0
    cand_X = np.empty((nS, m), np.float32)
    cand_cls = np.empty(nS, np.int64)
    cand_act = np.empty(nS, np.float32)
    cand_key = np.empty(nS, np.int64)
    n_cand = 0

    # step 2: compatible and novel -> one candidate per (winner, label)
    if n_low:
        idx = np.empty(n_low, np.int64)
        keys = np.empty(n_low, np.int64)
        q = 0
        for r in range(nS):
            if kind[r] == 0:
                idx[q] = r
                keys[q] = w[r] * C1 + yb[sel[r]] + 1
                q += 1
        order, starts, g = _groups(keys)
        sel_idx = sel[idx]
        for k in range(g):
            lo, hi = starts[k], starts[k + 1]
            r0 = idx[order[lo]]
            _mean_rows(Xb, sel_idx, order, lo, hi, cand_X[n_cand])
            cand_act[n_cand] = _mean_act(a, idx, order, lo, hi)
            lab = yb[sel[r0]]
            cand_cls[n_cand] = lab
            cand_key[n_cand] = (2 * _KEY + w[r0]) * _KEY + lab + 1
            n_cand += 1

    # step 3: compatible and active -> groups (winner j, label l); clones for extra labels
    n_targets = 0
    targets = np.empty(n_high, np.int64)
    target_row = np.empty(n_high, np.int64)
    target_key = np.empty(n_high, np.int64)
    if n_high:
        idx = np.empty(n_high, np.int64)
        keys = np.empty(n_high, np.int64)
        q = 0
        for r in range(nS):
            if kind[r] == 1:
                idx[q] = r
                keys[q] = w[r] * C1 + yb[sel[r]] + 1
                q += 1
        order, starts, g = _groups(keys)
        sel_idx = sel[idx]
        room = st[_MAXN] - st[_K]
        copy_wins = (flags & _CLONE_COPY) != 0
        prev_j = -1
        for k in range(g):
            lo, hi = starts[k], starts[k + 1]
            r0 = idx[order[lo]]
            j = w[r0]
            lab = yb[sel[r0]]
            if j != prev_j:  # j's smallest label: j itself
                node = j
                prev_j = j
            else:  # a clone of j for each further label, while capacity allows
                if room <= 0:
                    continue  # dropped: no node for this label
                room -= 1
                node = st[_K]
                for i in range(m):
                    C[i, node] = C[i, j]
                    delta[i, node] = delta[i, j]
                    omega[i, node] = omega[i, j]
                sw[node] = sw[j]
                wins[node] = wins[j] if copy_wins else 0
                st[_K] = node + 1
                st[_INS] += 1
            classes[node] = lab
            wins[node] += 1 if unit else hi - lo
            _mean_rows(Xb, sel_idx, order, lo, hi, rows[n_rows])
            targets[n_targets] = node
            target_row[n_targets] = n_rows
            target_key[n_targets] = (3 * _KEY + j) * _KEY + lab + 1
            n_targets += 1
            n_rows += 1
        if not always:  # incident edges after class assignment, before any update
            for t in range(n_targets):
                _refresh_incident(targets[t], st[_K], omega, classes, adj, minwd32, conn_sq)

    # step 4: conflicts; s' among the stage-start nodes, classes read after step 3
    n_push = 0
    push_node = np.empty(n_conf, np.int64)
    push_row = np.empty(n_conf, np.int64)
    push_key = np.empty(n_conf, np.int64)
    sprime = np.empty(n_conf, np.int64)
    if n_conf:
        idx = np.empty(n_conf, np.int64)
        sp = np.empty(n_conf, np.int64)
        n_found = 0
        for r in range(nS):
            if kind[r] == 2:
                y = yb[sel[r]]
                best = -1
                for j in range(K0):
                    if A[r, j] >= at32 and (classes[j] == y or classes[j] == -1):
                        if best < 0 or A[r, j] > A[r, best]:
                            best = j
                idx[n_found] = r
                sp[n_found] = best
                n_found += 1
        # not found -> insertion candidates per (winner, label)
        n_nf = 0
        for q in range(n_conf):
            if sp[q] < 0:
                n_nf += 1
        if n_nf:
            nf = np.empty(n_nf, np.int64)
            keys = np.empty(n_nf, np.int64)
            z = 0
            for q in range(n_conf):
                if sp[q] < 0:
                    nf[z] = idx[q]
                    keys[z] = w[idx[q]] * C1 + yb[sel[idx[q]]] + 1
                    z += 1
            order, starts, g = _groups(keys)
            sel_nf = sel[nf]
            for k in range(g):
                lo, hi = starts[k], starts[k + 1]
                r0 = nf[order[lo]]
                _mean_rows(Xb, sel_nf, order, lo, hi, cand_X[n_cand])
                cand_act[n_cand] = _mean_act(a, nf, order, lo, hi)
                lab = yb[sel[r0]]
                cand_cls[n_cand] = lab
                cand_key[n_cand] = (2 * _KEY + w[r0]) * _KEY + lab + 1
                n_cand += 1
        n_f = n_conf - n_nf
        if n_f:
            fd = np.empty(n_f, np.int64)
            keys = np.empty(n_f, np.int64)
            z = 0
            for q in range(n_conf):
                if sp[q] >= 0:
                    fd[z] = idx[q]
                    keys[z] = w[idx[q]] * K0 + sp[q]
                    if (flags & _CONFLICT_PER_SAMPLE) != 0:  # each sample its own group
                        keys[z] = keys[z] * nS + z
                    sp[z] = sp[q]  # compacted in place (z <= q)
                    z += 1
            order, starts, g = _groups(keys)
            sel_fd = sel[fd]
            for k in range(g):
                lo, hi = starts[k], starts[k + 1]
                r0 = fd[order[lo]]
                s2 = sp[order[lo]]
                _mean_rows(Xb, sel_fd, order, lo, hi, rows[n_rows])
                wins[s2] += 1 if unit else hi - lo
                push_node[n_push] = w[r0]
                push_row[n_push] = n_rows
                push_key[n_push] = 4 * _KEY * _KEY + k  # ascending (w, s'[, position])
                sprime[n_push] = s2
                n_push += 1
                n_rows += 1

    # step 5: contributions from the edges as they now are, then one ordered pass
    K = st[_K]
    if always and (n_targets + n_push) > 0:
        _refresh_all(K, omega, classes, adj, minwd32, conn_sq)
    n_contrib = n_push
    for t in range(n_targets):
        n_contrib += 1 + _degree(targets[t], adj, K)
    for q in range(n_push):
        n_contrib += 1 + _degree(sprime[q], adj, K)
    c_key = np.empty(n_contrib, np.int64)
    c_row = np.empty(n_contrib, np.int64)
    c_rate = np.empty(n_contrib, np.int64)
    nc = 0
    for q in range(n_push):
        c_key[nc] = (push_node[q] << _NODE_SHIFT) | push_key[q]  # kind 0
        c_row[nc] = push_row[q]
        c_rate[nc] = 2
        nc += 1
    for t in range(n_targets):
        nc = _add_pulls(targets[t], target_row[t], target_key[t], adj, K, c_key, c_row, c_rate, nc)
    for q in range(n_push):
        nc = _add_pulls(sprime[q], push_row[q], push_key[q], adj, K, c_key, c_row, c_rate, nc)
    _apply(rows, c_key, c_row, c_rate, nc, C, delta, omega, sw, rates, s32)
    # step 6
    _insert_candidates(cand_X, cand_cls, cand_act, cand_key, n_cand,
                       C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq)  # fmt: skip


@njit(cache=True)
def _stage_u(
    Xb, sel, C, delta, omega, sw, wins, classes, adj, st, rates, at32, s32, minwd32, flags,
):  # fmt: skip
    """Stage U of SPEC §3 on the unlabelled rows ``sel`` (activations on the post-S map)."""
    nU = sel.shape[0]
    m = Xb.shape[1]
    K = st[_K]
    squared = (flags & _SQUARED) != 0
    conn_sq = (flags & _CONN_SQ) != 0
    unit = (flags & _UNIT_BATCH) != 0
    act = np.empty(K, np.float32)
    a = np.empty(nU, np.float32)
    w = np.empty(nU, np.int64)
    n_low = 0
    for r in range(nU):
        _activations(Xb[sel[r]], C, omega, sw, K, squared, act)
        w[r] = _argmax(act, K)
        a[r] = act[w[r]]
        if a[r] < at32:
            n_low += 1
    n_high = nU - n_low
    low = np.empty(n_low, np.int64)
    high = np.empty(n_high, np.int64)
    lk = np.empty(n_low, np.int64)
    hk = np.empty(n_high, np.int64)
    ql = qh = 0
    per_sample = (flags & _UNSUP_PER_SAMPLE) != 0
    for r in range(nU):
        if a[r] < at32:
            if (flags & _COUNT_ALL) != 0:
                wins[w[r]] += 1
            low[ql] = r
            lk[ql] = w[r] * nU + r if per_sample else w[r]
            ql += 1
        else:
            high[qh] = r
            hk[qh] = w[r]
            qh += 1
    if n_high:
        if (flags & _ALWAYS) != 0:
            _refresh_all(K, omega, classes, adj, minwd32, conn_sq)
        order, starts, g = _groups(hk)
        sel_high = sel[high]
        rows = np.empty((g, m), np.float32)
        n_contrib = 0
        for k in range(g):
            n_contrib += 1 + _degree(hk[order[starts[k]]], adj, K)
        c_key = np.empty(n_contrib, np.int64)
        c_row = np.empty(n_contrib, np.int64)
        c_rate = np.empty(n_contrib, np.int64)
        nc = 0
        for k in range(g):
            lo, hi = starts[k], starts[k + 1]
            j = hk[order[lo]]
            wins[j] += 1 if unit else hi - lo
            _mean_rows(Xb, sel_high, order, lo, hi, rows[k])
            nc = _add_pulls(j, k, (6 * _KEY + j) * _KEY, adj, K, c_key, c_row, c_rate, nc)
        _apply(rows, c_key, c_row, c_rate, nc, C, delta, omega, sw, rates, s32)
    if n_low:
        order, starts, g = _groups(lk)
        sel_low = sel[low]
        cand_X = np.empty((g, m), np.float32)
        cand_cls = np.full(g, -1, np.int64)
        cand_act = np.empty(g, np.float32)
        cand_key = np.empty(g, np.int64)
        for k in range(g):
            lo, hi = starts[k], starts[k + 1]
            r0 = low[order[lo]]
            _mean_rows(Xb, sel_low, order, lo, hi, cand_X[k])
            cand_act[k] = _mean_act(a, low, order, lo, hi)
            cand_key[k] = (5 * _KEY + w[r0]) * _KEY + (r0 if per_sample else 0)
        _insert_candidates(
            cand_X, cand_cls, cand_act, cand_key, g,
            C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq,
        )  # fmt: skip


@njit(cache=True)
def _batch(
    X, y, idx, C, delta, omega, sw, wins, classes, adj, st,
    rates, at32, lp, age, s32, minwd32, flags, n_classes,
):  # fmt: skip
    """One batch (sample indices ``idx``), then the window check; True when a window closed."""
    Xb = X[idx]
    yb = y[idx]
    n = idx.shape[0]
    conn_sq = (flags & _CONN_SQ) != 0
    if st[_K] == 0:
        _init_map(Xb, yb, C, delta, omega, sw, wins, classes, adj, st, minwd32, conn_sq)
    else:
        n_lab = 0
        for i in range(n):
            if yb[i] >= 0:
                n_lab += 1
        lab = np.empty(n_lab, np.int64)
        unl = np.empty(n - n_lab, np.int64)
        ql = qu = 0
        for i in range(n):
            if yb[i] >= 0:
                lab[ql] = i
                ql += 1
            else:
                unl[qu] = i
                qu += 1
        if n_lab:
            _stage_s(Xb, yb, lab, C, delta, omega, sw, wins, classes, adj, st,
                     rates, at32, s32, minwd32, flags, n_classes)  # fmt: skip
        if n - n_lab:
            _stage_u(Xb, unl, C, delta, omega, sw, wins, classes, adj, st,
                     rates, at32, s32, minwd32, flags)  # fmt: skip
    st[_T] += 1 if (flags & _UNIT_BATCH) != 0 else n
    if st[_T] >= age:
        _close_window(C, delta, omega, sw, wins, classes, adj, st, lp, minwd32, conn_sq)
        return True
    return False


@njit(cache=True)
def _run_chunk(
    X, y, idx, B, n_org, conv_cpp, C, delta, omega, sw, wins, classes, adj, st, n_nodes,
    rates, at32, lp, age, s32, minwd32, flags, n_classes,
):  # fmt: skip
    """Present the batches of ``idx`` (whole draws of N indices, each split into ceil(N/B)
    batches) through the phases organisation -> convergence (a) -> (b) freeze -> (c) -> done;
    ``n_nodes[e]`` gets K after epoch e.  Returns the number of indices consumed."""
    n = X.shape[0]
    nb = -(-n // B)
    pos = 0
    while True:
        if st[_PHASE] == _ORGANISATION and st[_ORG] >= n_org:
            st[_PHASE] = _CONV_A if conv_cpp else _DONE
        if st[_PHASE] == _CONV_A and st[_T] == 0:  # (a) done: (b) freeze insertion
            st[_MAXN] = st[_K]
            st[_PHASE] = _CONV_C if age > 0 else _DONE
        if st[_PHASE] == _DONE or pos >= idx.shape[0]:
            return pos
        length = min(B, n - pos % n)  # batches never cross draws
        batch = idx[pos : pos + length]
        pos += length
        st[_SEEN] += length
        closed = _batch(X, y, batch, C, delta, omega, sw, wins, classes, adj, st,
                        rates, at32, lp, age, s32, minwd32, flags, n_classes)  # fmt: skip
        if st[_PHASE] == _ORGANISATION:
            st[_ORG] += 1
            if st[_ORG] % nb == 0:
                n_nodes[st[_ORG] // nb - 1] = st[_K]
        elif st[_PHASE] == _CONV_C and closed:  # (c) ends with the window it opened
            st[_PHASE] = _DONE


def run_batch(X: np.ndarray, y: np.ndarray, p: dict, gen: torch.Generator) -> dict:
    """Train one Batch SS-SOM map (SPEC §3) with the compiled engine.

    Same arguments and result as :func:`._online_numba.run_online` (``p`` also carries
    ``batch_size`` and ``n_classes``); ``history["n_nodes"]`` holds K after each epoch, then K at
    the end.
    """
    if not supports(p):
        raise NotImplementedError(
            "run_batch implements SPEC §3 except distance='reference', "
            "capacity='all_or_nothing', labelled_conflict='clone', unsup_threshold='mean' and "
            "convergence='reference'; use the torch engine for those"
        )
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.int64)
    n, m = X.shape
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    B = max(1, int(p.get("batch_size", 1)))
    cap = int(p["max_nodes"])
    epochs = int(p["epochs"])
    age = int(p["age_wins_samples"])
    conv_cpp = p.get("convergence", "cpp") == "cpp"
    replacement = p.get("sampling", "permutation") == "replacement"
    nb = -(-n // B)

    C = np.zeros((m, cap), dtype=np.float32)  # node-major columns, as the online engine
    delta = np.zeros((m, cap), dtype=np.float32)
    omega = np.ones((m, cap), dtype=np.float32)
    sw = np.zeros(cap, dtype=np.float32)
    wins = np.zeros(cap, dtype=np.int64)
    classes = np.full(cap, -1, dtype=np.int64)
    adj = np.zeros((cap, cap), dtype=np.bool_)
    n_nodes = np.zeros(epochs, dtype=np.int64)
    st = np.zeros(_N_STATE, dtype=np.int64)
    st[_MAXN] = cap

    if p.get("init", "first_sample") == "random":  # one random node before the first batch
        C[:, 0] = torch.rand(m, generator=gen, dtype=torch.float32).numpy()
        sw[0] = np.float32(m)
        st[_K] = 1

    args = (
        _rates(p),
        np.float32(p["at"]),
        float(p["lp"]),
        age,
        np.float32(p["s"]),
        np.float32(p["minwd"]),
        _flags(p),
        int(p.get("n_classes", 0)),
    )
    per_call = max(1, _CHUNK // n)
    # the schedule ends: every batch advances t by at least 1, so each window closes
    limit = epochs + 4 * (age + B) + 4
    drawn = 0
    while st[_PHASE] != _DONE:
        if drawn > limit:  # pragma: no cover - a logic error, not a user error
            raise RuntimeError("batch engine ran out of sample draws")
        idx = torch.cat([_draw(n, gen, replacement) for _ in range(per_call)]).numpy()
        drawn += per_call
        _run_chunk(
            X, y, idx, B, epochs * nb, conv_cpp,
            C, delta, omega, sw, wins, classes, adj, st, n_nodes, *args,
        )  # fmt: skip

    return _result(st, n_nodes, C, delta, omega, wins, classes, adj)


__all__ = ["available", "run_batch", "supports"]
