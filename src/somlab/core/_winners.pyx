# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled row loops of the (sq)euclidean winner search (core.distances.best_matching_units).

:func:`spread` (``max |x - ref|``, for the centring scale) once, then per cache block of
samples, around torch's ops of the block:

* :func:`centre`: ``xb = (x - ref) * sc`` of the block's rows (then torch: ``|xb|^2`` and the
  ``addmm`` of ``d = |wc|^2 - 2 xb.wc``, as the torch loops form them);
* :func:`rank2t` (``kk <= 2``, on the node-major ``addmm``: the rows' two first minima kept
  elementwise across rows, node after node) or :func:`rank` (any ``kk``, row-major): the
  ``kk`` first minima of each row of ``d`` (ties to the lowest index, NaN first: what
  torch.argmin gives, unit after unit) and their distances, formed with the torch loops'
  elementwise ops (the same bits); the winners the expansion may have cancelled are listed
  for the caller, which recomputes them with torch's sum, as the torch loops do.

Arguments are raw addresses (``tensor.data_ptr()``) of contiguous CPU tensors of one dtype
(float32: ``f32 = 1``, else float64), checked by the caller; the loops run without the GIL.
"""

from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc


cdef extern from "_winners.h" nogil:
    int SOMLAB_MAXK
    double somlab_spread_f32(const float* X, int64_t rows, int64_t m, const float* ref,
                             float* scratch)
    double somlab_spread_f64(const double* X, int64_t rows, int64_t m, const double* ref,
                             double* scratch)
    void somlab_centre_f32(const float* X, int64_t rows, int64_t m, const float* ref, float sc,
                           float* xb)
    void somlab_centre_f64(const double* X, int64_t rows, int64_t m, const double* ref,
                           double sc, double* xb)
    int64_t somlab_rank_f32(const float* D, int64_t rows, int64_t n, int kk,
                            const int64_t* amap, const float* xsq, float wlim,
                            const float* wsq, float share, int64_t r0, int64_t* bad,
                            int64_t* idx, float* dist)
    int64_t somlab_rank_f64(const double* D, int64_t rows, int64_t n, int kk,
                            const int64_t* amap, const double* xsq, double wlim,
                            const double* wsq, double share, int64_t r0,
                            int64_t* bad, int64_t* idx, double* dist)
    int64_t somlab_rank2t_f32(const float* PT, int64_t rows, int64_t n, int kk,
                              const int64_t* amap, const float* xsq, float wlim,
                              const float* wsq, float share, int64_t r0,
                              int64_t* bad, float* s1, float* s2, int32_t* k1, int32_t* k2,
                              int64_t* idx, float* dist)
    int64_t somlab_rank2t_f64(const double* PT, int64_t rows, int64_t n, int kk,
                              const int64_t* amap, const double* xsq, double wlim,
                              const double* wsq, double share, int64_t r0,
                              int64_t* bad, double* s1, double* s2, int64_t* k1, int64_t* k2,
                              int64_t* idx, double* dist)

MAXK = SOMLAB_MAXK


def spread(bint f32, size_t X, int64_t rows, int64_t m, size_t ref):
    """``max |x - ref|`` over ``X [rows >= 1, m]`` from its column ranges, as
    ``_centred_scale`` forms it (NaN where X holds a NaN or an infinity)."""
    cdef double big
    cdef void* scratch = malloc(3 * m * (4 if f32 else 8))
    if scratch == NULL:
        raise MemoryError
    with nogil:
        if f32:
            big = somlab_spread_f32(<const float*>X, rows, m, <const float*>ref, <float*>scratch)
        else:
            big = somlab_spread_f64(<const double*>X, rows, m, <const double*>ref,
                                    <double*>scratch)
    free(scratch)
    return big


def centre(bint f32, size_t X, int64_t rows, int64_t m, size_t ref, double sc, size_t xb):
    """``xb[r] = (X[r] - ref) * sc`` for ``r < rows`` (row length m)."""
    with nogil:
        if f32:
            somlab_centre_f32(<const float*>X, rows, m, <const float*>ref, <float>sc, <float*>xb)
        else:
            somlab_centre_f64(<const double*>X, rows, m, <const double*>ref, sc, <double*>xb)


def rank(bint f32, size_t D, int64_t rows, int64_t n, int kk, size_t amap, size_t xsq,
         double wlim, size_t wsq, double share, int64_t r0, size_t bad, size_t idx, size_t dist):
    """The ``kk`` first minima of the rows of ``D [rows, n]`` into ``idx``/``dist [rows, kk]``
    (node indices through ``amap [n]`` unless it is 0, node 0 for a slot no value fills) and
    their squared distances as the torch loops form them, ``max(d + xsq, 0)`` (``xsq [rows]``:
    ``|xb|^2``; ``wsq [n]``: ``|wc|^2``).  ``wlim`` (twice the largest ``wsq``,
    +inf where one is not finite) bounds ``|D|``: rows within it take the fast path.  Rows
    whose winner needs the direct form (``d2 < share (xsq + wsq_j)``) are written, offset by
    ``r0``, to ``bad``; returns their count."""
    cdef int64_t nbad
    if kk < 1 or kk > SOMLAB_MAXK:
        raise ValueError(f"kk must be in [1, {SOMLAB_MAXK}], got {kk}")
    with nogil:
        if f32:
            nbad = somlab_rank_f32(<const float*>D, rows, n, kk, <const int64_t*>amap,
                                   <const float*>xsq, <float>wlim, <const float*>wsq,
                                   <float>share, r0, <int64_t*>bad,
                                   <int64_t*>idx, <float*>dist)
        else:
            nbad = somlab_rank_f64(<const double*>D, rows, n, kk, <const int64_t*>amap,
                                   <const double*>xsq, wlim, <const double*>wsq, share,
                                   r0, <int64_t*>bad, <int64_t*>idx, <double*>dist)
    return nbad


def rank2t(bint f32, size_t PT, int64_t rows, int64_t n, int kk, size_t amap, size_t xsq,
           double wlim, size_t wsq, double share, int64_t r0, size_t bad, size_t s1, size_t s2, size_t k1, size_t k2, size_t idx, size_t dist):
    """:func:`rank` for ``kk <= 2`` from the node-major ``PT [n, rows]`` (``D`` transposed);
    ``s1``, ``s2`` (the dtype) and ``k1``, ``k2`` (int32 for float32, int64 for float64) are
    scratch of ``rows`` entries."""
    cdef int64_t nbad
    if kk < 1 or kk > 2:
        raise ValueError(f"kk must be 1 or 2, got {kk}")
    with nogil:
        if f32:
            nbad = somlab_rank2t_f32(<const float*>PT, rows, n, kk, <const int64_t*>amap,
                                     <const float*>xsq, <float>wlim, <const float*>wsq,
                                     <float>share, r0, <int64_t*>bad,
                                     <float*>s1, <float*>s2, <int32_t*>k1, <int32_t*>k2,
                                     <int64_t*>idx, <float*>dist)
        else:
            nbad = somlab_rank2t_f64(<const double*>PT, rows, n, kk, <const int64_t*>amap,
                                     <const double*>xsq, wlim, <const double*>wsq, share,
                                     r0, <int64_t*>bad, <double*>s1, <double*>s2,
                                     <int64_t*>k1, <int64_t*>k2, <int64_t*>idx,
                                     <double*>dist)
    return nbad
