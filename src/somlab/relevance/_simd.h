/* The node loops of the compiled relevance engine (K1 + K2 activations, K5 omega distances),
 * with an AVX2 clone picked at load time on x86-64 Linux (GCC target_clones), so wheels stay
 * portable (no -march=native) and still use the wide registers where the CPU has them.
 *
 * Storage is feature-major: C[i * cap + j] is feature i of node j.  The loops run over blocks of
 * 8 nodes with the features innermost, so each node's sum stays in a register and is formed
 * feature by feature, in order, exactly as the scalar loop forms it.  Element-wise float32
 * operations only (no FMA: -ffp-contract=off; IEEE division and square root), so every clone and
 * the portable fallback round exactly as the oracles. */
#ifndef SOMLAB_SIMD_H
#define SOMLAB_SIMD_H
#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SOMLAB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SOMLAB_CLONES
#endif

#if defined(__GNUC__)
/* GCC / clang vector extension: 8 float32 lanes, unaligned loads allowed (aligned(4)).  Lowered
 * to two SSE registers in the default clone, one AVX register in the avx2 clone. */
typedef float somlab_v8 __attribute__((vector_size(32), aligned(4), may_alias));
#define SOMLAB_VEC 1
#endif

/* act[j] = sw[j] / (sw[j] + D_j + 1e-7f) for j < K, with S_j = sum_i omega[i, j] (x[i] - C[i, j])^2
 * (features in order) and D_j = S_j (squared) or sqrtf(S_j); returns the first maximum's index
 * (ties -> lowest).  Reads columns up to min(cap, K rounded up to 8) of C, omega (their values
 * beyond K do not matter); writes act[:K] only. */
SOMLAB_CLONES
static int64_t somlab_activations(const float *restrict x, const float *restrict C,
                                  const float *restrict omega, const float *restrict sw,
                                  int64_t m, int64_t cap, int64_t K, int squared,
                                  float *restrict act) {
    int64_t j = 0;
#ifdef SOMLAB_VEC
    for (; j < K && j + 8 <= cap; j += 8) {
        somlab_v8 acc = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t i = 0; i < m; i++) {
            const somlab_v8 d = x[i] - *(const somlab_v8 *)(C + i * cap + j);
            acc += d * d * *(const somlab_v8 *)(omega + i * cap + j);
        }
        if (j + 8 <= K) {
            *(somlab_v8 *)(act + j) = acc;
        } else {
            float tmp[8];
            *(somlab_v8 *)tmp = acc;
            for (int64_t l = 0; l < K - j; l++) act[j + l] = tmp[l];
        }
    }
#endif
    for (; j < K; j++) { /* the last columns when K is near cap (or no vector extension) */
        float s = 0.0f;
        for (int64_t i = 0; i < m; i++) {
            const float d = x[i] - C[i * cap + j];
            s += d * d * omega[i * cap + j];
        }
        act[j] = s;
    }
    if (squared) {
        for (j = 0; j < K; j++) act[j] = sw[j] / (sw[j] + act[j] + 1e-7f);
    } else {
        for (j = 0; j < K; j++) act[j] = sw[j] / (sw[j] + sqrtf(act[j]) + 1e-7f);
    }
    int64_t best = 0;
    for (j = 1; j < K; j++)
        if (act[j] > act[best]) best = j;
    return best;
}

/* out[k - k0] = sum_f (omega[f, i] - omega[f, k])^2 for k0 <= k < K (features in order): the
 * squared K5 distance of node i to each node k.  Reads columns up to min(cap, k0 + the count
 * rounded up to 8); writes out[:K - k0] only. */
SOMLAB_CLONES
static void somlab_omega_sq_dist(const float *restrict omega, int64_t m, int64_t cap, int64_t i,
                                 int64_t k0, int64_t K, float *restrict out) {
    int64_t k = k0;
#ifdef SOMLAB_VEC
    for (; k < K && k + 8 <= cap; k += 8) {
        somlab_v8 acc = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t f = 0; f < m; f++) {
            const somlab_v8 d = omega[f * cap + i] - *(const somlab_v8 *)(omega + f * cap + k);
            acc += d * d;
        }
        if (k + 8 <= K) {
            *(somlab_v8 *)(out + (k - k0)) = acc;
        } else {
            float tmp[8];
            *(somlab_v8 *)tmp = acc;
            for (int64_t l = 0; l < K - k; l++) out[k - k0 + l] = tmp[l];
        }
    }
#endif
    for (; k < K; k++) {
        float s = 0.0f;
        for (int64_t f = 0; f < m; f++) {
            const float d = omega[f * cap + i] - omega[f * cap + k];
            s += d * d;
        }
        out[k - k0] = s;
    }
}
#endif
