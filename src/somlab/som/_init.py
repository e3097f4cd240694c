"""Initial prototypes of the classic SOM: each ``init`` rule written once, fed by one
statistics provider.

The rules ("pca", "random", "sample", an array; :func:`initial_weights`) need from the data
its size, its float64 mean, covariance and per-feature bounds, and some of its rows.  A
:class:`DataStatistics` provides them for data held in memory (:class:`ArrayStatistics`), for a
stream of chunks (:class:`StreamStatistics`, one pass) and, in :mod:`somlab.distributed`, for
shards reduced over the ranks (``ShardStatistics``), so that every way of fitting starts from
the prototypes of the in-memory fit on the same data.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._errors import DataError
from .._utils import as_tensor, check_finite_tensor
from ..core.grids import Grid
from ..datasets._stream import scan

INITS = ("pca", "random", "sample")


class DataStatistics:
    """What the initialisation rules read from the training data (float64 statistics).

    ``n_samples`` and ``n_features``; ``mean()`` ``[m]`` (NaN-aware; a feature never observed
    is refused), ``covariance()`` (the ``[m, m]`` covariance of the mean-filled data, or a
    function ``Q [m, q] -> cov @ Q`` for wide data), ``bounds()`` (NaN-aware per-feature
    minimum and maximum, ``[m]`` each) and ``sample(k, generator)`` (``k`` rows ``[k, m]`` in
    the training dtype, the rows :func:`_sample_rows` picks, NaN holes kept).  ``dtype`` and
    ``device`` are those of the training tensor.  Subclasses compute what is asked, once.
    """

    n_samples: int
    n_features: int
    dtype: torch.dtype
    device: torch.device

    def mean(self) -> torch.Tensor:
        raise NotImplementedError

    def covariance(self):
        raise NotImplementedError

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def sample(self, k: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def _checked_mean(mean: torch.Tensor) -> torch.Tensor:
    """A NaN mean is a feature never observed (NaN in every row, missing="ignore"): refused
    with the in-memory fit's message."""
    if bool(torch.isnan(mean).any()):
        check_finite_tensor(mean.unsqueeze(0), allow_nan=True, columns=True)
    return mean


def _covariance_of_centred(Xc: torch.Tensor, n: int):
    """The covariance ``Xc^T Xc / (n - 1)`` of centred float64 rows, or (above
    ``_EIGH_MAX_FEATURES`` features) the function ``Q -> Xc^T (Xc Q) / (n - 1)``, so that the
    ``m x m`` matrix is never formed for wide data."""
    if Xc.shape[1] <= _EIGH_MAX_FEATURES:
        return Xc.T @ Xc / max(n - 1, 1)

    def cov(Q):
        return Xc.T @ (Xc @ Q) / max(n - 1, 1)

    return cov


class ArrayStatistics(DataStatistics):
    """Statistics of a training tensor ``X [n, m]`` held in memory."""

    def __init__(self, X: torch.Tensor):
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.dtype, self.device = X.dtype, X.device
        self._mean = None

    def mean(self):
        if self._mean is None:
            self._mean = _checked_mean(torch.nanmean(self.X.double(), 0))
        return self._mean

    def covariance(self):
        Xc = torch.nan_to_num(self.X.double() - self.mean(), nan=0.0)
        return _covariance_of_centred(Xc, self.n_samples)

    def bounds(self):
        Xd = self.X.double()
        nan = torch.isnan(Xd)
        return torch.where(nan, torch.inf, Xd).amin(0), torch.where(nan, -torch.inf, Xd).amax(0)

    def sample(self, k, generator):
        return self.X[_sample_rows(self.n_samples, k, generator).to(self.device)].clone()


