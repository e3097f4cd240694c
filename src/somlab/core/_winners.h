/* The row loops of the compiled winner search (core/_winners.pyx): centring a cache block of
 * samples and ranking a block of distances, for float32 and float64, with an AVX2 clone picked
 * at load time on x86-64 Linux (GCC target_clones; wheels stay portable, no -march=native).
 *
 * The matrix product between the two runs in torch (MKL): d = |wc|^2 - 2 xc.wc of a block.
 *
 * Ranking follows torch: the r-th unit of a row is the first minimum of the row once the units
 * before it are set to +inf (ties -> lowest index, a NaN counts as the minimum: as argmin).  One
 * pass per row keeps the kk best (value, index) pairs sorted; a chunk of 16 values is looked at
 * one by one only when one of them could enter the list (!(d >= kth best): smaller, or NaN), which
 * after the first chunks of a row is rare, so the pass runs at the speed of the vector compare. */
#ifndef SOMLAB_WINNERS_H
#define SOMLAB_WINNERS_H
#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SOMLAB_WCLONES __attribute__((target_clones("avx2", "default")))
#else
#define SOMLAB_WCLONES
#endif

#define SOMLAB_CHUNK 16
#define SOMLAB_MAXK 8

/* a before b in argmin's order (a smaller, or a NaN where b is not) */
#define SOMLAB_BETTER(a, b) ((a) < (b) || ((a) != (a) && (b) == (b)))

/* per lane: x (indices ci) into the lane's two first minima (m1, i1), (m2, i2); strict < keeps
 * the lowest index of equal values, as the lanes run in index order */
#define SOMLAB_LANE_TOP2(SFX, x, ci, m1, i1, m2, i2)                                            \
    do {                                                                                         \
        const somlab_m_##SFX lt1 = (x) < (m1), lt2 = (x) < (m2);                                 \
        m2 = somlab_sel_##SFX(lt1, m1, somlab_sel_##SFX(lt2, x, m2));                            \
        i2 = (lt1 & (i1)) | (~lt1 & ((lt2 & (ci)) | (~lt2 & (i2))));                             \
        m1 = somlab_sel_##SFX(lt1, x, m1);                                                       \
        i1 = (lt1 & (ci)) | (~lt1 & (i1));                                                       \
    } while (0)

