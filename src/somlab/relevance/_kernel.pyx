# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled CPU engine of the relevance maps: SPEC.md §3 (Batch SS-SOM), with §2 (SS-SOM,
LARFDSSOM) as its batch size 1 case -- one kernel.

Built ahead of time (setup.py, as scikit-learn builds its Cython), so the first fit pays no
compilation.  Every function below runs without the GIL on raw C arrays; :func:`run_chunk`
releases it for a whole chunk of sample draws, so several maps train at once on several threads
(:func:`somlab.relevance._fit.fit_many`).

Storage is feature-major ("node-major columns"): ``C[i * cap + j]`` is feature i of node j, so
the activation loop runs over nodes innermost and vectorises without changing any node's
rounding.  Arithmetic follows the oracles (``tests/oracles``): float32 everywhere,

* K1/K2 ``S_j = sum_i omega_ji (x_i - c_ji)^2`` (features in order), ``a_j = sw_j / (sw_j + D_j +
  1e-7)`` with ``sw_j = sum_i omega_ji`` cached per node;
* K3 ``q = s (dmax - dmin)``, ``omega_i = 1 / (1 + exp((delta_i - mean) / q))``;
* K4 scalars ``1 - e beta``, ``e beta``, ``e`` formed in float64 and rounded once (Python side);
* thresholds rounded to float32; K6 means are float32 sums in batch order / count.

The rules are those of the tensorized engine, step for step (Stage S steps 1-6, Stage U,
window, schedule):

* update rounds (S5): K4 reads and writes one node only, so applying round by round equals
  applying each node's contributions in (kind: push < winner pull < neighbour pull, key) order:
  one stable sort of the contributions, then one pass;
