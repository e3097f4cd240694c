/* The activation loop of the compiled relevance engine (K1), with an AVX2 clone picked at load
 * time on x86-64 Linux (GCC target_clones), so wheels stay portable (no -march=native) and still
 * use the wide registers where the CPU has them.  Element-wise float32 operations only (no FMA:
 * -ffp-contract=off), so every clone rounds exactly as the portable one. */
#ifndef SOMLAB_SIMD_H
#define SOMLAB_SIMD_H
#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SOMLAB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SOMLAB_CLONES

/* K2 on top: act[j] = sw[j] / (sw[j] + D_j + 1e-7f), D_j = S_j (squared) or sqrtf(S_j); returns
 * the first maximum's index (ties -> lowest). */
SOMLAB_CLONES
static int64_t somlab_activations(const float *restrict x, const float *restrict C,
                                  const float *restrict omega, const float *restrict sw,
                                  int64_t m, int64_t cap, int64_t K, int squared,
                                  float *restrict act) {
    somlab_weighted_sq(x, C, omega, m, cap, K, act);
    if (squared) {
        for (int64_t j = 0; j < K; j++) act[j] = sw[j] / (sw[j] + act[j] + 1e-7f);
    } else {
        for (int64_t j = 0; j < K; j++) act[j] = sw[j] / (sw[j] + sqrtf(act[j]) + 1e-7f);
    }
    int64_t best = 0;
    for (int64_t j = 1; j < K; j++)
        if (act[j] > act[best]) best = j;
    return best;
}
#endif

/* act[j] = sum_i omega[i, j] * (x[i] - C[i, j])^2 for j < K (features in order), where
 * C[i, j] = C[i * cap + j]. */
SOMLAB_CLONES
static void somlab_weighted_sq(const float *restrict x, const float *restrict C,
                               const float *restrict omega, int64_t m, int64_t cap, int64_t K,
                               float *restrict act) {
    for (int64_t j = 0; j < K; j++) act[j] = 0.0f;
    for (int64_t i = 0; i < m; i++) {
        const float xi = x[i];
        const float *restrict Ci = C + i * cap;
        const float *restrict Oi = omega + i * cap;
        for (int64_t j = 0; j < K; j++) {
            const float d = xi - Ci[j];
            act[j] += d * d * Oi[j];
        }
    }
}

/* K2 on top: act[j] = sw[j] / (sw[j] + D_j + 1e-7f), D_j = S_j (squared) or sqrtf(S_j); returns
 * the first maximum's index (ties -> lowest). */
SOMLAB_CLONES
static int64_t somlab_activations(const float *restrict x, const float *restrict C,
                                  const float *restrict omega, const float *restrict sw,
                                  int64_t m, int64_t cap, int64_t K, int squared,
                                  float *restrict act) {
    somlab_weighted_sq(x, C, omega, m, cap, K, act);
    if (squared) {
        for (int64_t j = 0; j < K; j++) act[j] = sw[j] / (sw[j] + act[j] + 1e-7f);
    } else {
        for (int64_t j = 0; j < K; j++) act[j] = sw[j] / (sw[j] + sqrtf(act[j]) + 1e-7f);
    }
    int64_t best = 0;
    for (int64_t j = 1; j < K; j++)
        if (act[j] > act[best]) best = j;
    return best;
}
#endif