class StreamStatistics(DataStatistics):
    """Statistics of a :class:`~somlab.datasets._stream.BatchSource`, from one pass
    (:func:`~somlab.datasets._stream.scan`) that gathers what ``init`` needs: the covariance
    for "pca", the bounds for "random", a reservoir of ``k`` rows for "sample" from an
    iterable.  Files and memory maps hand "sample" the rows the in-memory fit picks (no pass).
    """

    def __init__(self, source, dtype, device, *, allow_nan: bool, init, k: int, generator):
        self.source, self.dtype, self.device, self.allow_nan = source, dtype, device, allow_nan
        self.init, self.k, self.generator = init, k, generator
        self._st = None

    @property
    def n_samples(self):
        n = self.source.n_samples
        return n if n else self._scan().n  # unknown (an iterable), or 0: the pass refuses it

    @property
    def n_features(self):
        if self.source.n_features is None:  # an iterable: one pass learns m (and n)
            for _ in self.source.iter_batches(self.dtype, self.device, allow_nan=True):
                pass
        return self.source.n_features

    def _scan(self):
        if self._st is None:
            init = self.init
            self._st = scan(
                self.source,
                self.dtype,
                self.device,
                allow_nan=self.allow_nan,
                cov=init == "pca",
                bounds=init == "random",
                reservoir=self.k if init == "sample" and not self.source.addressable else 0,
                generator=self.generator,
            )
            _checked_mean(self._st.mean)
        return self._st

    def mean(self):
        return _checked_mean(self._scan().mean)

    def covariance(self):
        return self._scan().cov

    def bounds(self):
        st = self._scan()
        return st.lo, st.hi

    def sample(self, k, generator):
        if self.source.addressable:  # the rows the in-memory fit would pick
            idx = _sample_rows(self.source.n_samples, k, generator).numpy()
            W = self.source.take(idx, self.dtype, self.device)
            check_finite_tensor(W, allow_nan=self.allow_nan)
            return W
        st = self._scan()
        W = st.sample
        if W is None:  # "pca" on a single row: the sample rule picks it k times
            W = st.mean.to(self.dtype).unsqueeze(0)
        if W.shape[0] < k:  # fewer samples than nodes: draw with replacement, as in memory
            W = W[torch.randint(0, W.shape[0], (k,), generator=generator).to(W.device)]
        return W.clone()


def array_weights(init, grid: Grid, m: int, dtype, device) -> torch.Tensor:
    """An ``init`` array (or tensor) as prototypes ``[n_nodes, m]``: shape (rows, cols, m) or
    (n_nodes, m), finite."""
    init = init.detach() if isinstance(init, torch.Tensor) else np.asarray(init)
    k = grid.n_nodes
    grid_shape = (*grid.shape, m)
    shape = tuple(init.shape)
    if shape not in (grid_shape, (k, m)):
        axes = "rows, cols, layers" if len(grid_shape) == 4 else "rows, cols"
        raise DataError(
            f"init array must have shape {grid_shape} ({axes}, n_features) or "
            f"({k}, {m}) (n_nodes, n_features), got {shape}"
        )
    W = as_tensor(init, dtype, device).reshape(k, m).clone()
    if not bool(torch.isfinite(W).all()):
        raise DataError("init array contains NaN or inf; the initial prototypes must be finite")
    return W


def initial_weights(init, stats: DataStatistics, grid: Grid, generator, *, missing=False):
    """The initial prototypes ``[n_nodes, m]`` of the rule ``init``, from ``stats``.

    * "sample": ``n_nodes`` random rows (distinct when there are enough), holes filled with
      the feature mean when ``missing``;
    * "random": uniform in the data's bounding box;
    * "pca": the two leading principal axes (:func:`_pca_weights`); with fewer than 2 samples
      it is "sample";
    * an array: used as given (:func:`array_weights`).

    ``generator`` is drawn from exactly as by the in-memory fit, whatever the provider.
    """
    k = grid.n_nodes
    if not isinstance(init, str):
        return array_weights(init, grid, stats.n_features, stats.dtype, stats.device)
    if init == "pca" and (stats.n_samples < 2 or stats.n_features < 1):
        init = "sample"
    if init == "sample":
        W = stats.sample(k, generator)
        if missing and bool(torch.isnan(W).any()):  # holes take the feature mean
            W = torch.where(torch.isnan(W), stats.mean().to(W.dtype).expand_as(W), W)
        return W
    if init == "random":
        lo, hi = stats.bounds()
        return _random_weights(lo, hi, k, generator, stats.dtype)
    return _pca_weights(stats.mean(), stats.covariance(), grid, stats.dtype)