* insertion candidates in ascending (mean activation, key) while capacity allows.
"""

from libc.math cimport expf, fabsf, isfinite, sqrtf
from libc.stdint cimport int64_t
from libc.stdlib cimport abort, free, malloc, qsort
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

cnp.import_array()

# indices into the int64 state vector (shared with _engine_cpu.py)
DEF S_K = 0
DEF S_T = 1
DEF S_MAXN = 2
DEF S_PHASE = 3
DEF S_ORG = 4
DEF S_INS = 5
DEF S_REM = 6
DEF S_WIN = 7
DEF S_SEEN = 8
DEF N_STATE = 9
# phases of the schedule
DEF ORGANISATION = 0
DEF CONV_A = 1
DEF CONV_C = 2
DEF DONE = 3
# flag bits
DEF F_SQUARED = 1
DEF F_CONN_SQ = 2
DEF F_ALWAYS = 4
DEF F_COUNT_ALL = 8
DEF F_UNIT_BATCH = 16
DEF F_UNSUP_PER_SAMPLE = 32
DEF F_CONFLICT_PER_SAMPLE = 64
DEF F_CLONE_COPY = 128
# contribution sort key: node << 45 | kind << 43 | key (key < 2**43)
DEF NODE_SHIFT = 45
DEF KIND_SHIFT = 43
DEF N_SLOTS = 32
DEF SMALL_SORT = 32  # at most this many keys: insertion sort instead of qsort

N_STATE_PY = N_STATE
FLAG_BITS = dict(
    squared=F_SQUARED,
    conn_sq=F_CONN_SQ,
    always=F_ALWAYS,
    count_all=F_COUNT_ALL,
    unit_batch=F_UNIT_BATCH,
    unsup_per_sample=F_UNSUP_PER_SAMPLE,
    conflict_per_sample=F_CONFLICT_PER_SAMPLE,
    clone_copy=F_CLONE_COPY,
)
MAX_CAPACITY = 1 << 17  # node ids must fit the sort key

cdef int64_t KEY = 1 << 20


ctypedef struct Map:
    int64_t m
    int64_t cap
    float* C
    float* delta
    float* omega
    float* sw
    int64_t* wins
    int64_t* classes
    unsigned char* adj
    int64_t* st
    int64_t* n_nodes
    float* rates  # 3 x 3: (1 - e beta, e beta, e) for eb, e_n, -e_push
    float at32
    float s32
    float minwd32
    double lp
    int64_t age
    int flags
    int64_t n_classes
    void* wbuf[N_SLOTS]  # scratch buffers, grown on demand, kept for the whole run
    size_t wsize[N_SLOTS]


ctypedef struct Pair:
    int64_t key
    int64_t idx


ctypedef struct Triple:
    float act
    int64_t key
    int64_t idx


cdef void* _buf(Map* M, int slot, size_t nbytes) noexcept nogil:
    """Scratch buffer ``slot`` of at least ``nbytes`` (grown geometrically, never shrunk)."""
    cdef size_t size
    if nbytes > M.wsize[slot]:
        size = nbytes if nbytes > 2 * M.wsize[slot] else 2 * M.wsize[slot]
        free(M.wbuf[slot])
        M.wbuf[slot] = malloc(size)
        if M.wbuf[slot] == NULL:
            abort()
        M.wsize[slot] = size
    return M.wbuf[slot]


cdef int _cmp_pair(const void* pa, const void* pb) noexcept nogil:
    cdef const Pair* a = <const Pair*>pa
    cdef const Pair* b = <const Pair*>pb
    if a.key < b.key:
        return -1
    if a.key > b.key:
        return 1
    return (a.idx > b.idx) - (a.idx < b.idx)


cdef int _cmp_triple(const void* pa, const void* pb) noexcept nogil:
    cdef const Triple* a = <const Triple*>pa
    cdef const Triple* b = <const Triple*>pb
    if a.act < b.act:
        return -1
    if a.act > b.act:
        return 1
    if a.key < b.key:
        return -1
    if a.key > b.key:
        return 1
    return (a.idx > b.idx) - (a.idx < b.idx)


cdef void _insertion_sort_triples(Triple* buf, int64_t n) noexcept nogil:
    """Sort ``buf[:n]`` as ``qsort`` with :func:`_cmp_triple` does (a total order: idx is
    unique), without its calls through a pointer."""
    cdef int64_t r, q
    cdef Triple t
    for r in range(1, n):
        t = buf[r]
        q = r
        while q > 0 and _cmp_triple(&buf[q - 1], &t) > 0:
            buf[q] = buf[q - 1]
            q -= 1
        buf[q] = t


cdef void _argsort(Map* M, const int64_t* keys, int64_t n, int64_t* order) noexcept nogil:
    """Stable argsort of ``keys[:n]`` into ``order``."""
    cdef Pair* buf
    cdef int64_t r, q, key
    if n <= 0:
        return
    if n <= SMALL_SORT:  # insertion sort: keys in input order, so equal keys stay in order
        for r in range(n):
            key = keys[r]
            q = r
            while q > 0 and keys[order[q - 1]] > key:
                order[q] = order[q - 1]
                q -= 1
            order[q] = r
        return
    buf = <Pair*>_buf(M, 26, n * sizeof(Pair))
    for r in range(n):
        buf[r].key = keys[r]
        buf[r].idx = r
    qsort(buf, n, sizeof(Pair), _cmp_pair)
    for r in range(n):
        order[r] = buf[r].idx


cdef int64_t _groups(Map* M, const int64_t* keys, int64_t n, int64_t* order, int64_t* starts) noexcept nogil:
    """Stable grouping: group g is ``order[starts[g]:starts[g + 1]]``, groups in ascending key,
    members in input order.  Returns the number of groups."""
    cdef int64_t r, g = 0
    _argsort(M, keys, n, order)
    for r in range(n):
        if r == 0 or keys[order[r]] != keys[order[r - 1]]:
            starts[g] = r
            g += 1
    starts[g] = n
    return g


# --------------------------------------------------------------------------- kernels (SPEC §1)
cdef extern from "_simd.h" nogil:
    int64_t somlab_activations(const float* x, const float* C, const float* omega,
                               const float* sw, int64_t m, int64_t cap, int64_t K, int squared,
                               float* act)
    void somlab_omega_sq_dist(const float* omega, int64_t m, int64_t cap, int64_t i,
                              int64_t k0, int64_t K, float* out)


cdef inline int64_t _activations(Map* M, const float* x, int64_t K, float* act) noexcept nogil:
    """K1 + K2 for every active node: ``act[j] = sw_j / (sw_j + D_j(x) + eps)`` (in
    ``_simd.h``); returns the winner, the first maximum (ties -> lowest index)."""
    return somlab_activations(x, M.C, M.omega, M.sw, M.m, M.cap, K,
                              (M.flags & F_SQUARED) != 0, act)


cdef void _relevance(Map* M, int64_t j, float dmax, float dmin, float dsum) noexcept nogil:
    """K3 on node j from its deltas' max, min and float32 sum in feature order (ones when q is 0
    or not finite); refreshes the cached sum ``sw_j``."""
    cdef int64_t i, m = M.m, cap = M.cap
    cdef float dmean, q, z, w, total = 0.0
    cdef float* dj = M.delta + j
    cdef float* oj = M.omega + j
    dmean = dsum / <float>m
    q = (dmax - dmin) * M.s32
    if q > 0 and isfinite(q):
        for i in range(m):
            z = (dj[i * cap] - dmean) / q
            w = <float>1.0 / (<float>1.0 + expf(z))
            oj[i * cap] = w
            total += w
    else:
        for i in range(m):
            oj[i * cap] = 1.0
            total += <float>1.0
    M.sw[j] = total


cdef inline void _update(Map* M, int64_t j, const float* x, int r) noexcept nogil:
    """K4 U(j, x, e) with rate row r: delta with the old centre, omega = K3, then the centre.
    One pass forms the deltas (and their max, min, sum) and moves the centre (K3 does not read
    it), a second one the relevances."""
    cdef float keep = M.rates[3 * r], eb = M.rates[3 * r + 1], e = M.rates[3 * r + 2]
    cdef int64_t i, m = M.m, cap = M.cap
    cdef float* Cj = M.C + j
    cdef float* dj = M.delta + j
    cdef float c, d, v, dmax, dmin, dsum
    # feature 0 first: max and min start from it, as K3 defines them
    c = Cj[0]
    d = x[0] - c
    v = keep * dj[0] + eb * fabsf(d)
    dj[0] = v
    Cj[0] = c + e * d
    dmax = v
    dmin = v
    dsum = <float>0.0 + v
    for i in range(1, m):
        c = Cj[i * cap]
        d = x[i] - c
        v = keep * dj[i * cap] + eb * fabsf(d)
        dj[i * cap] = v
        Cj[i * cap] = c + e * d
        dsum += v
        if v > dmax:
            dmax = v
        if v < dmin:
            dmin = v
    _relevance(M, j, dmax, dmin, dsum)


cdef inline bint _linked(Map* M, int64_t i, int64_t k, float sq) noexcept nogil:
    """K5 from the squared omega distance ``sq`` of nodes i, k: ``||omega_i - omega_k|| < minwd``
    (squared with ``conn_metric="sq"``) and classes equal or either unlabelled."""
    cdef int64_t ci = M.classes[i], ck = M.classes[k]
    cdef float dist
    if not (ci == ck or ci == -1 or ck == -1):
        return False
    dist = sq if (M.flags & F_CONN_SQ) else sqrtf(sq)
    return dist < M.minwd32


cdef void _refresh_incident(Map* M, int64_t i, int64_t K) noexcept nogil:
    """K5 for every pair (i, k), k != i, written symmetrically; no self loop."""
    cdef int64_t k, cap = M.cap
    cdef unsigned char v
    cdef float* sq = <float*>_buf(M, 31, (K if K > 0 else 1) * sizeof(float))
    somlab_omega_sq_dist(M.omega, M.m, cap, i, 0, K, sq)
    for k in range(K):
        v = 0 if k == i else _linked(M, i, k, sq[k])
        M.adj[i * cap + k] = v
        M.adj[k * cap + i] = v


cdef void _refresh_all(Map* M, int64_t K) noexcept nogil:
    cdef int64_t i, k, cap = M.cap
    cdef unsigned char v
    cdef float* sq = <float*>_buf(M, 31, (K if K > 0 else 1) * sizeof(float))
    for i in range(K):
        M.adj[i * cap + i] = 0
        somlab_omega_sq_dist(M.omega, M.m, cap, i, i + 1, K, sq)
        for k in range(i + 1, K):
            v = _linked(M, i, k, sq[k - i - 1])
            M.adj[i * cap + k] = v
            M.adj[k * cap + i] = v


cdef void _insert(Map* M, const float* x, int64_t cls) noexcept nogil:
    """New node last (slot K): c = x, delta = 0, omega = 1, wins = 0, its edges (K5)."""
    cdef int64_t K = M.st[S_K], i, cap = M.cap
    for i in range(M.m):
        M.C[i * cap + K] = x[i]
        M.delta[i * cap + K] = 0.0
        M.omega[i * cap + K] = 1.0
    M.sw[K] = <float>M.m
    M.wins[K] = 0
    M.classes[K] = cls
    M.st[S_K] = K + 1
    M.st[S_INS] += 1
    _refresh_incident(M, K, K + 1)


cdef void _close_window(Map* M) noexcept nogil:
    """Remove nodes with wins < lp t; keep the node with most wins when none passes (ties ->
    lowest index); compact in logical order; wins <- 0, t <- 0; all edges."""
    cdef int64_t K = M.st[S_K], j, k, i, best, keep_only, n_keep = 0, cap = M.cap
    cdef float thr = <float>(M.lp * M.st[S_T])
    cdef bint kept
    for j in range(K):
        if not (<float>M.wins[j] < thr):
            n_keep += 1
    keep_only = -1
    if n_keep == 0 and K > 0:
        best = 0
        for j in range(1, K):
            if M.wins[j] > M.wins[best]:
                best = j
        keep_only = best
    k = 0
    for j in range(K):
        if keep_only >= 0:
            kept = j == keep_only
        else:
            kept = not (<float>M.wins[j] < thr)
        if kept:
            if k != j:
                for i in range(M.m):
                    M.C[i * cap + k] = M.C[i * cap + j]
                    M.delta[i * cap + k] = M.delta[i * cap + j]
                    M.omega[i * cap + k] = M.omega[i * cap + j]
                M.sw[k] = M.sw[j]
                M.classes[k] = M.classes[j]
            k += 1
    M.st[S_REM] += K - k
    M.st[S_K] = k
    for j in range(k):
        M.wins[j] = 0
    M.st[S_T] = 0
    M.st[S_WIN] += 1
    _refresh_all(M, k)


# --------------------------------------------------------------------------- K6 helpers
cdef void _mean_rows(const float* X, int64_t m, const int64_t* rows, const int64_t* order,
                     int64_t lo, int64_t hi, float* out) noexcept nogil:
    """K6: float32 sum of the sample rows ``rows[order[lo:hi]]`` in that order, then / count."""
    cdef int64_t i, r
    cdef const float* row
    cdef float cnt = <float>(hi - lo)
    for i in range(m):
        out[i] = 0.0
    for r in range(lo, hi):
        row = X + rows[order[r]] * m
        for i in range(m):
            out[i] += row[i]
    for i in range(m):
        out[i] = out[i] / cnt


cdef float _mean_act(const float* a, const int64_t* pos, const int64_t* order,
                     int64_t lo, int64_t hi) noexcept nogil:
    cdef float acc = 0.0
    cdef int64_t r
    for r in range(lo, hi):
        acc += a[pos[order[r]]]
    return acc / <float>(hi - lo)


# --------------------------------------------------------------------------- S5 / S6
cdef int64_t _degree(Map* M, int64_t node, int64_t K) noexcept nogil:
    cdef int64_t k, d = 0
    for k in range(K):
        if M.adj[node * M.cap + k]:
            d += 1
    return d


cdef int64_t _add_pulls(Map* M, int64_t node, int64_t row, int64_t key, int64_t K,
                        int64_t* c_key, int64_t* c_row, int64_t* c_rate,
                        int64_t nc) noexcept nogil:
    """Winner pull of ``node`` (rate eb) and pulls of its current neighbours (e_n), same key."""
    cdef int64_t k
    c_key[nc] = (node << NODE_SHIFT) | (<int64_t>1 << KIND_SHIFT) | key
    c_row[nc] = row
    c_rate[nc] = 0
    nc += 1
    for k in range(K):
        if M.adj[node * M.cap + k]:
            c_key[nc] = (k << NODE_SHIFT) | (<int64_t>2 << KIND_SHIFT) | key
            c_row[nc] = row
            c_rate[nc] = 1
            nc += 1
    return nc


cdef void _apply(Map* M, const float* rows, const int64_t* c_key, const int64_t* c_row,
                 const int64_t* c_rate, int64_t nc) noexcept nogil:
    """S5: every node's contributions in (kind, key) order."""
    cdef int64_t r, c
    cdef int64_t* order
    if nc <= 0:
        return
    order = <int64_t*>_buf(M, 27, nc * sizeof(int64_t))
    _argsort(M, c_key, nc, order)
    for r in range(nc):
        c = order[r]
        _update(M, c_key[c] >> NODE_SHIFT, rows + c_row[c] * M.m, <int>c_rate[c])


