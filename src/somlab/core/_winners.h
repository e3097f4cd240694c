/* The row loops of the compiled winner search (core/_winners.pyx), for float32 and float64, with
 * an AVX2 clone picked at load time on x86-64 Linux (GCC target_clones; wheels stay portable, no
 * -march=native) and an AVX-512 row ranking picked at run time.
 *
 * Per cache block of samples: somlab_prep centres the rows, xb = (x - ref) sc, and forms |xb|^2;
 * torch (MKL) forms the product p = xb.wc^T of the block; somlab_rank forms each row's
 * d_j = |wc_j|^2 - 2 p_j (the torch loops' add(|wc|^2, p, alpha=-2): 2 p is exact, so the one
 * rounding is the same with or without a fused multiply-add) and ranks it.
 *
 * Ranking follows torch: the r-th unit of a row is the first minimum of the row once the units
 * before it are set to +inf (ties -> lowest index, a NaN counts as the minimum: as argmin).  For
 * kk <= 2 on a row whose values are all finite, the per-lane two smallest values (with their
 * indices, AVX-512; or the values alone, then a scan for the values <= the kk-th smallest) give
 * the units; else one insertion pass keeps the kk best (value, index) pairs sorted, a chunk of 16
 * values looked at one by one only when one of them could enter the list. */
#ifndef SOMLAB_WINNERS_H
#define SOMLAB_WINNERS_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SOMLAB_WCLONES __attribute__((target_clones("avx2", "default")))
#else
#define SOMLAB_WCLONES
#endif

#define SOMLAB_CHUNK 16
#define SOMLAB_MAXK 8

/* a before b in argmin's order (a smaller, or a NaN where b is not) */
#define SOMLAB_BETTER(a, b) ((a) < (b) || ((a) != (a) && (b) == (b)))

/* The AVX-512 ranking of one finite float32 row (defined below where the compiler has it). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
static int somlab_simd_level(void) { /* 2: AVX-512F, 1: AVX2, 0: neither */
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return level;
}
/* One step of the per-lane two first minima (value, index) of a finite row: strict < keeps the
 * lowest index of equal values (a lane sees its indices in increasing order). */
#define SOMLAB_AVX2_STEP(x, jv, m1, m2, i1, i2)                                                  \
    do {                                                                                         \
        const __m256 lt1 = _mm256_cmp_ps(x, m1, _CMP_LT_OQ);                                     \
        const __m256 lt2 = _mm256_cmp_ps(x, m2, _CMP_LT_OQ);                                     \
        i2 = _mm256_blendv_ps(i2, _mm256_blendv_ps(jv, i1, lt1), lt2);                           \
        i1 = _mm256_blendv_ps(i1, jv, lt1);                                                      \
        m2 = _mm256_min_ps(_mm256_max_ps(x, m1), m2);                                            \
        m1 = _mm256_min_ps(x, m1);                                                               \
    } while (0)
#define SOMLAB_AVX512_STEP(x, jv, m1, m2, i1, i2)                                                \
    do {                                                                                         \
        const __mmask16 lt1 = _mm512_cmp_ps_mask(x, m1, _CMP_LT_OQ);                             \
        const __mmask16 lt2 = _mm512_cmp_ps_mask(x, m2, _CMP_LT_OQ);                             \
        i2 = _mm512_mask_mov_epi32(i2, lt2, _mm512_mask_mov_epi32(jv, lt1, i1));                 \
        i1 = _mm512_mask_mov_epi32(i1, lt1, jv);                                                 \
        m2 = _mm512_min_ps(_mm512_max_ps(x, m1), m2);                                            \
        m1 = _mm512_min_ps(x, m1);                                                               \
    } while (0)
/* The kk (<= 2) first minima of SOMLAB_RB finite rows d_j = w_j - 2 p_j, j < n (row stride n),
 * into jj[q * 2 + 0 / 1] (-1: no unit), the rows' passes interleaved so that their latencies
 * overlap: per lane (column j in lane j mod 16) the two first minima with their indices, then a
 * row's first minimum is the lowest index among the lanes holding its smallest value, and its
 * second the same once the winner's lane shows its own second. */
#define SOMLAB_RB 4
static inline __attribute__((target("avx512f"), always_inline)) int
somlab_lowest_avx512(__m512 m, __m512i i, float a) {
    /* the lowest index among the lanes of m equal to a: the lane's own where one lane holds it
     * (the usual case), else the masked minimum of the indices */
    const __mmask16 eq = _mm512_cmp_ps_mask(m, _mm512_set1_ps(a), _CMP_EQ_OQ);
    if (eq & (eq - 1)) return _mm512_mask_reduce_min_epi32(eq, i);
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(
        _mm512_permutexvar_epi32(_mm512_set1_epi32(__builtin_ctz((unsigned)eq)), i)));
}
__attribute__((target("avx512f"))) static void somlab_rows_avx512(const float *restrict p,
                                                                  const float *restrict w,
                                                                  int64_t n, int kk,
                                                                  int64_t *jj) {
    const __m512 inf = _mm512_set1_ps(INFINITY);
    const __m512i sixteen = _mm512_set1_epi32(16);
    __m512 m1[SOMLAB_RB], m2[SOMLAB_RB];
    __m512i i1[SOMLAB_RB], i2[SOMLAB_RB];
#pragma GCC unroll 4
    for (int q = 0; q < SOMLAB_RB; q++) {
        m1[q] = m2[q] = inf;
        i1[q] = i2[q] = _mm512_set1_epi32(-1);
    }
    __m512i jv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) {
        const __m512 wv = _mm512_loadu_ps(w + c);
#pragma GCC unroll 4
        for (int q = 0; q < SOMLAB_RB; q++) {
            const __m512 pv = _mm512_loadu_ps(p + q * n + c);
            const __m512 x = _mm512_sub_ps(wv, _mm512_add_ps(pv, pv));
            SOMLAB_AVX512_STEP(x, jv, m1[q], m2[q], i1[q], i2[q]);
        }
        jv = _mm512_add_epi32(jv, sixteen);
    }
    if (c < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - c)) - 1u);
        const __m512 wv = _mm512_maskz_loadu_ps(tail, w + c);