def _sample_rows(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of the k samples that initialise the map: distinct when n >= k."""
    if n >= k:
        return torch.randperm(n, generator=gen)[:k]
    return torch.randint(0, n, (k,), generator=gen)


def _random_weights(lo, hi, k: int, gen: torch.Generator, dtype) -> torch.Tensor:
    """``k`` prototypes drawn uniformly in the box ``[lo, hi]`` (float64 bounds ``[m]``)."""
    u = torch.rand(k, lo.shape[0], generator=gen, dtype=torch.float64).to(lo.device)
    return (lo + u * (hi - lo)).to(dtype)


# Above this many features the PCA initialisation finds its two axes by subspace iteration
# instead of a full eigendecomposition of the m x m covariance (a 4,096-feature eigh took 57 s).
_EIGH_MAX_FEATURES = 512
_SUBSPACE = 12  # vectors iterated (the two wanted and ten of headroom)
_SUBSPACE_ITERATIONS = 7


def principal_axes(cov, m: int, n_axes: int = 2, device=None):
    """The ``n_axes`` leading eigenpairs of a covariance: ``(evals [n_axes], evecs [m, n_axes])``,
    float64, eigenvalues descending and clamped at 0, each eigenvector's largest component
    positive (so that the map does not depend on the solver's sign choice).

    ``cov`` is the ``[m, m]`` matrix or a function ``Q [m, q] -> cov @ Q``.  Up to
    ``_EIGH_MAX_FEATURES`` features a dense matrix goes to ``torch.linalg.eigh``; above, or for a
    function, a subspace iteration of ``_SUBSPACE`` vectors from a fixed seed (deterministic,
    independent of ``random_state``) costs ``O(m q)`` memory and a few products with ``cov``.
    """
    dense = torch.is_tensor(cov)
    if dense and m <= _EIGH_MAX_FEATURES:
        evals, evecs = torch.linalg.eigh(cov)
    else:
        op = (lambda Q: cov @ Q) if dense else cov
        dev = cov.device if dense else device
        q = min(m, _SUBSPACE)
        gen = torch.Generator().manual_seed(0)
        Q = torch.randn(m, q, generator=gen, dtype=torch.float64).to(dev)
        for _ in range(_SUBSPACE_ITERATIONS):
            Q = torch.linalg.qr(op(Q)).Q
        T = Q.T @ op(Q)
        evals, V = torch.linalg.eigh((T + T.T) / 2)
        evecs = Q @ V
    order = torch.argsort(evals, descending=True)[:n_axes]
    evals, evecs = evals[order].clamp_min(0.0), evecs[:, order]
    signs = torch.sign(evecs.gather(0, evecs.abs().argmax(0, keepdim=True)))
    return evals, evecs * torch.where(signs == 0, 1.0, signs)


def _pca_weights(mean, cov, grid: Grid, dtype) -> torch.Tensor:
    """Prototypes spanning the two leading principal axes: ``mean +- sqrt(eigenvalue) * v``.

    ``mean [m]`` float64; ``cov`` the ``[m, m]`` float64 covariance or a function
    ``Q -> cov @ Q`` (see :func:`principal_axes`).  The first principal axis runs along the
    grid axis with more nodes (a (1, 10) chain gets PC1, not the axis of length 1), the second
    along the other; on a square grid PC1 runs along the rows, as before.
    """
    m = mean.shape[0]
    k = grid.n_nodes
    evals, evecs = principal_axes(cov, m, min(grid.ndim, m), mean.device)
    coords = grid.coordinates(torch.float64, mean.device)
    span = coords.amax(0) - coords.amin(0)
    unit = torch.where(span > 0, 2 * (coords - coords.amin(0)) / span.clamp_min(1e-12) - 1, 0)
    # PC1 along the axis with more nodes; on a square grid (hexagonal ones too) along the rows
    axes = grid.axes_by_length()
    W = mean.expand(k, m).clone()
    for pc, axis in enumerate(axes[: evals.numel()]):
        W += unit[:, axis : axis + 1] * math.sqrt(evals[pc]) * evecs[:, pc]
    return W.to(dtype)