cdef void _insert_candidates(Map* M, const float* cand_X, const int64_t* cand_cls,
                             const float* cand_act, const int64_t* cand_key,
                             int64_t n_cand) noexcept nogil:
    """S6 greedy: ascending (mean activation, key) while K < max_nodes."""
    cdef Triple* buf
    cdef int64_t r, c
    if n_cand <= 0:
        return
    buf = <Triple*>_buf(M, 28, n_cand * sizeof(Triple))
    for r in range(n_cand):
        buf[r].act = cand_act[r]
        buf[r].key = cand_key[r]
        buf[r].idx = r
    if n_cand == 1:  # the B = 1 case
        pass
    elif n_cand <= SMALL_SORT:
        _insertion_sort_triples(buf, n_cand)
    else:
        qsort(buf, n_cand, sizeof(Triple), _cmp_triple)
    for r in range(n_cand):
        if M.st[S_K] >= M.st[S_MAXN]:
            break
        c = buf[r].idx
        _insert(M, cand_X + c * M.m, cand_cls[c])


# --------------------------------------------------------------------------- one batch (§3)
cdef void _init_map(Map* M, const float* X, const int64_t* y, const int64_t* idx,
                    int64_t n) noexcept nogil:
    """Empty map: one node per distinct label (ascending, unlabelled last) at its mean."""
    cdef int64_t i, k, g, lab, m = M.m
    cdef int64_t* keys = <int64_t*>_buf(M, 0, n * sizeof(int64_t))
    cdef int64_t* order = <int64_t*>_buf(M, 1, n * sizeof(int64_t))
    cdef int64_t* starts = <int64_t*>_buf(M, 2, (n + 1) * sizeof(int64_t))
    cdef float* x = <float*>_buf(M, 3, m * sizeof(float))
    for i in range(n):
        keys[i] = y[idx[i]] if y[idx[i]] >= 0 else KEY - 1
    g = _groups(M, keys, n, order, starts)
    for k in range(g):
        if M.st[S_K] >= M.st[S_MAXN]:
            break
        _mean_rows(X, m, idx, order, starts[k], starts[k + 1], x)
        lab = keys[order[starts[k]]]
        _insert(M, x, lab if lab != KEY - 1 else -1)
    _refresh_all(M, M.st[S_K])