#define SOMLAB_WINNERS_DEFINE(T, IT, SFX)                                                        \
    /* 32-byte GCC vectors (two SSE registers in the default clone, one AVX in the avx2 one) */  \
    typedef T somlab_v_##SFX __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));   \
    typedef IT somlab_m_##SFX __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));  \
    enum { SOMLAB_VL_##SFX = 32 / sizeof(T) };                                                   \
    /* a where mask else b */                                                                    \
    static inline somlab_v_##SFX somlab_sel_##SFX(somlab_m_##SFX mask, somlab_v_##SFX a,         \
                                                  somlab_v_##SFX b) {                            \
        return (somlab_v_##SFX)(((somlab_m_##SFX)a & mask) | ((somlab_m_##SFX)b & ~mask));       \
    }                                                                                            \
    static inline int somlab_any_##SFX(somlab_m_##SFX mask) {                                    \
        IT acc = 0;                                                                              \
        for (int l = 0; l < SOMLAB_VL_##SFX; l++) acc |= mask[l];                                \
        return acc != 0;                                                                         \
    }                                                                                            \
    /* xb[r] = (X[r] - ref) * sc and xsq[r] = |xb[r]|^2 (summed in float64 over 8 lanes) */      \
    SOMLAB_WCLONES                                                                                \
    static void somlab_centre_##SFX(const T *restrict X, int64_t rows, int64_t m,                \
                                    const T *restrict ref, T sc, T *restrict xb,                 \
                                    T *restrict xsq) {                                           \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *restrict x = X + r * m;                                                     \
            T *restrict o = xb + r * m;                                                          \
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                            \
            int64_t i = 0;                                                                       \
            for (; i + 8 <= m; i += 8) {                                                         \
                for (int l = 0; l < 8; l++) {                                                    \
                    const T v = (x[i + l] - ref[i + l]) * sc;                                    \
                    o[i + l] = v;                                                                \
                    acc[l] += (double)v * (double)v;                                             \
                }                                                                                \
            }                                                                                    \
            for (; i < m; i++) {                                                                 \
                const T v = (x[i] - ref[i]) * sc;                                                \
                o[i] = v;                                                                        \
                acc[0] += (double)v * (double)v;                                                 \
            }                                                                                    \
            xsq[r] = (T)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +                               \
                         ((acc[4] + acc[5]) + (acc[6] + acc[7])));                               \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    /* lo[i], hi[i]: the smallest and largest of column i of X [rows, m] (lo, hi preset by the  \
     * caller to +inf / -inf); returns 1 where X holds a NaN or an infinity (x * 0 is NaN). */   \
    SOMLAB_WCLONES                                                                                \
    static int somlab_colrange_##SFX(const T *restrict X, int64_t rows, int64_t m,               \
                                     T *restrict lo, T *restrict hi, T *restrict probe) {        \
        for (int64_t i = 0; i < m; i++) probe[i] = 0;                                            \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *restrict x = X + r * m;                                                     \
            for (int64_t i = 0; i < m; i++) {                                                    \
                const T v = x[i];                                                                \
                lo[i] = v < lo[i] ? v : lo[i];                                                   \
                hi[i] = v > hi[i] ? v : hi[i];                                                   \
                probe[i] += v * (T)0;                                                            \
            }                                                                                    \
        }                                                                                        \
        int bad = 0;                                                                             \
        for (int64_t i = 0; i < m; i++) bad |= probe[i] != probe[i];                             \
        return bad;                                                                              \
    }                                                                                            \
                                                                                                 \
    static inline void somlab_insert_##SFX(T x, int64_t j, int kk, T *v, int64_t *jj) {          \
        if (!SOMLAB_BETTER(x, v[kk - 1])) return;                                                \
        int p = kk - 1;                                                                          \
        while (p > 0 && SOMLAB_BETTER(x, v[p - 1])) {                                            \
            v[p] = v[p - 1];                                                                     \
            jj[p] = jj[p - 1];                                                                   \
            p--;                                                                                 \
        }                                                                                        \
        v[p] = x;                                                                                \
        jj[p] = j;                                                                               \
    }                                                                                            \
                                                                                                 \
    /* (x, j) into the two best pairs (v, jj) in (value, index) order: values without NaN */     \
    static inline void somlab_lex2_##SFX(T x, int64_t j, T *v, int64_t *jj) {                    \
        if (x < v[0] || (x == v[0] && j < jj[0])) {                                              \
            v[1] = v[0];                                                                         \
            jj[1] = jj[0];                                                                       \
            v[0] = x;                                                                            \
            jj[0] = j;                                                                           \
        } else if (x < v[1] || (x == v[1] && j < jj[1])) {                                       \
            v[1] = x;                                                                            \
            jj[1] = j;                                                                           \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    /* The chunked insertion scan of the row values d_j = wsq[j] - 2 p[j], j < n: a chunk is     \
     * looked at value by value when one of its values could enter the list (!(d >= thr)). */    \
    static inline void somlab_scan_##SFX(const T *restrict p, const T *restrict wsq, int64_t n,  \
                                         int kk, T thr0, int le, T *v, int64_t *jj) {            \
        int64_t c = 0;                                                                           \
        for (; c + SOMLAB_CHUNK <= n; c += SOMLAB_CHUNK) {                                       \
            const T thr = le ? thr0 : v[kk - 1];                                                 \
            int hit = 0;                                                                         \
            if (le) {                                                                            \
                somlab_m_##SFX h = {0};                                                          \
                for (int l = 0; l < SOMLAB_CHUNK; l += SOMLAB_VL_##SFX) {                        \
                    const somlab_v_##SFX x = *(const somlab_v_##SFX *)(wsq + c + l) -            \
                                             (T)2 * *(const somlab_v_##SFX *)(p + c + l);        \
                    h |= x <= thr;                                                               \
                }                                                                                \
                hit = somlab_any_##SFX(h);                                                       \
            } else                                                                               \
                for (int l = 0; l < SOMLAB_CHUNK; l++)                                           \
                    hit |= !((wsq[c + l] - (T)2 * p[c + l]) >= thr);                             \
            if (hit)                                                                             \
                for (int l = 0; l < SOMLAB_CHUNK; l++)                                           \
                    somlab_insert_##SFX(wsq[c + l] - (T)2 * p[c + l], c + l, kk, v, jj);         \
        }                                                                                        \
        for (; c < n; c++) somlab_insert_##SFX(wsq[c] - (T)2 * p[c], c, kk, v, jj);              \
    }                                                                                            \
                                                                                                 \
    /* The kk (<= SOMLAB_MAXK) first minima of the row values d_j = wsq[j] - 2 P[r, j] of       \
     * P [rows, n] (xb . wc, row stride n; d as torch's addmm(wsq, xb, wc.T, alpha=-2) rounds  \
     * it: 2 p is exact), then the distances: d2 = max(d + xsq, 0), the best unit's recomputed   \
     * as |xb - wc_j|^2 where d2 < share (xsq + wsq_j) (cancellation), out sqrt(d2) / sc (root)  \
     * or d2 / sc / sc.  amap (or NULL) maps a column to its node index; a slot no value filled  \
     * (all left +inf) is node 0, as argmin of an all-inf row.                                   \
     * kk <= 2 on a finite row: the per-lane two smallest values (32-byte vectors) give the kk-th     \
     * smallest value t of the row; the values <= t, taken in index order, are the winners. */   \
    SOMLAB_WCLONES                                                                                \
    static void somlab_rank_##SFX(const T *restrict P, int64_t rows, int64_t n, int kk,          \
                                  const int64_t *restrict amap, const T *restrict xsq,           \
                                  const T *restrict wsq, const T *restrict xb,                   \
                                  const T *restrict wc, int64_t m, T sc, T share, int root,      \
                                  int64_t *restrict idx, T *restrict dist) {                     \
        const T inf = (T)INFINITY;                                                               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *restrict p = P + r * n;                                                     \
            T v[SOMLAB_MAXK];                                                                    \
            int64_t jj[SOMLAB_MAXK];                                                             \
            for (int q = 0; q < kk; q++) {                                                       \
                v[q] = inf;                                                                      \
                jj[q] = -1;                                                                      \
            }                                                                                    \
            int done = 0;                                                                        \
            if (kk <= 2) {                                                                       \
                /* per lane, the two first minima (value, index) of its values, two sets of lanes */\
                const somlab_v_##SFX vinf = inf - (somlab_v_##SFX){0};                           \
                somlab_v_##SFX a1 = vinf, a2 = vinf, b1 = vinf, b2 = vinf, pr = {0};             \
                somlab_m_##SFX ia1, ia2, ib1, ib2, ci, cj;                                       \
                for (int l = 0; l < SOMLAB_VL_##SFX; l++) {                                      \
                    ia1[l] = ia2[l] = ib1[l] = ib2[l] = -1;                                      \
                    ci[l] = l;                                                                   \
                    cj[l] = l + SOMLAB_VL_##SFX;                                                 \
                }                                                                                \
                int64_t c = 0;                                                                   \
                for (; c + 2 * SOMLAB_VL_##SFX <= n; c += 2 * SOMLAB_VL_##SFX) {                 \
                    const somlab_v_##SFX x = *(const somlab_v_##SFX *)(wsq + c) -                \
                                             (T)2 * *(const somlab_v_##SFX *)(p + c);            \
                    const somlab_v_##SFX y =                                                     \
                        *(const somlab_v_##SFX *)(wsq + c + SOMLAB_VL_##SFX) -                   \
                        (T)2 * *(const somlab_v_##SFX *)(p + c + SOMLAB_VL_##SFX);               \
                    SOMLAB_LANE_TOP2(SFX, x, ci, a1, ia1, a2, ia2);                              \
                    SOMLAB_LANE_TOP2(SFX, y, cj, b1, ib1, b2, ib2);                              \
                    pr += x * (T)0;                                                              \
                    pr += y * (T)0;                                                              \
                    ci += 2 * SOMLAB_VL_##SFX;                                                   \
                    cj += 2 * SOMLAB_VL_##SFX;                                                   \
                }                                                                                \
                T probe = 0;                                                                     \
                for (int l = 0; l < SOMLAB_VL_##SFX; l++) probe += pr[l];                        \
                if (probe == probe) { /* no NaN, no infinity in the lanes: merge them */         \
                    for (int l = 0; l < SOMLAB_VL_##SFX; l++) {                                  \
                        somlab_lex2_##SFX(a1[l], ia1[l], v, jj);                                 \
                        somlab_lex2_##SFX(a2[l], ia2[l], v, jj);                                 \
                        somlab_lex2_##SFX(b1[l], ib1[l], v, jj);                                 \
                        somlab_lex2_##SFX(b2[l], ib2[l], v, jj);                                 \
                    }                                                                            \
                    if (kk == 1) jj[1] = -1;                                                     \
                    for (; c < n; c++) /* the last columns, in index order */                    \
                        somlab_insert_##SFX(wsq[c] - (T)2 * p[c], c, kk, v, jj);                 \
                    done = 1;                                                                    \
                }                                                                                \
            }                                                                                    \
            if (!done) somlab_scan_##SFX(p, wsq, n, kk, inf, 0, v, jj);                          \
            for (int q = 0; q < kk; q++) {                                                       \
                const int64_t j = jj[q];                                                         \
                T d2 = v[q] + xsq[r];                                                            \
                if (d2 < 0) d2 = 0;                                                              \
                if (q == 0 && j >= 0 && d2 < share * (xsq[r] + wsq[j])) {                        \
                    const T *restrict x = xb + r * m;                                            \
                    const T *restrict w = wc + j * m;                                            \
                    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                    \
                    int64_t i = 0;                                                               \
                    for (; i + 8 <= m; i += 8)                                                   \
                        for (int l = 0; l < 8; l++) {                                            \
                            const T e = x[i + l] - w[i + l];                                     \
                            acc[l] += (double)e * (double)e;                                     \
                        }                                                                        \
                    for (; i < m; i++) {                                                         \
                        const T e = x[i] - w[i];                                                 \
                        acc[0] += (double)e * (double)e;                                         \
                    }                                                                            \
                    d2 = (T)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +                           \
                             ((acc[4] + acc[5]) + (acc[6] + acc[7])));                           \
                }                                                                                \
                idx[r * kk + q] = j < 0 ? 0 : (amap ? amap[j] : j);                              \
                dist[r * kk + q] = root ? (T)sqrt((double)d2) / sc : d2 / sc / sc;               \
            }                                                                                    \
        }                                                                                        \
    }

SOMLAB_WINNERS_DEFINE(float, int32_t, f32)
SOMLAB_WINNERS_DEFINE(double, int64_t, f64)

#endif