#pragma GCC unroll 4
        for (int q = 0; q < SOMLAB_RB; q++) {
            const __m512 pv = _mm512_maskz_loadu_ps(tail, p + q * n + c);
            const __m512 x = _mm512_mask_sub_ps(inf, tail, wv, _mm512_add_ps(pv, pv));
            SOMLAB_AVX512_STEP(x, jv, m1[q], m2[q], i1[q], i2[q]);
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < SOMLAB_RB; q++) {
        const int j1 = somlab_lowest_avx512(m1[q], i1[q], _mm512_reduce_min_ps(m1[q]));
        jj[2 * q] = j1;
        if (kk == 2) { /* n >= 1 finite values: j1 >= 0 */
            const __mmask16 lane = (__mmask16)(1u << ((unsigned)j1 & 15u));
            const __m512 s1 = _mm512_mask_mov_ps(m1[q], lane, m2[q]);
            const __m512i k1 = _mm512_mask_mov_epi32(i1[q], lane, i2[q]);
            jj[2 * q + 1] = somlab_lowest_avx512(s1, k1, _mm512_reduce_min_ps(s1));
        }
    }
}
/* The two first minima of the node-major form (somlab_rank2t) for float32 with AVX-512 / AVX2
 * intrinsics (picked at run time): min / max for the values (exact on finite values: the smaller
 * of x and m1 is m1's new value, the smaller of max(x, m1) and m2 is m2's), mask moves / blends for
 * the indices; 32 (16) rows at a time with their state in registers across all nodes.  Rows
 * [0, rv), rv a multiple of 8. */