cdef inline void _take(int64_t q, int64_t r, const int64_t* sel, const int64_t* y,
                       const int64_t* w, int64_t C1, int64_t* pos, int64_t* gidx,
                       int64_t* keys) noexcept nogil:
    """Entry q of a Stage S selection: batch position r, its sample, key (winner, label)."""
    pos[q] = r
    gidx[q] = sel[r]
    keys[q] = w[r] * C1 + y[sel[r]] + 1


cdef int64_t _add_candidates(Map* M, const float* X, const int64_t* y, const int64_t* sel,
                             const float* a, const int64_t* w, const int64_t* pos,
                             const int64_t* gidx, const int64_t* keys, int64_t n,
                             int64_t* order, int64_t* starts, float* cand_X, int64_t* cand_cls,
                             float* cand_act, int64_t* cand_key,
                             int64_t n_cand) noexcept nogil:
    """S2 / S4: one insertion candidate per key (winner, label) of the ``n`` selected samples,
    at the key mean, class = label; returns the new number of candidates."""
    cdef int64_t g, k, lo, hi, r0, lab, m = M.m
    g = _groups(M, keys, n, order, starts)
    for k in range(g):
        lo = starts[k]
        hi = starts[k + 1]
        r0 = pos[order[lo]]
        _mean_rows(X, m, gidx, order, lo, hi, cand_X + n_cand * m)
        cand_act[n_cand] = _mean_act(a, pos, order, lo, hi)
        lab = y[sel[r0]]
        cand_cls[n_cand] = lab
        cand_key[n_cand] = (2 * KEY + w[r0]) * KEY + lab + 1
        n_cand += 1
    return n_cand


