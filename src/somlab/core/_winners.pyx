# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The compiled row loops of the (sq)euclidean winner search (core.distances.best_matching_units).

per cache block of samples, around torch's matrix product of the block (:func:`spread`,
``max |x - ref|``, first where the data do not fit the prototypes' scale):

* :func:`prep`: ``xb = (x - ref) * sc`` of the block's rows and ``|xb|^2`` (one fixed
  summation order), and the largest ``|xb|^2`` (whether the rows fit the scale);
* torch: ``p = xb.wc^T`` (``mm``), or its transpose ``wc.xb^T`` (node-major, see
  ``core.distances._node_major``);
* :func:`rank`: each row's ``d = |wc|^2 - 2 p`` (the torch loops' ``add(|wc|^2, p, alpha=-2)``,
  the same bits) and its ``kk`` first minima (ties to the lowest index, NaN first: what
  torch.argmin gives, unit after unit) with their squared distances ``max(d + |xb|^2, 0)``; the
  winners the expansion may have cancelled are listed for the caller, which recomputes them
  in the direct form (:func:`rank2t`: the same from the node-major product);
* :func:`roots`: ``sqrt(d2) / sc`` (or ``d2 / sc^2``) of the results.

``nt``: threads for the pass (OpenMP; 1: this thread alone; the results do not depend on it).
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
    int SOMLAB_OPENMP
    const char* somlab_openmp_path()
    double somlab_prep_mt_f32(int nt, const float* X, int64_t rows, int64_t m, const float* ref,
                              float sc, float* xb, float* xsq)
    double somlab_prep_mt_f64(int nt, const double* X, int64_t rows, int64_t m,
                              const double* ref, double sc, double* xb, double* xsq)
    int64_t somlab_rank2t_mt_f32(int nt, const float* PT, int64_t rows, int64_t n, int kk,
                              const int64_t* amap, const float* xsq, float wlim,
                              const float* w, float share, int64_t r0,
                              int64_t* bad, float* s1, float* s2, int32_t* k1, int32_t* k2,
                              int64_t* idx, float* dist)
    int64_t somlab_rank2t_mt_f64(int nt, const double* PT, int64_t rows, int64_t n, int kk,
                              const int64_t* amap, const double* xsq, double wlim,
                              const double* w, double share, int64_t r0,
                              int64_t* bad, double* s1, double* s2, int64_t* k1, int64_t* k2,
                              int64_t* idx, double* dist)
    void somlab_roots_f32(float* d, int64_t count, float sc, int root)
    void somlab_roots_f64(double* d, int64_t count, double sc, int root)
    int64_t somlab_rank_mt_f32(int nt, const float* P, int64_t rows, int64_t n, int kk,
                            const int64_t* amap, const float* xsq, float wlim,
                            const float* w, float share, int64_t r0, int64_t* bad,
                            int64_t* idx, float* dist, float* drow)
    int64_t somlab_rank_mt_f64(int nt, const double* P, int64_t rows, int64_t n, int kk,
                            const int64_t* amap, const double* xsq, double wlim,
                            const double* w, double share, int64_t r0,
                            int64_t* bad, int64_t* idx, double* dist, double* drow)

MAXK = SOMLAB_MAXK
OPENMP = bool(SOMLAB_OPENMP)  # built with OpenMP: nt > 1 runs the passes on nt threads


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


def prep(int nt, bint f32, size_t X, int64_t rows, int64_t m, size_t ref, double sc, size_t xb,
         size_t xsq):
    """``xb[r] = (X[r] - ref) * sc`` and ``xsq[r] = |xb[r]|^2`` for ``r < rows`` (row length
    m); returns the largest ``xsq`` (NaN where one is NaN)."""
    cdef double top
    with nogil:
        if f32:
            top = somlab_prep_mt_f32(nt, <const float*>X, rows, m, <const float*>ref, <float>sc,
                                  <float*>xb, <float*>xsq)
        else:
            top = somlab_prep_mt_f64(nt, <const double*>X, rows, m, <const double*>ref, sc,
                                  <double*>xb, <double*>xsq)
    return top