__attribute__((target("avx512f"))) static int64_t somlab_top2_avx512(
    const float *restrict PT, const float *restrict w, int64_t rows, int64_t rv, int64_t n,
    float *restrict s1, float *restrict s2, int32_t *restrict k1, int32_t *restrict k2) {
    int64_t r = 0;
    for (; r + 32 <= rv; r += 32) {
        __m512 a1 = _mm512_loadu_ps(s1 + r), a2 = _mm512_loadu_ps(s2 + r);
        __m512 b1 = _mm512_loadu_ps(s1 + r + 16), b2 = _mm512_loadu_ps(s2 + r + 16);
        __m512i ia1 = _mm512_loadu_si512(k1 + r), ia2 = _mm512_loadu_si512(k2 + r);
        __m512i ib1 = _mm512_loadu_si512(k1 + r + 16), ib2 = _mm512_loadu_si512(k2 + r + 16);
        for (int64_t j = 0; j < n; j++) {
            const float *p = PT + j * rows + r;
            const __m512i jv = _mm512_set1_epi32((int32_t)j);
            const __m512 wj = _mm512_set1_ps(w[j]);
            const __m512 pa = _mm512_loadu_ps(p), pb = _mm512_loadu_ps(p + 16);
            const __m512 xa = _mm512_sub_ps(wj, _mm512_add_ps(pa, pa));
            const __m512 xb = _mm512_sub_ps(wj, _mm512_add_ps(pb, pb));
            SOMLAB_AVX512_STEP(xa, jv, a1, a2, ia1, ia2);
            SOMLAB_AVX512_STEP(xb, jv, b1, b2, ib1, ib2);
        }
        _mm512_storeu_ps(s1 + r, a1);
        _mm512_storeu_ps(s2 + r, a2);
        _mm512_storeu_ps(s1 + r + 16, b1);
        _mm512_storeu_ps(s2 + r + 16, b2);
        _mm512_storeu_si512(k1 + r, ia1);
        _mm512_storeu_si512(k2 + r, ia2);
        _mm512_storeu_si512(k1 + r + 16, ib1);
        _mm512_storeu_si512(k2 + r + 16, ib2);
    }
    for (; r + 16 <= rv; r += 16) {
        __m512 a1 = _mm512_loadu_ps(s1 + r), a2 = _mm512_loadu_ps(s2 + r);
        __m512i ia1 = _mm512_loadu_si512(k1 + r), ia2 = _mm512_loadu_si512(k2 + r);
        for (int64_t j = 0; j < n; j++) {
            const __m512 pa = _mm512_loadu_ps(PT + j * rows + r);
            const __m512 xa = _mm512_sub_ps(_mm512_set1_ps(w[j]), _mm512_add_ps(pa, pa));
            SOMLAB_AVX512_STEP(xa, _mm512_set1_epi32((int32_t)j), a1, a2, ia1, ia2);
        }
        _mm512_storeu_ps(s1 + r, a1);
        _mm512_storeu_ps(s2 + r, a2);
        _mm512_storeu_si512(k1 + r, ia1);
        _mm512_storeu_si512(k2 + r, ia2);
    }
    return r;
}
__attribute__((target("avx2"))) static void somlab_top2_avx2(const float *restrict PT,
                                                             const float *restrict w,
                                                             int64_t rows, int64_t rv, int64_t n,
                                                             float *restrict s1,
                                                             float *restrict s2,
                                                             int32_t *restrict k1,
                                                             int32_t *restrict k2,
                                                             int64_t r) {
    for (; r + 16 <= rv; r += 16) {
        __m256 a1 = _mm256_loadu_ps(s1 + r), a2 = _mm256_loadu_ps(s2 + r);
        __m256 b1 = _mm256_loadu_ps(s1 + r + 8), b2 = _mm256_loadu_ps(s2 + r + 8);
        __m256 ia1 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(k1 + r)));
        __m256 ia2 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(k2 + r)));
        __m256 ib1 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(k1 + r + 8)));
        __m256 ib2 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(k2 + r + 8)));
        for (int64_t j = 0; j < n; j++) {
            const float *p = PT + j * rows + r;
            const __m256 jv = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t)j));
            const __m256 wj = _mm256_set1_ps(w[j]);
            const __m256 pa = _mm256_loadu_ps(p), pb = _mm256_loadu_ps(p + 8);
            const __m256 xa = _mm256_sub_ps(wj, _mm256_add_ps(pa, pa));
            const __m256 xb = _mm256_sub_ps(wj, _mm256_add_ps(pb, pb));
            SOMLAB_AVX2_STEP(xa, jv, a1, a2, ia1, ia2);
            SOMLAB_AVX2_STEP(xb, jv, b1, b2, ib1, ib2);
        }
        _mm256_storeu_ps(s1 + r, a1);
        _mm256_storeu_ps(s2 + r, a2);
        _mm256_storeu_ps(s1 + r + 8, b1);
        _mm256_storeu_ps(s2 + r + 8, b2);
        _mm256_storeu_si256((__m256i *)(k1 + r), _mm256_castps_si256(ia1));
        _mm256_storeu_si256((__m256i *)(k2 + r), _mm256_castps_si256(ia2));
        _mm256_storeu_si256((__m256i *)(k1 + r + 8), _mm256_castps_si256(ib1));
        _mm256_storeu_si256((__m256i *)(k2 + r + 8), _mm256_castps_si256(ib2));
    }
    for (; r < rv; r += 8) {
        __m256 a1 = _mm256_loadu_ps(s1 + r), a2 = _mm256_loadu_ps(s2 + r);
        __m256 ia1 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(k1 + r)));
        __m256 ia2 = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(k2 + r)));
        for (int64_t j = 0; j < n; j++) {
            const __m256 pa = _mm256_loadu_ps(PT + j * rows + r);
            const __m256 xa = _mm256_sub_ps(_mm256_set1_ps(w[j]), _mm256_add_ps(pa, pa));
            const __m256 jv = _mm256_castsi256_ps(_mm256_set1_epi32((int32_t)j));
            SOMLAB_AVX2_STEP(xa, jv, a1, a2, ia1, ia2);
        }
        _mm256_storeu_ps(s1 + r, a1);
        _mm256_storeu_ps(s2 + r, a2);
        _mm256_storeu_si256((__m256i *)(k1 + r), _mm256_castps_si256(ia1));
        _mm256_storeu_si256((__m256i *)(k2 + r), _mm256_castps_si256(ia2));
    }
}
static int somlab_fast_top2(const float *restrict PT, const float *restrict w, int64_t rows,
                            int64_t rv, int64_t n,
                            float *restrict s1, float *restrict s2,
                            int32_t *restrict k1, int32_t *restrict k2) {
    const int level = somlab_simd_level();
    if (level == 0) return 0;
    const int64_t r = level == 2 ? somlab_top2_avx512(PT, w, rows, rv, n, s1, s2, k1, k2) : 0;
    somlab_top2_avx2(PT, w, rows, rv, n, s1, s2, k1, k2, r);
    return 1;
}
/* 1 where the AVX-512 / AVX2 loops ranked rows [0, rv) (float32, kk == 2) */
#define SOMLAB_FAST_TOP2_f32(PT, w, rows, rv, n, s1, s2, k1, k2)                                \
    somlab_fast_top2(PT, w, rows, rv, n, s1, s2, k1, k2)
/* 1 where the AVX-512 loop ranked the SOMLAB_RB finite rows at p (float32, kk <= 2) */
#define SOMLAB_FAST_ROWS_f32(p, w, n, kk, jj)                                                    \
    (somlab_simd_level() == 2 ? (somlab_rows_avx512(p, w, n, kk, jj), 1) : 0)
#else
#define SOMLAB_RB 4
#define SOMLAB_FAST_ROWS_f32(p, w, n, kk, jj) 0
#define SOMLAB_FAST_TOP2_f32(PT, w, rows, rv, n, s1, s2, k1, k2) 0
#endif
#define SOMLAB_FAST_TOP2_f64(PT, w, rows, rv, n, s1, s2, k1, k2) 0
#define SOMLAB_FAST_ROWS_f64(p, w, n, kk, jj) 0