cdef void _stage_s(Map* M, const float* X, const int64_t* y, const int64_t* sel,
                   int64_t nS) noexcept nogil:
    """Stage S of SPEC §3 on the labelled samples ``sel`` (indices into X) of the batch."""
    cdef int64_t m = M.m, K0 = M.st[S_K], K, C1 = M.n_classes + 1
    cdef bint always = (M.flags & F_ALWAYS) != 0
    cdef bint unit = (M.flags & F_UNIT_BATCH) != 0
    cdef bint copy_wins = (M.flags & F_CLONE_COPY) != 0
    cdef int64_t r, q, k, g, lo, hi, r0, j, lab, prev_j, node, room, yv, best, z, t, s2
    cdef int64_t n_low = 0, n_high = 0, n_conf = 0, n_rows = 0, n_cand = 0, n_targets = 0
    cdef int64_t n_push = 0, n_nf, n_f, n_contrib, nc, i
    cdef int64_t cap = M.cap
    cdef int64_t SH = <int64_t>nS if nS > 0 else 1
    # scratch (released at the end)
    cdef float* A = <float*>_buf(M, 0, SH * (K0 if K0 > 0 else 1) * sizeof(float))
    cdef float* a = <float*>_buf(M, 1, SH * sizeof(float))
    cdef int64_t* w = <int64_t*>_buf(M, 2, SH * sizeof(int64_t))
    cdef int64_t* kind = <int64_t*>_buf(M, 3, SH * sizeof(int64_t))
    cdef float* rows = <float*>_buf(M, 4, SH * m * sizeof(float))
    cdef float* cand_X = <float*>_buf(M, 5, SH * m * sizeof(float))
    cdef int64_t* cand_cls = <int64_t*>_buf(M, 6, SH * sizeof(int64_t))
    cdef float* cand_act = <float*>_buf(M, 7, SH * sizeof(float))
    cdef int64_t* cand_key = <int64_t*>_buf(M, 8, SH * sizeof(int64_t))
    cdef int64_t* pos = <int64_t*>_buf(M, 9, SH * sizeof(int64_t))  # batch positions r
    cdef int64_t* gidx = <int64_t*>_buf(M, 10, SH * sizeof(int64_t))  # their sample indices
    cdef int64_t* keys = <int64_t*>_buf(M, 11, SH * sizeof(int64_t))
    cdef int64_t* order = <int64_t*>_buf(M, 12, SH * sizeof(int64_t))
    cdef int64_t* starts = <int64_t*>_buf(M, 13, (SH + 1) * sizeof(int64_t))
    cdef int64_t* targets = <int64_t*>_buf(M, 14, SH * sizeof(int64_t))
    cdef int64_t* target_row = <int64_t*>_buf(M, 15, SH * sizeof(int64_t))
    cdef int64_t* target_key = <int64_t*>_buf(M, 16, SH * sizeof(int64_t))
    cdef int64_t* push_node = <int64_t*>_buf(M, 17, SH * sizeof(int64_t))
    cdef int64_t* push_row = <int64_t*>_buf(M, 18, SH * sizeof(int64_t))
    cdef int64_t* push_key = <int64_t*>_buf(M, 19, SH * sizeof(int64_t))
    cdef int64_t* sprime = <int64_t*>_buf(M, 20, SH * sizeof(int64_t))
    cdef int64_t* sp = <int64_t*>_buf(M, 21, SH * sizeof(int64_t))
    cdef int64_t* cidx = <int64_t*>_buf(M, 22, SH * sizeof(int64_t))
    cdef int64_t* c_key
    cdef int64_t* c_row
    cdef int64_t* c_rate

    # step 1: activations on the stage-start map
    for r in range(nS):
        w[r] = _activations(M, X + sel[r] * m, K0, A + r * K0)
        a[r] = A[r * K0 + w[r]]
    # 0 = low compatible (step 2), 1 = high compatible (step 3), 2 = conflict (step 4)
    for r in range(nS):
        j = M.classes[w[r]]
        if j == y[sel[r]] or j == -1:
            if a[r] < M.at32:
                kind[r] = 0
                n_low += 1
            else:
                kind[r] = 1
                n_high += 1
        else:
            kind[r] = 2
            n_conf += 1

    # step 2: compatible and novel -> one candidate per (winner, label)
    if n_low:
        q = 0
        for r in range(nS):
            if kind[r] == 0:
                _take(q, r, sel, y, w, C1, pos, gidx, keys)
                q += 1
        n_cand = _add_candidates(M, X, y, sel, a, w, pos, gidx, keys, n_low, order, starts,
                                 cand_X, cand_cls, cand_act, cand_key, n_cand)

    # step 3: compatible and active -> groups (winner j, label l); clones for extra labels
    if n_high:
        q = 0
        for r in range(nS):
            if kind[r] == 1:
                _take(q, r, sel, y, w, C1, pos, gidx, keys)
                q += 1
        g = _groups(M, keys, n_high, order, starts)
        room = M.st[S_MAXN] - M.st[S_K]
        prev_j = -1
        for k in range(g):
            lo = starts[k]
            hi = starts[k + 1]
            r0 = pos[order[lo]]
            j = w[r0]
            lab = y[sel[r0]]
            if j != prev_j:  # j's smallest label: j itself
                node = j
                prev_j = j
            else:  # a clone of j for each further label, while capacity allows
                if room <= 0:
                    continue  # dropped: no node for this label
                room -= 1
                node = M.st[S_K]
                for i in range(m):
                    M.C[i * cap + node] = M.C[i * cap + j]
                    M.delta[i * cap + node] = M.delta[i * cap + j]
                    M.omega[i * cap + node] = M.omega[i * cap + j]
                M.sw[node] = M.sw[j]
                M.wins[node] = M.wins[j] if copy_wins else 0
                M.st[S_K] = node + 1
                M.st[S_INS] += 1
            M.classes[node] = lab
            M.wins[node] += 1 if unit else hi - lo
            _mean_rows(X, m, gidx, order, lo, hi, rows + n_rows * m)
            targets[n_targets] = node
            target_row[n_targets] = n_rows
            target_key[n_targets] = (3 * KEY + j) * KEY + lab + 1
            n_targets += 1
            n_rows += 1
        if not always:  # incident edges after class assignment, before any update
            for t in range(n_targets):
                _refresh_incident(M, targets[t], M.st[S_K])

    # step 4: conflicts; s' among the stage-start nodes, classes read after step 3
    if n_conf:
        q = 0
        for r in range(nS):
            if kind[r] == 2:
                yv = y[sel[r]]
                best = -1
                for j in range(K0):
                    if A[r * K0 + j] >= M.at32 and (M.classes[j] == yv or M.classes[j] == -1):
                        if best < 0 or A[r * K0 + j] > A[r * K0 + best]:
                            best = j
                cidx[q] = r
                sp[q] = best
                q += 1
        # not found -> insertion candidates per (winner, label)
        n_nf = 0
        for q in range(n_conf):
            if sp[q] < 0:
                _take(n_nf, cidx[q], sel, y, w, C1, pos, gidx, keys)
                n_nf += 1
        if n_nf:
            n_cand = _add_candidates(M, X, y, sel, a, w, pos, gidx, keys, n_nf, order, starts,
                                     cand_X, cand_cls, cand_act, cand_key, n_cand)
        n_f = n_conf - n_nf
        if n_f:
            z = 0
            for q in range(n_conf):
                if sp[q] >= 0:
                    pos[z] = cidx[q]
                    gidx[z] = sel[cidx[q]]
                    keys[z] = w[cidx[q]] * K0 + sp[q]
                    if M.flags & F_CONFLICT_PER_SAMPLE:  # each sample its own group
                        keys[z] = keys[z] * nS + z
                    sp[z] = sp[q]  # compacted in place (z <= q)
                    z += 1
            g = _groups(M, keys, n_f, order, starts)
            for k in range(g):
                lo = starts[k]
                hi = starts[k + 1]
                r0 = pos[order[lo]]
                s2 = sp[order[lo]]
                _mean_rows(X, m, gidx, order, lo, hi, rows + n_rows * m)
                M.wins[s2] += 1 if unit else hi - lo
                push_node[n_push] = w[r0]
                push_row[n_push] = n_rows
                push_key[n_push] = 4 * KEY * KEY + k  # ascending (w, s'[, position])
                sprime[n_push] = s2
                n_push += 1
                n_rows += 1

    # step 5: contributions from the edges as they now are, then one ordered pass
    K = M.st[S_K]
    if always and (n_targets + n_push) > 0:
        _refresh_all(M, K)
    n_contrib = n_push
    for t in range(n_targets):
        n_contrib += 1 + _degree(M, targets[t], K)
    for q in range(n_push):
        n_contrib += 1 + _degree(M, sprime[q], K)
    if n_contrib > 0:
        c_key = <int64_t*>_buf(M, 23, n_contrib * sizeof(int64_t))
        c_row = <int64_t*>_buf(M, 24, n_contrib * sizeof(int64_t))
        c_rate = <int64_t*>_buf(M, 25, n_contrib * sizeof(int64_t))
        nc = 0
        for q in range(n_push):
            c_key[nc] = (push_node[q] << NODE_SHIFT) | push_key[q]  # kind 0
            c_row[nc] = push_row[q]
            c_rate[nc] = 2
            nc += 1
        for t in range(n_targets):
            nc = _add_pulls(M, targets[t], target_row[t], target_key[t], K,
                            c_key, c_row, c_rate, nc)
        for q in range(n_push):
            nc = _add_pulls(M, sprime[q], push_row[q], push_key[q], K, c_key, c_row, c_rate, nc)
        _apply(M, rows, c_key, c_row, c_rate, nc)
    # step 6
    _insert_candidates(M, cand_X, cand_cls, cand_act, cand_key, n_cand)