def rank(int nt, bint f32, size_t P, int64_t rows, int64_t n, int kk, size_t amap, size_t xsq,
         double wlim, size_t w, double share, int64_t r0, size_t bad, size_t drow, size_t idx,
         size_t dist):
    """The ``kk`` first minima of the rows of ``d = w - 2 P`` (``P [rows, n]``: the block's
    ``xb.wc^T``; ``w [n]``: ``|wc|^2``) into ``idx``/``dist [rows, kk]`` (node indices through
    ``amap [n]`` unless it is 0, node 0 for a slot no value fills) and their squared distances
    ``max(d + xsq, 0)`` (``xsq [rows]``: ``|xb|^2``).  ``wlim`` (twice the largest ``w``,
    +inf where one is not finite) bounds ``|d|``: rows within it take the fast path.  Rows
    whose winner needs the direct form (``d2 < share (xsq + w_j)``) are written, offset by
    ``r0``, to ``bad``; returns their count.  ``drow``: scratch of ``nt n`` entries."""
    cdef int64_t nbad
    if kk < 1 or kk > SOMLAB_MAXK:
        raise ValueError(f"kk must be in [1, {SOMLAB_MAXK}], got {kk}")
    with nogil:
        if f32:
            nbad = somlab_rank_mt_f32(nt, <const float*>P, rows, n, kk, <const int64_t*>amap,
                                   <const float*>xsq, <float>wlim, <const float*>w,
                                   <float>share, r0, <int64_t*>bad,
                                   <int64_t*>idx, <float*>dist, <float*>drow)
        else:
            nbad = somlab_rank_mt_f64(nt, <const double*>P, rows, n, kk, <const int64_t*>amap,
                                   <const double*>xsq, wlim, <const double*>w, share,
                                   r0, <int64_t*>bad, <int64_t*>idx, <double*>dist,
                                   <double*>drow)
    return nbad



def rank2t(int nt, bint f32, size_t PT, int64_t rows, int64_t n, int kk, size_t amap, size_t xsq,
           double wlim, size_t w, double share, int64_t r0, size_t bad, size_t s1, size_t s2,
           size_t k1, size_t k2, size_t idx, size_t dist):
    """:func:`rank` for ``kk <= 2`` from the node-major ``PT [n, rows]`` (``wc.xb^T``, the
    block's rows contiguous per node): the rows' two first minima kept elementwise across rows,
    node after node.  ``s1``, ``s2`` (the dtype) and ``k1``, ``k2`` (int32 for float32, int64
    for float64) are scratch of ``rows`` entries."""
    cdef int64_t nbad
    if kk < 1 or kk > 2:
        raise ValueError(f"kk must be 1 or 2, got {kk}")
    with nogil:
        if f32:
            nbad = somlab_rank2t_mt_f32(nt, <const float*>PT, rows, n, kk, <const int64_t*>amap,
                                     <const float*>xsq, <float>wlim, <const float*>w,
                                     <float>share, r0, <int64_t*>bad,
                                     <float*>s1, <float*>s2, <int32_t*>k1, <int32_t*>k2,
                                     <int64_t*>idx, <float*>dist)
        else:
            nbad = somlab_rank2t_mt_f64(nt, <const double*>PT, rows, n, kk, <const int64_t*>amap,
                                     <const double*>xsq, wlim, <const double*>w, share,
                                     r0, <int64_t*>bad, <double*>s1, <double*>s2,
                                     <int64_t*>k1, <int64_t*>k2, <int64_t*>idx,
                                     <double*>dist)
    return nbad

def roots(bint f32, size_t d, int64_t count, double sc, bint root):
    """``d[i] = sqrt(d[i]) / sc`` (``root``) or ``d[i] / sc / sc`` for ``i < count``."""
    with nogil:
        if f32:
            somlab_roots_f32(<float*>d, count, <float>sc, root)
        else:
            somlab_roots_f64(<double*>d, count, sc, root)


def openmp_path():
    """The file of the OpenMP runtime the passes run on ('' where the module has none)."""
    return somlab_openmp_path().decode(errors="replace")