#define SOMLAB_WINNERS_DEFINE(T, IT, SFX, SQ)                                                              \
    /* 32-byte GCC vectors (two SSE registers in the default clone): elementwise IEEE ops, so    \
     * every clone rounds alike */                                                               \
    typedef T somlab_v_##SFX __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));    \
    typedef IT somlab_m_##SFX __attribute__((vector_size(32), aligned(sizeof(T)), may_alias));   \
    static inline int somlab_any_##SFX(somlab_m_##SFX h) {                                       \
        uint64_t u[4];                                                                           \
        memcpy(u, &h, sizeof u);                                                                 \
        return ((u[0] | u[1]) | (u[2] | u[3])) != 0;                                             \
    }                                                                                            \
                                                                                                 \
    /* xb[r] = (X[r] - ref) * sc (what torch's (X - ref) * sc rounds to) and xsq[r] = |xb[r]|^2  \
     * for r < rows, the sum in one fixed order: two vectors of partial sums over the columns    \
     * (a multiple of 2 VL), their sum, its lanes pairwise, then the last columns one by one.    \
     * Returns the largest xsq (NaN where one is NaN). */                                        \
    SOMLAB_WCLONES                                                                               \
    static double somlab_prep_##SFX(const T *restrict X, int64_t rows, int64_t m,                \
                                    const T *restrict ref, T sc, T *restrict xb,                 \
                                    T *restrict xsq) {                                           \
        enum { VL = 32 / sizeof(T) };                                                            \
        T top = 0; /* the largest xsq; NaN where one is NaN */                                   \
        const somlab_v_##SFX scv = sc - (somlab_v_##SFX){0};                                     \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *restrict x = X + r * m;                                                     \
            T *restrict o = xb + r * m;                                                          \
            somlab_v_##SFX a0 = {0}, a1 = {0};                                                   \
            int64_t i = 0;                                                                       \
            for (; i + 2 * VL <= m; i += 2 * VL) {                                               \
                const somlab_v_##SFX u = (*(const somlab_v_##SFX *)(x + i) -                     \
                                          *(const somlab_v_##SFX *)(ref + i)) * scv;             \
                const somlab_v_##SFX v = (*(const somlab_v_##SFX *)(x + i + VL) -                \
                                          *(const somlab_v_##SFX *)(ref + i + VL)) * scv;        \
                *(somlab_v_##SFX *)(o + i) = u;                                                  \
                *(somlab_v_##SFX *)(o + i + VL) = v;                                             \
                a0 += u * u;                                                                     \
                a1 += v * v;                                                                     \
            }                                                                                    \
            a0 += a1;                                                                            \
            T lanes[VL];                                                                         \
            memcpy(lanes, &a0, sizeof lanes);                                                    \
            for (int h = VL / 2; h >= 1; h /= 2)                                                 \
                for (int l = 0; l < h; l++) lanes[l] += lanes[l + h];                            \
            T s = lanes[0];                                                                      \
            for (; i < m; i++) {                                                                 \
                const T u = (x[i] - ref[i]) * sc;                                                \
                o[i] = u;                                                                        \
                s += u * u;                                                                      \
            }                                                                                    \
            xsq[r] = s;                                                                          \
            top = (top != top || s <= top) ? top : s; /* a NaN, once seen, stays */             \
        }                                                                                        \
        return (double)top;                                                                      \
    }                                                                                            \
                                                                                                 \
    /* max over columns i of |hi_i - ref_i| and |lo_i - ref_i| (T arithmetic), lo_i / hi_i the   \
     * smallest / largest value of column i of X [rows >= 1, m]: max |x - ref| over X, as        \
     * _centred_scale forms it; NaN where X holds a NaN or an infinity (x * 0 is NaN there).     \
     * scratch: 3 m entries. */                                                                  \
    SOMLAB_WCLONES                                                                               \
    static double somlab_spread_##SFX(const T *restrict X, int64_t rows, int64_t m,              \
                                      const T *restrict ref, T *restrict scratch) {              \
        T *restrict lo = scratch, *restrict hi = scratch + m, *restrict probe = scratch + 2 * m; \
        for (int64_t i = 0; i < m; i++) {                                                        \
            lo[i] = hi[i] = X[i];                                                                \
            probe[i] = 0;                                                                        \
        }                                                                                        \
        int64_t r = 0;                                                                           \
        for (; r + 4 <= rows; r += 4) { /* four rows per load / store of the column state */     \
            const T *restrict x = X + r * m;                                                     \
            for (int64_t i = 0; i < m; i++) {                                                    \
                const T a = x[i], b = x[m + i], c = x[2 * m + i], d = x[3 * m + i];              \
                const T l1 = a < b ? a : b, l2 = c < d ? c : d, l = l1 < l2 ? l1 : l2;           \
                const T h1 = a > b ? a : b, h2 = c > d ? c : d, h = h1 > h2 ? h1 : h2;           \
                lo[i] = l < lo[i] ? l : lo[i];                                                   \
                hi[i] = h > hi[i] ? h : hi[i];                                                   \
                probe[i] += ((a * (T)0 + b * (T)0) + (c * (T)0 + d * (T)0));                     \
            }                                                                                    \
        }                                                                                        \
        for (; r < rows; r++) {                                                                  \
            const T *restrict x = X + r * m;                                                     \
            for (int64_t i = 0; i < m; i++) {                                                    \
                const T v = x[i];                                                                \
                lo[i] = v < lo[i] ? v : lo[i];                                                   \
                hi[i] = v > hi[i] ? v : hi[i];                                                   \
                probe[i] += v * (T)0;                                                            \
            }                                                                                    \
        }                                                                                        \
        int bad = 0;                                                                             \
        T big = 0;                                                                               \
        for (int64_t i = 0; i < m; i++) {                                                        \
            bad |= probe[i] != probe[i];                                                         \
            T a = hi[i] - ref[i], b = lo[i] - ref[i];                                            \
            a = a < 0 ? -a : a;                                                                  \
            b = b < 0 ? -b : b;                                                                  \
            big = a > big ? a : big;                                                             \
            big = b > big ? b : big;                                                             \
            bad |= big != big; /* a NaN reference */                                             \
        }                                                                                        \
        return bad ? (double)NAN : (double)big;                                                  \
    }                                                                                            \
                                                                                                 \
    /* d[i] = sqrt(d[i]) / sc (root) or d[i] / sc / sc: IEEE square roots (correctly rounded, as \
     * torch's sqrt) and divisions by a power of two (exact) */                                  \
    SOMLAB_WCLONES                                                                               \
    static void somlab_roots_##SFX(T *restrict d, int64_t count, T sc, int root) {               \
        if (root)                                                                                \
            for (int64_t i = 0; i < count; i++) d[i] = sqrt##SQ(d[i]) / sc;                      \
        else                                                                                     \
            for (int64_t i = 0; i < count; i++) d[i] = d[i] / sc / sc;                           \
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
    /* row r's kk first minima (v, jj) into idx / dist [rows, kk]: node index amap[j] (amap NULL:\
     * j), node 0 for a slot left unfilled (all left +inf, as argmin of an all-inf row); the     \
     * squared distance d2 = max(v + xsq, 0) (NaN stays NaN); a winner whose d2 < share (xsq +  \
     * w_j) (the expansion cancelled) is left to the caller (the direct form): returns 1. */    \
    static inline int somlab_finish_##SFX(int64_t r, int kk, const T *v, const int64_t *jj,      \
                                          const int64_t *restrict amap, T xsq,                   \
                                          const T *restrict w, T share,                          \
                                          int64_t *restrict idx, T *restrict dist) {             \
        int bad = 0;                                                                             \
        for (int q = 0; q < kk; q++) {                                                           \
            const int64_t j = jj[q];                                                             \
            idx[r * kk + q] = j < 0 ? 0 : (amap ? amap[j] : j);                                  \
            T d2 = v[q] + xsq;                                                                   \
            d2 = d2 < 0 ? 0 : d2; /* clamp_min(0): NaN stays NaN */                              \
            if (q == 0 && j >= 0 && d2 < share * (xsq + w[j])) bad = 1;                          \
            dist[r * kk + q] = d2;                                                               \
        }                                                                                        \
        return bad;                                                                              \
    }                                                                                            \
                                                                                                 \
    /* The insertion scan of the row values p[j], j < n, in index order.  le:                    \
     * only values <= thr0 can enter (thr0 is the kk-th smallest value): 32-byte vectors of them \
     * are compared 8 at a time and looked at value by value where one is <= thr0.  Else a chunk \
     * is looked at value by value when one of its values could enter the list (!(d >= kth)). */ \
    static inline void somlab_scan_##SFX(const T *restrict p, int64_t n,                         \
                                         int kk, T thr0, int le, T *v, int64_t *jj) {            \
        enum { VL = 32 / sizeof(T), BL = 8 * VL };                                               \
        int64_t c = 0;                                                                           \
        if (le) {                                                                                \
            const somlab_v_##SFX tv = thr0 - (somlab_v_##SFX){0};                                \
            for (; c + BL <= n; c += BL) {                                                       \
                somlab_m_##SFX h[8];                                                             \
                for (int s = 0; s < 8; s++) {                                                    \
                    const somlab_v_##SFX x = *(const somlab_v_##SFX *)(p + c + s * VL);          \
                    h[s] = x <= tv;                                                              \
                }                                                                                \
                if (!somlab_any_##SFX(((h[0] | h[1]) | (h[2] | h[3])) |                          \
                                      ((h[4] | h[5]) | (h[6] | h[7]))))                          \
                    continue;                                                                    \
                for (int s = 0; s < 8; s++)                                                      \
                    if (somlab_any_##SFX(h[s]))                                                  \
                        for (int l = s * VL; l < (s + 1) * VL; l++)                              \
                            somlab_insert_##SFX(p[c + l], c + l, kk, v, jj);                     \
            }                                                                                    \
            for (; c + VL <= n; c += VL) {                                                       \
                const somlab_v_##SFX x = *(const somlab_v_##SFX *)(p + c);                       \
                if (somlab_any_##SFX(x <= tv))                                                   \
                    for (int l = 0; l < VL; l++) somlab_insert_##SFX(p[c + l], c + l, kk, v, jj);\
            }                                                                                    \
        } else {                                                                                 \
            for (; c + SOMLAB_CHUNK <= n; c += SOMLAB_CHUNK) {                                   \
                const T thr = v[kk - 1];                                                         \
                int hit = 0;                                                                     \
                for (int l = 0; l < SOMLAB_CHUNK; l++) hit |= !((p[c + l]) >= thr);              \
                if (hit)                                                                         \
                    for (int l = 0; l < SOMLAB_CHUNK; l++)                                       \
                        somlab_insert_##SFX(p[c + l], c + l, kk, v, jj);                         \
            }                                                                                    \
        }                                                                                        \
        for (; c < n; c++) somlab_insert_##SFX(p[c], c, kk, v, jj);                              \
    }                                                                                            \
                                                                                                 \
    /* The kk (<= SOMLAB_MAXK) first minima of each row of d = |wc|^2 - 2 P (P [rows, n] =       \
     * xb.wc^T, row stride n; w [n] = |wc|^2) into idx / dist [rows, kk]: node index amap[j]      \
     * (amap NULL: j), node 0 for a slot no value fills (all left +inf, as argmin of an all-inf  \
     * row), and the squared distance d2 = max(d_j + xsq, 0) (NaN stays NaN).  A row whose values \
     * are all finite (|d| <= |xb|^2 + wlim, wlim = 2 max |wc|^2, +inf where that is not finite)  \
     * with kk <= 2 takes the fast paths; drow (n entries) holds the row's d otherwise.  A winner  \
     * whose d2 < share (xsq + w_j) (the expansion cancelled) is left to the caller (the direct   \
     * form): its row r0 + r is appended to bad.  Returns their count. */                        \
    SOMLAB_WCLONES                                                                               \
    static int64_t somlab_rank_##SFX(const T *restrict P, int64_t rows, int64_t n, int kk,       \
                                     const int64_t *restrict amap, const T *restrict xsq,        \
                                     T wlim, const T *restrict w, T share, int64_t r0,           \
                                     int64_t *restrict bad, int64_t *restrict idx,               \
                                     T *restrict dist, T *restrict drow) {                       \
        int64_t nbad = 0;                                                                        \
        const T inf = (T)INFINITY;                                                               \
        int64_t group = -1; /* the first row of the block of SOMLAB_RB rows ranked together */   \
        int64_t gj[2 * SOMLAB_RB];                                                               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *restrict p = P + r * n;                                                     \
            T v[SOMLAB_MAXK];                                                                    \
            int64_t jj[SOMLAB_MAXK];                                                             \
            for (int q = 0; q < kk; q++) {                                                       \
                v[q] = inf;                                                                      \
                jj[q] = -1;                                                                      \
            }                                                                                    \
            const int finite = kk <= 2 && (T)2 * (xsq[r] + wlim) < inf;                          \
            if (finite && r % SOMLAB_RB == 0 && r + SOMLAB_RB <= rows) {                         \
                int all = 1;                                                                     \
                for (int q = 1; q < SOMLAB_RB; q++) all &= (T)2 * (xsq[r + q] + wlim) < inf;     \
                if (all && SOMLAB_FAST_ROWS_##SFX(p, w, n, kk, gj)) group = r;                  \
            }                                                                                    \
            if (group >= 0 && r < group + SOMLAB_RB) {                                           \
                for (int q = 0; q < kk; q++) {                                                   \
                    jj[q] = gj[2 * (r - group) + q];                                             \
                    if (jj[q] >= 0) v[q] = w[jj[q]] - (p[jj[q]] + p[jj[q]]);                     \
                }                                                                                \
            } else {                                                                             \
                for (int64_t j = 0; j < n; j++) drow[j] = w[j] - (p[j] + p[j]);                  \
                if (finite) {                                                                    \
                    enum { NL = 128 / sizeof(T) }; /* lanes: four 32-byte vectors */             \
                    T m1[NL], m2[NL];                                                            \
                    for (int l = 0; l < NL; l++) m1[l] = m2[l] = inf;                            \
                    int64_t c = 0;                                                               \
                    for (; c + NL <= n; c += NL)                                                 \
                        for (int l = 0; l < NL; l++) { /* min / max: minps, maxps */             \
                            const T x = drow[c + l];                                             \
                            const T hi = x > m1[l] ? x : m1[l];                                  \
                            m1[l] = x < m1[l] ? x : m1[l];                                       \
                            m2[l] = hi < m2[l] ? hi : m2[l];                                     \
                        }                                                                        \
                    for (; c < n; c++) {                                                         \
                        const T x = drow[c];                                                     \
                        const T hi = x > m1[0] ? x : m1[0];                                      \
                        m1[0] = x < m1[0] ? x : m1[0];                                           \
                        m2[0] = hi < m2[0] ? hi : m2[0];                                         \
                    }                                                                            \
                    /* t: the kk-th smallest value of the row, from the lanes' two smallest by    \
                     * halving (the two smallest of two pairs: min of the firsts, min of the     \
                     * larger first and the smaller second) */                                   \
                    for (int h = NL / 2; h >= 1; h /= 2)                                         \
                        for (int l = 0; l < h; l++) {                                            \
                            const T a1 = m1[l], b1 = m1[l + h];                                  \
                            const T lo = a1 < b1 ? a1 : b1, hi = a1 > b1 ? a1 : b1;              \
                            const T s2 = m2[l] < m2[l + h] ? m2[l] : m2[l + h];                  \
                            m1[l] = lo;                                                          \
                            m2[l] = hi < s2 ? hi : s2;                                           \
                        }                                                                        \
                    somlab_scan_##SFX(drow, n, kk, kk == 2 ? m2[0] : m1[0], 1, v, jj);           \
                } else {                                                                         \
                    somlab_scan_##SFX(drow, n, kk, inf, 0, v, jj);                               \
                }                                                                                \
            }                                                                                    \
            if (somlab_finish_##SFX(r, kk, v, jj, amap, xsq[r], w, share, idx, dist))          \
                bad[nbad++] = r0 + r;                                                            \
        }                                                                                        \
        return nbad;                                                                             \
    }

/* The node-major form for kk <= 2, on PT [n, rows] = wc . xb^T (row stride ld: the values of
 * node j for the block's rows are contiguous; d = w_j - 2 PT[j]).  The nodes run in index order, each updating the rows'
 * two first minima (value, index) elementwise across rows: strict < keeps the lowest index of
 * equal values, so no merge is needed.  Rows whose values may not all be finite (|d| <=
 * |xb|^2 + wlim, wlim = 2 max |wc|^2) are ranked again by the exact insertion scan (NaN first).
 * s1, s2, k1, k2: scratch of >= rows entries.  Output as somlab_rank_*. */
#define SOMLAB_WINNERS_T_DEFINE(T, IT, SFX)                                                      \
    SOMLAB_WCLONES                                                                               \
    static int64_t somlab_rank2t_##SFX(const T *restrict PT, int64_t ld, int64_t rows,           \
                                       int64_t n, int kk,                                        \
                                       const int64_t *restrict amap, const T *restrict xsq,      \
                                       T wlim, const T *restrict w, T share, int64_t r0,         \
                                       int64_t *restrict bad, T *restrict s1,                    \
                                       T *restrict s2, IT *restrict k1, IT *restrict k2,         \
                                       int64_t *restrict idx, T *restrict dist) {                \
        int64_t nbad = 0;                                                                        \
        enum { VL = 32 / sizeof(T) };                                                            \
        const T inf = (T)INFINITY;                                                               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            s1[r] = s2[r] = inf;                                                                 \
            k1[r] = k2[r] = -1;                                                                  \
        }                                                                                        \
        const int64_t rv = rows - rows % VL;                                                     \
        const int fast = kk <= 2 && SOMLAB_FAST_TOP2_##SFX(PT, w, ld, rv, n, s1, s2, k1, k2);  \
        for (int64_t j = 0; j < n; j++) {                                                        \
            const T *restrict p = PT + j * ld;                                                   \
            const somlab_m_##SFX jv = (IT)j - (somlab_m_##SFX){0};                               \
            const somlab_v_##SFX wj = w[j] - (somlab_v_##SFX){0};                                \
            if (fast) {                                                                          \
            } else if (kk == 2) {                                                                \
                for (int64_t r = 0; r < rv; r += VL) {                                           \
                    const somlab_v_##SFX pr = *(const somlab_v_##SFX *)(p + r), x = wj - (pr + pr);   \
                    somlab_v_##SFX *a1 = (somlab_v_##SFX *)(s1 + r);                             \
                    somlab_v_##SFX *a2 = (somlab_v_##SFX *)(s2 + r);                             \
                    somlab_m_##SFX *i1 = (somlab_m_##SFX *)(k1 + r);                             \
                    somlab_m_##SFX *i2 = (somlab_m_##SFX *)(k2 + r);                             \
                    const somlab_v_##SFX m1 = *a1, m2 = *a2;                                     \
                    const somlab_m_##SFX lt1 = x < m1, lt2 = x < m2;                             \
                    const somlab_m_##SFX o1 = *i1;                                               \
                    *i2 = (lt2 & ((lt1 & o1) | (~lt1 & jv))) | (~lt2 & *i2);                     \
                    *i1 = (lt1 & jv) | (~lt1 & o1);                                              \
                    *a2 = (somlab_v_##SFX)((lt2 & (somlab_m_##SFX)((somlab_v_##SFX)((lt1 & (somlab_m_##SFX)m1) | (~lt1 & (somlab_m_##SFX)x)))) | (~lt2 & (somlab_m_##SFX)m2));\
                    *a1 = (somlab_v_##SFX)((lt1 & (somlab_m_##SFX)x) | (~lt1 & (somlab_m_##SFX)m1));\
                }                                                                                \
            } else {                                                                             \
                for (int64_t r = 0; r < rv; r += VL) {                                           \
                    const somlab_v_##SFX pr = *(const somlab_v_##SFX *)(p + r), x = wj - (pr + pr);   \
                    somlab_v_##SFX *a1 = (somlab_v_##SFX *)(s1 + r);                             \
                    somlab_m_##SFX *i1 = (somlab_m_##SFX *)(k1 + r);                             \
                    const somlab_v_##SFX m1 = *a1;                                               \
                    const somlab_m_##SFX lt1 = x < m1;                                           \
                    *i1 = (lt1 & jv) | (~lt1 & *i1);                                             \
                    *a1 = (somlab_v_##SFX)((lt1 & (somlab_m_##SFX)x) | (~lt1 & (somlab_m_##SFX)m1));\
                }                                                                                \
            }                                                                                    \
            for (int64_t r = rv; r < rows; r++) {                                                \
                const T x = w[j] - (p[r] + p[r]);                                     \
                if (x < s1[r]) {                                                                 \
                    s2[r] = s1[r];                                                               \
                    k2[r] = k1[r];                                                               \
                    s1[r] = x;                                                                   \
                    k1[r] = (IT)j;                                                               \
                } else if (x < s2[r]) {                                                          \
                    s2[r] = x;                                                                   \
                    k2[r] = (IT)j;                                                               \
                }                                                                                \
            }                                                                                    \
        }                                                                                        \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            T v[2] = {s1[r], s2[r]};                                                             \
            int64_t jj[2] = {k1[r], k2[r]};                                                      \
            if (!((T)2 * (xsq[r] + wlim) < inf)) { /* NaN / inf possible: the exact scan */      \
                v[0] = v[1] = inf;                                                               \
                jj[0] = jj[1] = -1;                                                              \
                for (int64_t j = 0; j < n; j++)                                                  \
                    somlab_insert_##SFX(w[j] - (PT[j * ld + r] + PT[j * ld + r]), j, kk, v, jj);\
            }                                                                                    \
            if (somlab_finish_##SFX(r, kk, v, jj, amap, xsq[r], w, share, idx, dist))          \
                bad[nbad++] = r0 + r;                                                            \
        }                                                                                        \
        return nbad;                                                                             \
    }

SOMLAB_WINNERS_DEFINE(float, int32_t, f32, f)
SOMLAB_WINNERS_DEFINE(double, int64_t, f64, )
SOMLAB_WINNERS_T_DEFINE(float, int32_t, f32)
SOMLAB_WINNERS_T_DEFINE(double, int64_t, f64)

/* The passes on nt threads (OpenMP, where the module is built with it; the caller passes nt = 1
 * unless the process has one OpenMP runtime, torch's): the rows cut into nt ranges (multiples of
 * align), each ranked by the serial pass; the rows left to the caller (bad) are written by each
 * thread from its first row's slot, then moved together in row order.  The result does not
 * depend on nt. */
#ifdef _OPENMP
#include <dlfcn.h>
#include <omp.h>
#define SOMLAB_OPENMP 1
#else
#define SOMLAB_OPENMP 0
#endif
/* The file of the OpenMP runtime this module's regions run on ("" where it has none): the
 * caller threads the passes only where it is torch's own (one thread pool). */
static const char *somlab_openmp_path(void) {
#ifdef _OPENMP
    Dl_info info;
    if (dladdr((void *)&omp_get_num_threads, &info) && info.dli_fname) return info.dli_fname;
#endif
    return "";
}
#define SOMLAB_MAXT 64
static inline void somlab_range(int64_t rows, int t, int nt, int64_t align, int64_t *a,
                                int64_t *b) {
    int64_t per = (rows + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    *a = (int64_t)t * per < rows ? (int64_t)t * per : rows;
    *b = *a + per < rows ? *a + per : rows;
}
static inline int64_t somlab_gather_bad(int64_t *bad, int nt, const int64_t *start,
                                        const int64_t *count) {
    int64_t total = 0;
    for (int t = 0; t < nt; t++) {
        if (count[t] && start[t] != total) memmove(bad + total, bad + start[t], count[t] * 8);
        total += count[t];
    }
    return total;
}
#define SOMLAB_THREADED_DEFINE(T, IT, SFX)                                                        \
    static double somlab_prep_mt_##SFX(int nt, const T *X, int64_t rows, int64_t m,              \
                                       const T *ref, T sc, T *xb, T *xsq) {                      \
        nt = nt < SOMLAB_MAXT ? nt : SOMLAB_MAXT;                                                \
        if (nt <= 1 || !SOMLAB_OPENMP) return somlab_prep_##SFX(X, rows, m, ref, sc, xb, xsq);    \
        double top[SOMLAB_MAXT];                                                                 \
        int used = 1;                                                                            \
        _Pragma("omp parallel num_threads(nt)") {                                                \
            const int t = SOMLAB_THREAD_NUM, u = SOMLAB_NUM_THREADS;                             \
            int64_t a, b;                                                                        \
            somlab_range(rows, t, u, 1, &a, &b);                                                 \
            top[t] = b > a ? somlab_prep_##SFX(X + a * m, b - a, m, ref, sc, xb + a * m, xsq + a)\
                           : 0.0;                                                                \
            if (t == 0) used = u;                                                                \
        }                                                                                        \
        double best = 0;                                                                         \
        for (int t = 0; t < used; t++) best = (best != best || top[t] <= best) ? best : top[t];  \
        return best;                                                                             \
    }                                                                                            \
    static int64_t somlab_rank_mt_##SFX(int nt, const T *P, int64_t rows, int64_t n, int kk,     \
                                        const int64_t *amap, const T *xsq, T wlim, const T *w,   \
                                        T share, int64_t r0, int64_t *bad, int64_t *idx,         \
                                        T *dist, T *drow) {                                      \
        nt = nt < SOMLAB_MAXT ? nt : SOMLAB_MAXT;                                                \
        if (nt <= 1 || !SOMLAB_OPENMP)                                                           \
            return somlab_rank_##SFX(P, rows, n, kk, amap, xsq, wlim, w, share, r0, bad, idx,    \
                                     dist, drow);                                                \
        int64_t start[SOMLAB_MAXT], count[SOMLAB_MAXT];                                          \
        int used = 1;                                                                            \
        _Pragma("omp parallel num_threads(nt)") {                                                \
            const int t = SOMLAB_THREAD_NUM, u = SOMLAB_NUM_THREADS;                             \
            int64_t a, b;                                                                        \
            somlab_range(rows, t, u, SOMLAB_RB, &a, &b);                                         \
            start[t] = a;                                                                        \
            count[t] = b > a ? somlab_rank_##SFX(P + a * n, b - a, n, kk, amap, xsq + a, wlim,   \
                                                 w, share, r0 + a, bad + a, idx + a * kk,        \
                                                 dist + a * kk, drow + t * n)                    \
                             : 0;                                                                \
            if (t == 0) used = u;                                                                \
        }                                                                                        \
        return somlab_gather_bad(bad, used, start, count);                                       \
    }                                                                                            \
    static int64_t somlab_rank2t_mt_##SFX(int nt, const T *PT, int64_t rows, int64_t n, int kk,  \
                                          const int64_t *amap, const T *xsq, T wlim,             \
                                          const T *w, T share, int64_t r0, int64_t *bad, T *s1,  \
                                          T *s2, IT *k1, IT *k2, int64_t *idx, T *dist) {        \
        nt = nt < SOMLAB_MAXT ? nt : SOMLAB_MAXT;                                                \
        if (nt <= 1 || !SOMLAB_OPENMP)                                                           \
            return somlab_rank2t_##SFX(PT, rows, rows, n, kk, amap, xsq, wlim, w, share, r0,     \
                                       bad, s1, s2, k1, k2, idx, dist);                          \
        int64_t start[SOMLAB_MAXT], count[SOMLAB_MAXT];                                          \
        int used = 1;                                                                            \
        _Pragma("omp parallel num_threads(nt)") {                                                \
            const int t = SOMLAB_THREAD_NUM, u = SOMLAB_NUM_THREADS;                             \
            int64_t a, b;                                                                        \
            somlab_range(rows, t, u, 32, &a, &b);                                                \
            start[t] = a;                                                                        \
            count[t] = b > a ? somlab_rank2t_##SFX(PT + a, rows, b - a, n, kk, amap, xsq + a,    \
                                                   wlim, w, share, r0 + a, bad + a, s1 + a,      \
                                                   s2 + a, k1 + a, k2 + a, idx + a * kk,         \
                                                   dist + a * kk)                                \
                             : 0;                                                                \
            if (t == 0) used = u;                                                                \
        }                                                                                        \
        return somlab_gather_bad(bad, used, start, count);                                       \
    }

#ifdef _OPENMP
#define SOMLAB_THREAD_NUM omp_get_thread_num()
#define SOMLAB_NUM_THREADS omp_get_num_threads()
#else
#define SOMLAB_THREAD_NUM 0
#define SOMLAB_NUM_THREADS 1
#endif
SOMLAB_THREADED_DEFINE(float, int32_t, f32)
SOMLAB_THREADED_DEFINE(double, int64_t, f64)

#endif