cdef void _stage_u(Map* M, const float* X, const int64_t* sel, int64_t nU) noexcept nogil:
    """Stage U of SPEC §3 on the unlabelled samples ``sel`` (activations on the post-S map)."""
    cdef int64_t m = M.m, K = M.st[S_K], r, k, g, lo, hi, j, r0, ql = 0, qh = 0
    cdef int64_t n_low = 0, n_high, n_contrib, nc
    cdef bint unit = (M.flags & F_UNIT_BATCH) != 0
    cdef bint per_sample = (M.flags & F_UNSUP_PER_SAMPLE) != 0
    cdef int64_t SH = nU if nU > 0 else 1
    cdef float* act = <float*>_buf(M, 0, (K if K > 0 else 1) * sizeof(float))
    cdef float* a = <float*>_buf(M, 1, SH * sizeof(float))
    cdef int64_t* w = <int64_t*>_buf(M, 2, SH * sizeof(int64_t))
    cdef int64_t* low = <int64_t*>_buf(M, 3, SH * sizeof(int64_t))
    cdef int64_t* high = <int64_t*>_buf(M, 4, SH * sizeof(int64_t))
    cdef int64_t* glow = <int64_t*>_buf(M, 5, SH * sizeof(int64_t))
    cdef int64_t* ghigh = <int64_t*>_buf(M, 6, SH * sizeof(int64_t))
    cdef int64_t* lk = <int64_t*>_buf(M, 7, SH * sizeof(int64_t))
    cdef int64_t* hk = <int64_t*>_buf(M, 8, SH * sizeof(int64_t))
    cdef int64_t* order = <int64_t*>_buf(M, 9, SH * sizeof(int64_t))
    cdef int64_t* starts = <int64_t*>_buf(M, 10, (SH + 1) * sizeof(int64_t))
    cdef float* rows
    cdef int64_t* c_key
    cdef int64_t* c_row
    cdef int64_t* c_rate
    cdef int64_t* cand_cls
    cdef float* cand_act
    cdef int64_t* cand_key
    for r in range(nU):
        w[r] = _activations(M, X + sel[r] * m, K, act)
        a[r] = act[w[r]]
        if a[r] < M.at32:
            n_low += 1
    n_high = nU - n_low
    for r in range(nU):
        if a[r] < M.at32:
            if M.flags & F_COUNT_ALL:
                M.wins[w[r]] += 1
            low[ql] = r
            glow[ql] = sel[r]
            lk[ql] = w[r] * nU + r if per_sample else w[r]
            ql += 1
        else:
            high[qh] = r
            ghigh[qh] = sel[r]
            hk[qh] = w[r]
            qh += 1
    if n_high:
        if M.flags & F_ALWAYS:
            _refresh_all(M, K)
        g = _groups(M, hk, n_high, order, starts)
        rows = <float*>_buf(M, 11, g * m * sizeof(float))
        n_contrib = 0
        for k in range(g):
            n_contrib += 1 + _degree(M, hk[order[starts[k]]], K)
        c_key = <int64_t*>_buf(M, 12, n_contrib * sizeof(int64_t))
        c_row = <int64_t*>_buf(M, 13, n_contrib * sizeof(int64_t))
        c_rate = <int64_t*>_buf(M, 14, n_contrib * sizeof(int64_t))
        nc = 0
        for k in range(g):
            lo = starts[k]
            hi = starts[k + 1]
            j = hk[order[lo]]
            M.wins[j] += 1 if unit else hi - lo
            _mean_rows(X, m, ghigh, order, lo, hi, rows + k * m)
            nc = _add_pulls(M, j, k, (6 * KEY + j) * KEY, K, c_key, c_row, c_rate, nc)
        _apply(M, rows, c_key, c_row, c_rate, nc)
    if n_low:
        g = _groups(M, lk, n_low, order, starts)
        rows = <float*>_buf(M, 15, g * m * sizeof(float))
        cand_cls = <int64_t*>_buf(M, 16, g * sizeof(int64_t))
        cand_act = <float*>_buf(M, 17, g * sizeof(float))
        cand_key = <int64_t*>_buf(M, 18, g * sizeof(int64_t))
        for k in range(g):
            lo = starts[k]
            hi = starts[k + 1]
            r0 = low[order[lo]]
            _mean_rows(X, m, glow, order, lo, hi, rows + k * m)
            cand_act[k] = _mean_act(a, low, order, lo, hi)
            cand_cls[k] = -1
            cand_key[k] = (5 * KEY + w[r0]) * KEY + (r0 if per_sample else 0)
        _insert_candidates(M, rows, cand_cls, cand_act, cand_key, g)


cdef bint _batch(Map* M, const float* X, const int64_t* y, const int64_t* idx,
                 int64_t n) noexcept nogil:
    """One batch (sample indices ``idx[:n]``), then the window check; True when a window
    closed."""
    cdef int64_t i, n_lab = 0, ql = 0, qu = 0
    cdef int64_t* lab
    cdef int64_t* unl
    if M.st[S_K] == 0:
        _init_map(M, X, y, idx, n)
    else:
        lab = <int64_t*>_buf(M, 29, n * sizeof(int64_t))
        unl = <int64_t*>_buf(M, 30, n * sizeof(int64_t))
        for i in range(n):
            if y[idx[i]] >= 0:
                lab[ql] = idx[i]
                ql += 1
            else:
                unl[qu] = idx[i]
                qu += 1
        if ql:
            _stage_s(M, X, y, lab, ql)
        if qu:
            _stage_u(M, X, unl, qu)
    M.st[S_T] += 1 if (M.flags & F_UNIT_BATCH) else n
    if M.st[S_T] >= M.age:
        _close_window(M)
        return True
    return False


cdef int64_t _run_chunk(Map* M, const float* X, const int64_t* y, int64_t n,
                        const int64_t* idx, int64_t n_idx, int64_t B, int64_t n_org,
                        bint conv_cpp) noexcept nogil:
    """Present the batches of ``idx`` (whole draws of N indices, each split into ceil(N/B)
    batches) through the phases organisation -> convergence (a) -> (b) freeze -> (c) -> done;
    ``n_nodes[e]`` gets K after epoch e.  Returns the number of indices consumed."""
    cdef int64_t nb = (n + B - 1) // B, pos = 0, length
    cdef bint closed
    while True:
        if M.st[S_PHASE] == ORGANISATION and M.st[S_ORG] >= n_org:
            M.st[S_PHASE] = CONV_A if conv_cpp else DONE
        if M.st[S_PHASE] == CONV_A and M.st[S_T] == 0:  # (a) done: (b) freeze insertion
            M.st[S_MAXN] = M.st[S_K]
            M.st[S_PHASE] = CONV_C if M.age > 0 else DONE
        if M.st[S_PHASE] == DONE or pos >= n_idx:
            return pos
        length = n - pos % n  # batches never cross draws
        if length > B:
            length = B
        closed = _batch(M, X, y, idx + pos, length)
        pos += length
        M.st[S_SEEN] += length
        if M.st[S_PHASE] == ORGANISATION:
            M.st[S_ORG] += 1
            if M.st[S_ORG] % nb == 0:
                M.n_nodes[M.st[S_ORG] // nb - 1] = M.st[S_K]
        elif M.st[S_PHASE] == CONV_C and closed:  # (c) ends with the window it opened
            M.st[S_PHASE] = DONE


# --------------------------------------------------------------------------- Python entry
cdef class Run:
    """One map's buffers and scalars (made by ``_engine_cpu.new_run``); :meth:`chunk` presents
    a chunk of sample draws without the GIL."""

    cdef Map M
    cdef object keep  # the numpy buffers the Map points into
    cdef const float* X
    cdef const int64_t* y
    cdef int64_t n
    cdef int64_t B
    cdef int64_t n_org
    cdef bint conv_cpp

    def __cinit__(self):
        cdef int k
        for k in range(N_SLOTS):
            self.M.wbuf[k] = NULL
            self.M.wsize[k] = 0

    def __init__(self, cnp.ndarray X, cnp.ndarray y, dict bufs, cnp.ndarray rates,
                 float at32, float s32, float minwd32, double lp, int64_t age, int flags,
                 int64_t n_classes, int64_t B, int64_t n_org, bint conv_cpp):
        for a in (X, y, rates, *bufs.values()):
            if not a.flags.c_contiguous:
                raise ValueError("kernel buffers must be C-contiguous")
        self.keep = (X, y, rates, bufs)
        self.X = <const float*>cnp.PyArray_DATA(X)
        self.y = <const int64_t*>cnp.PyArray_DATA(y)
        self.n = X.shape[0]
        self.M.m = X.shape[1]
        self.M.cap = bufs["C"].shape[1]
        self.M.C = <float*>cnp.PyArray_DATA(bufs["C"])
        self.M.delta = <float*>cnp.PyArray_DATA(bufs["delta"])
        self.M.omega = <float*>cnp.PyArray_DATA(bufs["omega"])
        self.M.sw = <float*>cnp.PyArray_DATA(bufs["sw"])
        self.M.wins = <int64_t*>cnp.PyArray_DATA(bufs["wins"])
        self.M.classes = <int64_t*>cnp.PyArray_DATA(bufs["classes"])
        self.M.adj = <unsigned char*>cnp.PyArray_DATA(bufs["adj"])
        self.M.st = <int64_t*>cnp.PyArray_DATA(bufs["st"])
        self.M.n_nodes = <int64_t*>cnp.PyArray_DATA(bufs["n_nodes"])
        self.M.rates = <float*>cnp.PyArray_DATA(rates)
        self.M.at32 = at32
        self.M.s32 = s32
        self.M.minwd32 = minwd32
        self.M.lp = lp
        self.M.age = age
        self.M.flags = flags
        self.M.n_classes = n_classes
        self.B = B
        self.n_org = n_org
        self.conv_cpp = conv_cpp

    def chunk(self, cnp.ndarray idx):
        """Present the draws ``idx`` (int64, whole draws of N); returns the indices used."""
        cdef const int64_t* p = <const int64_t*>cnp.PyArray_DATA(idx)
        cdef int64_t n_idx = idx.shape[0], used
        if idx.dtype != np.int64 or not idx.flags.c_contiguous:
            raise ValueError("idx must be a contiguous int64 array")
        with nogil:
            used = _run_chunk(&self.M, self.X, self.y, self.n, p, n_idx, self.B, self.n_org,
                              self.conv_cpp)
        return used

    def __dealloc__(self):
        cdef int k
        for k in range(N_SLOTS):
            free(self.M.wbuf[k])
            self.M.wbuf[k] = NULL

    @property
    def done(self):
        return self.M.st[S_PHASE] == DONE
