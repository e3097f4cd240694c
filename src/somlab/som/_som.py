"""The classic Kohonen Self-Organizing Map as a scikit-learn estimator."""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._errors import DataError
from .._utils import (
    FitMemoryError,
    as_tensor,
    available_memory,
    check_finite_tensor,
    choose_threads,
    cpu_threads,
    format_bytes,
    make_generator,
    progress,
    resolve_device,
    resolve_dtype,
    validate_X,
)
from ..core.distances import METRICS, best_matching_units, pairwise_distances, reference_point
from ..core.grids import TOPOLOGIES, Grid, grid_distance, make_grid
from ..core.neighbourhoods import NEIGHBOURHOODS, CutOff, get_neighbourhood
from ..core.schedules import SCHEDULES, decay, parse_schedule
from ..core.updates import sequential_steps, spread, winner_sums
from ..datasets._stream import (
    DEFAULT_CHUNK_SIZE,
    BatchSource,
    as_batch_source,
    scan,
)
from ..metrics._som import topographic_error_from_bmus
from ..persistence import SaveLoadMixin
from ._cluster import MapAnalysisMixin

MODES = ("batch", "minibatch", "online")
INITS = ("pca", "random", "sample")


class SOM(MapAnalysisMixin, SaveLoadMixin, TransformerMixin, BaseEstimator):
    """Kohonen Self-Organizing Map.

    Parameters
    ----------
    grid_shape : (int, int) or str, default=(10, 10)
        Map rows and columns (``"20x20"`` is accepted too).
    topology : {"rectangular", "hexagonal"}, default="rectangular"
        Hexagonal grids use true lattice coordinates: the six neighbours are at distance 1.
    toroidal : bool, default=False
        Wrap the grid around both axes.
    distance : {"euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine"}
        Data-to-prototype distance used to find best-matching units.
    neighbourhood : {"gaussian", "bubble", "mexican_hat", "triangle", "winner"}, default="gaussian"
        "winner": winner-only training, no neighbour is updated (sigma is ignored and may be
        0; the batch mode is then k-means on the prototypes).
    radius : float or None, default=None
        Cut-off of the neighbourhood in grid units at the start of training: nodes farther
        from the winner are not updated; it shrinks in proportion to sigma.  With the gaussian
        it is NeuPy's ``learning_radius`` times a gaussian fall-off of width ``sigma`` (NeuPy's
        ``std``).  None: no cut-off.
    sigma : float or None, default=None
        Initial neighbourhood radius in grid units; None means ``max(rows, cols) / 2``
        (0 with ``neighbourhood="winner"``, the only one that accepts 0).
    sigma_end : float or None, default=None
        Final radius (None: ``min(1, sigma)``); ignored by the "asymptotic" and "constant" decays.
    sigma_decay : {"linear", "asymptotic", "exponential", "inverse_time", "constant"}
        or "<name>@<k>", a staircase: the schedule held constant over ``k`` equal parts of
        training (NeuPy's "reduce every n epochs" is ``k = epochs / n``; see
        :mod:`somlab.core.schedules`).
    learning_rate : float, default=0.5
        Initial learning rate of the "online" and "minibatch" modes (the exact batch SOM has none).
    learning_rate_end : float or None, default=None
        Final learning rate (None: ``learning_rate / 100``).
    learning_rate_decay : str, default="asymptotic"
        One of the decay schedules above, staircases included (MiniSom's default).
    epochs : int, default=10
        Passes over the data.
    mode : {"batch", "minibatch", "online"}, default="batch"
        "batch" is Kohonen's exact batch SOM: each epoch every prototype becomes the
        neighbourhood-weighted mean of the data, ``w_j = sum_i h(b_i, j) x_i / sum_i h(b_i, j)``.
        "minibatch" takes, per batch of B samples, the mean of the online updates,
        ``w_j += lr * sum_i h(b_i, j) (x_i - w_j) / B`` (with B = 1 it is the online rule).
        "online" presents samples one at a time in a fresh random order each epoch, as MiniSom.
    init : {"pca", "random", "sample"} or array, default="pca"
        "pca" spans the two leading principal components (mean +- sqrt(eigenvalue)), the
        first along the grid axis with more nodes (above 512 features found by a low-rank
        subspace iteration, without the m x m covariance in memory; see :meth:`initialize`);
        "random" draws uniformly in the data's bounding box; "sample" picks random samples;
        an array or tensor of shape (rows, cols, n_features) or (rows * cols, n_features),
        finite, gives the initial prototypes.
    batch_size : int, default=256
        Samples per step in "minibatch" mode.
    chunk_size : int, default=65536
        Rows read at a time when ``fit`` streams a ``.npy`` file or a memory-mapped array
        (see :meth:`fit`).  Memory use grows with ``chunk_size * n_features`` (about two
        chunks at a time); distances to the prototypes are computed in small row blocks, so
        the map size does not multiply it.
    missing : {"error", "ignore"}, default="error"
        "error" rejects NaN and inf; "ignore" leaves NaN features out of distances and updates
        (a feature that is NaN in every training sample is refused).
    device : str, default="cpu"
        Torch device ("cpu", "cuda", "cuda:1", or "auto").
    dtype : {"float32", "float64"}, default="float32"
    random_state : int, RandomState or None
        Seeds initialisation and sample order.
    verbose : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    weights_ : ndarray of shape (rows, cols, n_features)
    quantization_error_ : float
        Mean distance of the training samples to their best-matching unit after training, in
        the map's own ``distance`` (squared Euclidean for "sqeuclidean", city-block for
        "manhattan", ...); :func:`somlab.metrics.quantization_error` is always Euclidean, so
        the two agree only for ``distance="euclidean"``.
    topographic_error_ : float
        Share of training samples whose two best units are not adjacent on the grid.
    history_ : dict of lists
        Per epoch: ``sigma``, ``learning_rate``, ``quantization_error``, ``topographic_error``
        (measured on the training data after the epoch).
    labels_ : ndarray of shape (n_samples,)
        Best-matching unit of each training sample (int64; for streamed data it is filled
        chunk by chunk, 8 bytes per sample, in file order or in the order an iterable yielded
        its batches on the final pass).
    n_iter_ : int
        Epochs run (partial_fit calls count one each).

    Notes
    -----
    Data larger than memory: ``fit`` also accepts a path to a ``.npy`` file, a memory-mapped
    array (``np.load(path, mmap_mode="r")``) or a re-iterable of batches such as a
    ``torch.utils.data.DataLoader``, and reads it a chunk at a time; see :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> from somlab import SOM
    >>> X = np.random.default_rng(0).random((200, 3))
    >>> som = SOM((5, 5), random_state=0).fit(X)
    >>> som.weights_.shape
    (5, 5, 3)
    >>> som.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints = {
        "grid_shape": ["array-like", str, Interval(Integral, 1, None, closed="left")],
        "topology": [StrOptions(set(TOPOLOGIES))],
        "toroidal": ["boolean"],
        "distance": [StrOptions(set(METRICS))],
        "neighbourhood": [StrOptions(set(NEIGHBOURHOODS))],
        "radius": [Interval(Real, 0, None, closed="neither"), None],
        "sigma": [Interval(Real, 0, None, closed="left"), None],
        "sigma_end": [Interval(Real, 0, None, closed="left"), None],
        "sigma_decay": [StrOptions(set(SCHEDULES)), str],  # staircases: parse_schedule
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_end": [Interval(Real, 0, None, closed="neither"), None],
        "learning_rate_decay": [StrOptions(set(SCHEDULES)), str],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions(set(MODES))],
        "init": [StrOptions(set(INITS)), "array-like"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "missing": [StrOptions({"error", "ignore"})],
        "device": [str, None],
        "dtype": [StrOptions({"float32", "float64"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        grid_shape=(10, 10),
        *,
        topology="rectangular",
        toroidal=False,
        distance="euclidean",
        neighbourhood="gaussian",
        radius=None,
        sigma=None,
        sigma_end=None,
        sigma_decay="linear",
        learning_rate=0.5,
        learning_rate_end=None,
        learning_rate_decay="asymptotic",
        epochs=10,
        mode="batch",
        init="pca",
        batch_size=256,
        chunk_size=DEFAULT_CHUNK_SIZE,
        missing="error",
        device="cpu",
        dtype="float32",
        random_state=None,
        verbose=False,
    ):
        self.grid_shape = grid_shape
        self.topology = topology
        self.toroidal = toroidal
        self.distance = distance
        self.neighbourhood = neighbourhood
        self.radius = radius
        self.sigma = sigma
        self.sigma_end = sigma_end
        self.sigma_decay = sigma_decay
        self.learning_rate = learning_rate
        self.learning_rate_end = learning_rate_end
        self.learning_rate_decay = learning_rate_decay
        self.epochs = epochs
        self.mode = mode
        self.init = init
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.missing = missing
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ set-up helpers
    @property
    def grid_(self) -> Grid:
        return make_grid(self.grid_shape, self.topology, self.toroidal)

    def _setup(self):
        self._validate_params()
        grid = self.grid_
        dev = resolve_device(self.device)
        dt = resolve_dtype(self.dtype)
        sigma0 = float(self.sigma) if self.sigma is not None else max(grid.shape) / 2.0
        sigma1 = float(self.sigma_end) if self.sigma_end is not None else min(1.0, sigma0)
        if self.neighbourhood == "winner":  # no neighbourhood: sigma plays no part
            sigma0 = sigma1 = 0.0
        lr0 = float(self.learning_rate)
        lr1 = float(self.learning_rate_end) if self.learning_rate_end is not None else lr0 / 100
        return grid, dev, dt, (sigma0, sigma1), (lr0, lr1)

    def _validate_params(self):
        super()._validate_params()
        self._check_neighbourhood_options()

    def _check_neighbourhood_options(self):
        """Staircase schedule names, sigma = 0 and radius: valid only where they mean
        something (sigma = 0 with winner-only training, a cut-off with a neighbourhood)."""
        for name in ("sigma_decay", "learning_rate_decay"):
            try:
                parse_schedule(getattr(self, name))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        winner = self.neighbourhood == "winner"
        if not winner and 0 in (self.sigma, self.sigma_end):
            raise ValueError(
                f"sigma=0 (or sigma_end=0) leaves no neighbourhood for "
                f"neighbourhood={self.neighbourhood!r}; pass neighbourhood='winner' for "
                "winner-only training, or a positive sigma"
            )
        if winner and self.radius is not None:
            raise ValueError("radius cuts a neighbourhood; neighbourhood='winner' has none")

    def _neighbourhood_function(self):
        """h(disp, sigma) of ``neighbourhood``, cut at ``radius`` (shrinking with sigma)."""
        fn = get_neighbourhood(self.neighbourhood)
        if self.radius is None or self.neighbourhood == "winner":
            return fn
        sigma0 = float(self.sigma) if self.sigma is not None else max(self.grid_.shape) / 2.0
        return CutOff(fn, float(self.radius) / sigma0)

    def _check_X(self, X, reset: bool) -> np.ndarray:
        """Shape, dtype and feature checks; NaN and inf are left to :meth:`_tensor`."""
        return validate_X(self, X, reset, f"{type(self).__name__}.predict, transform and score")

    def _tensor(self, X, dev, dt, *, whole: bool = False):
        """``X`` as a ``dt`` tensor on ``dev``, checked for inf, NaN (unless missing="ignore")
        and values whose squared distances overflow ``dt``.  ``whole``: ``X`` is all the
        training data, so a feature that is NaN in every row is an error (not in a batch)."""
        return checked_tensor(
            X, dt, dev, self.distance, allow_nan=self.missing == "ignore", columns=whole
        )

    # ------------------------------------------------------------------ initialisation
    def _array_init(self, m: int, k: int, dtype, device) -> torch.Tensor:
        """The ``init`` array as prototypes ``[k, m]``: shape (rows, cols, m) or (k, m)."""
        init = self.init
        if isinstance(init, torch.Tensor):
            init = init.detach()
        else:
            init = np.asarray(init)
        grid_shape = (*self.grid_.shape, m)
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

    def _initial_weights(self, X: torch.Tensor, grid: Grid, gen: torch.Generator):
        n, m = X.shape
        k = grid.n_nodes
        init = self.init
        if not isinstance(init, str):
            return self._array_init(m, k, X.dtype, X.device)
        if init == "pca" and (n < 2 or m < 1):
            init = "sample"
        if init == "sample":
            W = X[_sample_rows(n, k, gen).to(X.device)].clone()
            if self.missing == "ignore":  # holes in the picked samples take the feature mean
                W = torch.where(torch.isnan(W), torch.nanmean(X, 0).expand_as(W), W)
            return W
        Xd = X.double()
        mean = torch.nanmean(Xd, 0)
        if init == "random":
            lo = torch.where(torch.isnan(Xd), torch.inf, Xd).amin(0)
            hi = torch.where(torch.isnan(Xd), -torch.inf, Xd).amax(0)
            return _random_weights(lo, hi, k, gen, X.dtype)
        # PCA: covariance of the mean-filled data (never formed for wide data: a low-rank
        # solver multiplies by Xc^T Xc / (n - 1) instead)
        Xc = torch.nan_to_num(Xd - mean, nan=0.0)
        if m <= _EIGH_MAX_FEATURES:
            cov = Xc.T @ Xc / max(n - 1, 1)
        else:

            def cov(Q):
                return Xc.T @ (Xc @ Q) / max(n - 1, 1)

        return _pca_weights(mean, cov, grid, X.dtype)

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Train the map on ``X`` (n_samples, n_features); ``y`` is ignored.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or out-of-core data
            In-memory data (array, tensor, data frame), or data read a chunk at a time so that
            it never has to fit in memory:

            * a path (``str`` or ``os.PathLike``) to a ``.npy`` file holding a 2-D C-order
              numeric array: its header is parsed and ``chunk_size`` rows are read at a time
              with explicit file reads (the file is never mapped);
            * a memory-mapped array (``np.memmap``, ``np.load(path, mmap_mode="r")``, or a
              view of one), copied out ``chunk_size`` rows at a time; the map's pages are
              released after each chunk unless it is a copy-on-write ("c") map;
            * a re-iterable of batches, such as a ``torch.utils.data.DataLoader`` or a list of
              arrays: each item is a tensor or array ``[rows, n_features]`` or a tuple / list
              whose first element is one (``(x, y)``); higher-dimensional items are flattened
              per row.  It is iterated once per pass, so it must be re-iterable (a generator
              is refused).

            Streaming works in every mode.  Each pass checks every chunk (NaN or inf unless
            ``missing="ignore"``, the same number of features as the first chunk, at least
            one row) and raises :class:`~somlab.DataError` otherwise; with
            ``missing="ignore"`` the initialisation pass refuses a feature that is NaN in every
            row (with an ``init`` array there is no such pass, and the feature is ignored).
            Data whose squared distances overflow the dtype are refused before an in-memory
            fit; a stream is not scanned for it, so the overflow is reported after the first
            epoch that measures the quantization error.

            * "batch": one pass per epoch adds up, per node, the samples it wins (in row
              order, as the in-memory fit does), then ``W = num / den`` as in memory: the
              weights equal those of the in-memory fit on the same data and device (bit for
              bit on CPU; an iterable must yield the rows in the same order).
            * "minibatch": steps of ``batch_size`` rows, in the order read (rows left over at
              the end of a chunk start the next step).  Files and memory maps are shuffled
              each epoch with the estimator's generator: chunks in a random order, rows in a
              random order inside each chunk (data of at most ``chunk_size`` rows is shuffled
              exactly as in memory).  Iterables are used in the order they yield: shuffle in
              the DataLoader.  The schedules need the number of steps: for iterables the rows
              are counted on the first pass (the initialisation pass, or one extra pass with
              an ``init`` array).
            * "online": the same, one sample per step.

            Passes: "pca" and "random" initialisation take one pass for their statistics
            (float64 mean and covariance / bounds; "random" then draws exactly as in memory);
            "sample" reads the rows the in-memory fit would pick straight from a file or map,
            and keeps a uniform reservoir sample of an iterable in one pass; then
            one pass per epoch and one final pass for ``labels_``, ``quantization_error_`` and
            ``topographic_error_``.  In "batch" mode ``history_`` is exact (each epoch's
            metrics are measured during the next epoch's pass); in "minibatch" and "online"
            modes ``history_`` metrics are running estimates measured as the data go by
            (each step's samples against the map before that step; in online mode each chunk
            against the map before that chunk), with no extra pass.
        y : ignored
        """
        grid, dev, dt, sig, lr = self._setup()
        source = as_batch_source(X, self.chunk_size)
        if source is not None:
            return self._fit_stream(source, grid, dev, dt, sig, lr)
        Xa = self._check_X(X, reset=True)
        check_fit_memory(self, grid, *Xa.shape, dev, dt)
        data = _InMemory(self._tensor(Xa, dev, dt, whole=True))
        gen = make_generator(self.random_state)
        W = self._initial_weights(data.X, grid, gen)
        self.history_ = _new_history()
        W = self._train(data, W, grid, gen, sig, lr, mode=self.mode)
        self.n_iter_ = int(self.epochs)
        self._finish(data, W, grid)
        return self

    def initialize(self, X):
        """Set the initial prototypes that :meth:`fit` would start from, and return them.

        The ``init`` rule ("pca", "random", "sample" or an array) applied to ``X`` with this
        estimator's ``random_state``, exactly as the first step of ``fit(X)`` on in-memory
        data.  Sets ``weights_`` (so ``predict``, ``transform`` and the plots show the initial
        map) and ``n_iter_ = 0``; a later :meth:`partial_fit` trains from these prototypes, a
        later :meth:`fit` starts afresh.

        Returns
        -------
        weights : ndarray of shape (rows, cols, n_features)
            A copy of ``weights_``.

        Examples
        --------
        >>> import numpy as np
        >>> from somlab import SOM
        >>> X = np.random.default_rng(0).normal(size=(100, 3)) * [5.0, 1.0, 0.1]
        >>> W = SOM((1, 10)).initialize(X)   # PCA: the chain runs along the first component
        >>> W.shape, bool(np.ptp(W[0, :, 0]) > 10)
        ((1, 10, 3), True)
        """
        grid, dev, dt, _, _ = self._setup()
        Xa = self._check_X(X, reset=True)
        check_fit_memory(self, grid, *Xa.shape, dev, dt)
        Xt = self._tensor(Xa, dev, dt, whole=isinstance(self.init, str))
        W = self._initial_weights(Xt, grid, make_generator(self.random_state))
        self.weights_ = W.detach().cpu().numpy().reshape(*grid.shape, W.shape[1])
        self.history_ = _new_history()
        self.n_iter_ = 0
        for attr in ("labels_", "quantization_error_", "topographic_error_", "_gen"):
            if hasattr(self, attr):
                delattr(self, attr)
        for attr in _PROTOTYPE_DERIVED:
            self.__dict__.pop(attr, None)
        return self.weights_.copy()

    def partial_fit(self, X, y=None):
        """One epoch over ``X`` (online: per sample; batch and minibatch: mini-batch steps).

        The first call initialises the map from ``X``.  Schedules advance one step per call and
        reach their end values after ``epochs`` calls.
        """
        first = not hasattr(self, "weights_")
        grid, dev, dt, sig, lr = self._setup()
        if isinstance(X, (str, os.PathLike)) or as_batch_source(X, memmaps=False) is not None:
            raise DataError(
                "partial_fit takes one in-memory batch (an array or a tensor); pass a .npy "
                "path, a memory map or a DataLoader to fit, which streams it"
            )
        # the first batch initialises the map: a feature it never observes has no statistics
        whole = first and isinstance(self.init, str)
        Xa = self._check_X(X, reset=first)
        check_fit_memory(self, grid, *Xa.shape, dev, dt)
        data = _InMemory(self._tensor(Xa, dev, dt, whole=whole))
        if first:
            self._gen = make_generator(self.random_state)
            W = self._initial_weights(data.X, grid, self._gen)
            self.history_ = _new_history()
            self.n_iter_ = 0
        else:
            W = as_tensor(self.weights_.reshape(grid.n_nodes, -1), dt, dev).clone()
            if not hasattr(self, "_gen"):
                self._gen = make_generator(self.random_state)
        W = self._train(
            data,
            W,
            grid,
            self._gen,
            sig,
            lr,
            mode="online" if self.mode == "online" else "minibatch",
            first_epoch=self.n_iter_,
            epochs=1,
            total_epochs=max(self.epochs, self.n_iter_ + 1),
        )
        self.n_iter_ += 1
        self._finish(data, W, grid)
        return self

    def _threads(self, data: _Rows, n_nodes: int, n_features: int, mode: str):
        """:func:`~somlab._utils.choose_threads` for the steps of ``mode`` over ``data``: a
        batch epoch's distances (rows x nodes x features), a mini-batch step's, or one online
        sample's (that loop runs on one thread in any case)."""
        rows = data.n_rows or int(self.chunk_size)
        step_rows = {"batch": rows, "minibatch": min(rows, int(self.batch_size))}.get(mode, 1)
        return choose_threads(2.0 * step_rows * n_nodes * n_features, resolve_device(self.device))

    def _train(self, data: _Rows, W, grid, gen, sig, lr, *, mode, **kw):
        """:meth:`_run_epochs` on the CPU threads that the work size and the machine's load
        call for (:func:`~somlab._utils.choose_threads`); the caller's setting is restored."""
        for attr in _PROTOTYPE_DERIVED:  # clusters of the old prototypes no longer hold
            self.__dict__.pop(attr, None)
        with cpu_threads(self._threads(data, grid.n_nodes, W.shape[1], mode)):
            return self._run_epochs(data, W, grid, gen, sig, lr, mode=mode, **kw)

    def _run_epochs(
        self,
        data: _Rows,
        W,
        grid,
        gen,
        sig,
        lr,
        *,
        mode,
        first_epoch=0,
        epochs=None,
        total_epochs=None,
        reduce=None,
        show=True,
    ):
        """Run epochs ``first_epoch ..`` (``epochs`` of them) of ``mode`` over ``data``.

        The schedules reach their end values after ``total_epochs`` (default: ``epochs``, which
        defaults to ``self.epochs``).  ``data`` says where the rows come from (memory, a
        stream, a rank's shard); ``reduce`` sums a tensor over processes (None: this process
        only).  Appends to ``history_``; returns the prototypes ``[n_nodes, m]``.
        """
        epochs = int(self.epochs) if epochs is None else epochs
        total_epochs = epochs if total_epochs is None else total_epochs
        kern = self._kernels(grid, W.device, data, reference_point(W))
        h = self.history_
        if not bool(torch.isfinite(W).all()):
            raise DataError(
                "the initial prototypes contain NaN or inf (is a feature NaN in every sample?)"
            )
        bar = progress(
            range(first_epoch, first_epoch + epochs),
            bool(self.verbose) and show,
            desc=f"SOM {mode}",
            unit="epoch",
        )
        if mode == "batch":
            for epoch in bar:
                sigma = decay(self.sigma_decay, *sig, epoch, max(total_epochs - 1, 1))
                # this epoch's winners also give the metrics of the map the last epoch left
                metrics = _RunningMetrics(grid) if epoch > first_epoch else None
                W = _batch_epoch(kern, data.chunks(), W, sigma, metrics, reduce)
                if metrics is not None:
                    metrics.record(h, reduce)
                    _check_training(W, h["quantization_error"][-1], epoch)
                h["sigma"].append(sigma)
                h["learning_rate"].append(None)  # the exact batch SOM has none
            return W
        size = 1 if mode == "online" else int(self.batch_size)
        n_steps = max(1, math.ceil(data.n_samples / size))
        span0 = _span(W)
        # w' - x = (1 - lr h)(w - x): with 0 <= lr h <= 2 no step moves a prototype away from
        # its sample, so the map stays within reach of the data and its start (a small `init`
        # far from the data must not read as divergence); a larger rate or the mexican hat's
        # negative h can push prototypes away without bound
        can_diverge = max(lr) > 2 or self.neighbourhood == "mexican_hat"
        if max(lr) > 2 and first_epoch == 0:
            # w' - x = (1 - lr h)(w - x): a step with lr h > 2 leaves w farther from x
            warnings.warn(
                f"learning_rate={max(lr):g} > 2 in mode={mode!r}: a step can move a prototype "
                "farther from the sample it learns from than it was, and training may diverge; "
                "use a learning rate <= 1 (the default is 0.5)",
                RuntimeWarning,
                stacklevel=3,
            )
        total = total_epochs * n_steps

        def schedule(t):  # an iterable may yield more rows than counted: stay within [0, 1)
            t = min(t, total - 1)
            return (
                decay(self.sigma_decay, *sig, t, total),
                decay(self.learning_rate_decay, *lr, t, total),
            )

        sequential = mode == "online" and not kern.missing and self.distance == "euclidean"
        for epoch in bar:
            t = epoch * n_steps
            metrics = _RunningMetrics(grid) if data.running_metrics else None
            if sequential:
                W = _online_epoch(kern, data.chunks(gen), W, t, schedule, metrics)
            else:
                W = _step_epoch(kern, data.steps(size, gen), W, t, schedule, metrics, reduce)
            if metrics is None:  # the map after the epoch, measured on the data
                metrics = _measure(kern, data.chunks(), W)
            sigma, rate = schedule(t + n_steps - 1)
            h["sigma"].append(sigma)
            h["learning_rate"].append(rate)
            metrics.record(h, reduce)
            _check_training(W, h["quantization_error"][-1], epoch)
            if can_diverge:
                _check_span(W, span0, epoch, max(lr))
        return W

    def _kernels(self, grid, dev, data: _Rows, ref=None) -> _Kernels:
        return _Kernels(
            grid,
            grid.coordinates(torch.float64, dev),
            grid.periods(),
            self._neighbourhood_function(),
            self.distance,
            self.missing == "ignore",
            data.row_blocks,
            ref,
        )

    def _finish(self, data: _Rows, W, grid, reduce=None):
        with cpu_threads(self._threads(data, grid.n_nodes, W.shape[1], "batch")):
            self._final_pass(data, W, grid, reduce)

    def _final_pass(self, data: _Rows, W, grid, reduce=None):
        """Final pass: ``weights_``, ``labels_`` (this process's rows, in order),
        ``quantization_error_`` and ``topographic_error_`` (over all processes with
        ``reduce``), and in batch mode the final map's ``history_`` metrics."""
        kern = self._kernels(grid, W.device, data)
        metrics = _RunningMetrics(grid)
        n = data.n_rows
        labels = np.empty(n, dtype=np.int64) if n is not None else []
        at = 0
        for xb in data.chunks():
            b = kern.winners(xb, W, metrics).cpu().numpy()
            if n is not None:
                labels[at : at + len(b)] = b
            else:
                labels.append(b)
            at += len(b)
            del xb  # let the chunk go before the next one is read
        qe, te = metrics.values(reduce)
        _check_training(W, qe)
        h = self.history_
        if self.mode == "batch" and len(h["quantization_error"]) < len(h["sigma"]):
            h["quantization_error"].append(qe)
            h["topographic_error"].append(te)
        self.weights_ = W.detach().cpu().numpy().reshape(*grid.shape, W.shape[1])
        self.labels_ = labels if n is not None else np.concatenate(labels)
        self.quantization_error_, self.topographic_error_ = qe, te

    # ------------------------------------------------------------------ out-of-core training
    def _fit_stream(self, source: BatchSource, grid, dev, dt, sig, lr):
        """``fit`` on a :class:`~somlab.datasets._stream.BatchSource`, a chunk at a time."""
        if source.n_features is not None:  # an iterable's width is known after one batch
            check_fit_memory(self, grid, None, source.n_features, dev, dt, self.chunk_size)
        data = _Streamed(source, dt, dev, allow_nan=self.missing == "ignore")
        gen = make_generator(self.random_state)
        W = self._stream_initial_weights(data, grid, gen)
        self.history_ = _new_history()
        if self.mode != "batch" and source.n_samples is None:
            for _ in data.chunks():  # the schedules need the number of steps: count
                pass
        W = self._train(data, W, grid, gen, sig, lr, mode=self.mode)
        self.n_iter_ = int(self.epochs)
        self._finish(data, W, grid)
        self.n_features_in_ = int(source.n_features)
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def _stream_initial_weights(self, data: _Streamed, grid, gen):
        """The initialisations of :meth:`_initial_weights` from streamed statistics."""
        source, dt, dev, missing = data.source, data.dtype, data.device, data.allow_nan
        k = grid.n_nodes
        init = self.init
        if not isinstance(init, str):
            # No statistics pass here, so a feature that is NaN in every row (missing="ignore")
            # is not looked for: it only drops out of every distance and update, and a second
            # pass over the data just to find it would slow every streamed fit.
            if source.n_features is None:  # an iterable: one pass learns m (and n)
                for _ in data.chunks():
                    pass
            return self._array_init(source.n_features, k, dt, dev)
        if init == "sample" and source.addressable:  # the rows the in-memory fit would pick
            W = source.take(_sample_rows(source.n_samples, k, gen).numpy(), dt, dev)
            check_finite_tensor(W, allow_nan=missing)
            if missing and bool(torch.isnan(W).any()):  # (a feature seen in W is observed)
                mean = _observed_mean(scan(source, dt, dev, allow_nan=True)).to(dt)
                W = torch.where(torch.isnan(W), mean.expand_as(W), W)
            return W
        st = scan(
            source,
            dt,
            dev,
            allow_nan=missing,
            cov=init == "pca",
            bounds=init == "random",
            reservoir=k if init == "sample" else 0,
            generator=gen,
        )
        _observed_mean(st)
        if init == "random":
            return _random_weights(st.lo, st.hi, k, gen, dt)
        if init == "pca" and st.n >= 2:
            return _pca_weights(st.mean, st.cov, grid, dt)
        if init == "pca":  # a single sample: every prototype starts at it
            return st.mean.to(dt).expand(k, -1).clone()
        W = st.sample
        if W.shape[0] < k:  # fewer samples than nodes: draw with replacement, as in memory
            W = W[torch.randint(0, W.shape[0], (k,), generator=gen).to(W.device)]
        W = W.clone()
        if missing:
            W = torch.where(torch.isnan(W), st.mean.to(dt).expand_as(W), W)
        return W

    # ------------------------------------------------------------------ inference
    def _weights_tensor(self, dev, dt):
        return as_tensor(self.weights_.reshape(-1, self.weights_.shape[-1]), dt, dev)

    def _prepare(self, X):
        check_is_fitted(self, "weights_")
        dev, dt = resolve_device(self.device), resolve_dtype(self.dtype)
        Xt = self._tensor(self._check_X(X, reset=False), dev, dt)
        return Xt, self._weights_tensor(dev, dt)

    def predict(self, X):
        """Index of the best-matching unit of each sample (row-major: ``r * cols + c``)."""
        Xt, W = self._prepare(X)
        bmu, _ = best_matching_units(Xt, W, self.distance, missing=self.missing == "ignore")
        return bmu[:, 0].cpu().numpy()

    def fit_predict(self, X, y=None):
        """Fit, then return the best-matching unit of each training sample."""
        return self.fit(X).labels_

    def transform(self, X):
        """Distances from each sample to every prototype, shape (n_samples, n_nodes)."""
        Xt, W = self._prepare(X)
        d = pairwise_distances(Xt, W, self.distance, missing=self.missing == "ignore")
        return d.cpu().numpy()

    def score(self, X, y=None):
        """Negative quantization error of ``X`` (higher is better).

        The QE alone always improves as sigma shrinks (sigma -> 0 is k-means), so a grid
        search on this score picks the smallest sigma even where that map folds; pass
        ``scoring=somlab.metrics.make_som_scorer()`` to weigh in the topographic error.
        """
        return -self.quantization_error(X)

    def quantization_error(self, X) -> float:
        """Mean distance of each sample to its best-matching unit (SPEC.md §8 QE)."""
        Xt, W = self._prepare(X)
        _, dist = best_matching_units(Xt, W, self.distance, missing=self.missing == "ignore")
        return float(dist[:, 0].mean())

    def topographic_error(self, X) -> float:
        """Share of samples whose two best units are not grid neighbours (SPEC.md §8 TE)."""
        Xt, W = self._prepare(X)
        grid = self.grid_
        if grid.n_nodes < 2:
            return float("nan")
        bmu, _ = best_matching_units(Xt, W, self.distance, k=2, missing=self.missing == "ignore")
        return topographic_error_from_bmus(bmu, grid)

    def bmu_coordinates(self, X) -> np.ndarray:
        """Grid index of each sample's best-matching unit, shape (n_samples, 2): ``(row, col)``,
        or (n_samples, 3) ``(row, col, layer)`` on a 3-D grid."""
        return self.grid_.unravel(self.predict(X)).numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "ignore"
        tags.transformer_tags.preserves_dtype = []
        return tags


# ---------------------------------------------------------------------- helpers
# Distances computed from squares (||x||^2, x.w): these must stay finite in the training dtype.
# (Euclidean distances are centred and scaled before the expansion, core.distances.centred, so
# only the distances themselves and the per-node sums of the updates must stay finite.)
_SQUARING = ("sqeuclidean", "cosine")
# Sums of up to 2**40 samples per node must stay finite too.
_SUM_HEADROOM = 2.0**40


def checked_tensor(X, dt, dev, distance: str, *, allow_nan=False, columns=False, hint=None):
    """Validated ``X`` as a ``dt`` tensor on ``dev``, refused (DataError) for inf, NaN unless
    ``allow_nan``, a feature NaN in every row (``columns``), or values whose squared distances
    overflow ``dt``; a float64 value that the cast itself made inf is named as such."""
    T = as_tensor(X, dt, dev)
    try:
        check_finite_tensor(
            T,
            allow_nan=allow_nan,
            columns=columns,
            max_abs=_max_abs(distance, dt, T.shape[1]),
            hint=hint,
        )
    except DataError:
        _check_cast(X, T)
        raise
    _check_precision(X, T)
    return T


def _max_abs(distance: str, dtype: torch.dtype, m: int) -> float | None:
    """Largest |x| whose distances cannot overflow ``dtype``: with every coordinate of x and of
    the prototypes within M, ``||x||^2 + ||w||^2 - 2 x.w <= 4 m M^2 <= finfo.max``."""
    if distance == "euclidean":  # ||x - w|| <= 2 sqrt(m) M, and the sums of the updates
        return torch.finfo(dtype).max / (_SUM_HEADROOM * max(m, 1))
    if distance not in _SQUARING:
        return None
    return math.sqrt(torch.finfo(dtype).max / (4 * max(m, 1)))


def _check_precision(X, T: torch.Tensor) -> None:
    """Refuse a cast to a narrower dtype that erases the data: a feature whose values sit so
    far from zero that the dtype's spacing there exceeds 1/16 of their spread (timestamps
    ``1.7e9 + U(0, 100)`` in float32 keep a handful of distinct values, spaced 128 apart).
    Centring inside the distances (core.distances.centred) keeps float32 training exact for
    what float32 can hold, but not for values the cast has already rounded away.  A feature
    far narrower than the others (noise of 1e-9 around 0.3 beside features of spread 0.3) is
    not refused: it weighs nothing in the distances either way."""
    if not (isinstance(X, np.ndarray) and X.dtype.itemsize > T.element_size()) or X.size == 0:
        return
    if X.shape[0] < 2:
        return
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # all-NaN features: checked later
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(X, axis=0)
        big = np.nanmax(np.abs(X), axis=0)
    spacing = np.spacing(big.astype(np.float32 if T.dtype == torch.float32 else np.float16))
    # a feature whose spread is below 1e-4 of the widest feature's weighs under 1e-8 in every
    # squared distance: what the cast rounds away there (noise around a constant) is harmless
    matters = spread >= 1e-4 * np.nanmax(spread)
    bad = np.flatnonzero((spread > 0) & (spacing.astype(np.float64) > spread / 16) & matters)
    if bad.size:
        j = int(bad[0])
        dt = str(T.dtype).replace("torch.", "")
        raise DataError(
            f"feature {j} of X (values up to {big[j]:.6g}, standard deviation {spread[j]:.3g}) "
            f"cannot be held in {dt}: its values there are {float(spacing[j]):.3g} apart, so "
            f"the cast would erase the differences between samples ({bad.size} feature(s) "
            f"affected); pass dtype='float64', or subtract an offset (e.g. the first "
            "timestamp) before fitting"
        )


def _check_cast(X, T: torch.Tensor) -> None:
    """Called when ``T``, ``X`` cast to the training dtype, failed its check: if the cast
    itself made inf of finite values (1e300 in float32), say so (error path only)."""
    if not (isinstance(X, np.ndarray) and X.dtype.itemsize > T.element_size()):
        return
    if bool(torch.isinf(T).any()) and not np.isinf(X).any():
        dt = str(T.dtype).replace("torch.", "")
        raise DataError(
            f"X has values beyond the range of {dt} (max {torch.finfo(T.dtype).max:.3g}) that "
            f"overflow when cast to dtype='{dt}'; pass dtype='float64' or scale the data"
        ) from None


def fit_memory(
    n_samples: int | None,
    n_features: int,
    n_nodes: int,
    *,
    itemsize: int = 4,
    init="pca",
    chunk_rows: int | None = None,
) -> dict:
    """Bytes a SOM fit allocates at its peak, estimated from the shapes alone, by part.

    ``n_samples`` rows in memory (None: streamed ``chunk_rows`` at a time); ``itemsize`` of
    the training dtype.  The parts: ``"prototypes"`` (the map, its update sums, the new map
    and a temporary: about 5 ``[n_nodes, m]`` tensors, plus counts), ``"grid"`` (float64 node
    coordinates and one block of neighbourhood rows: displacements, weights), ``"init"``
    (float64 copies of the map for "pca" and "random", and for "pca" the covariance when it is
    formed), ``"data"`` (the data tensor and its float64 centred copy for the statistics, or
    two streamed chunks) and ``"distances"`` (the bounded distance blocks).  Used by
    :func:`check_fit_memory` to refuse a fit before it allocates.
    """
    from ..core.distances import _ELEMENT_BUDGET
    from ..core.updates import _BLOCK_ELEMENTS

    k, m, b = int(n_nodes), int(n_features), int(itemsize)
    parts = {
        "prototypes": k * (5 * m + 2) * b,
        "grid": k * 16 + max(k, _BLOCK_ELEMENTS) * (16 + 8 + 8 + b),
        "init": 0,
        "distances": 3 * min(_ELEMENT_BUDGET, max(k, 1) * (n_samples or chunk_rows or 1)) * b,
    }
    stats = isinstance(init, str) and init in ("pca", "random")
    if stats:
        parts["init"] = k * (2 * 8 * m + 4 * 16)
        if init == "pca" and m <= _EIGH_MAX_FEATURES:
            parts["init"] += 3 * 8 * m * m
    if n_samples is not None:
        parts["data"] = n_samples * m * (b + (16 if stats else 0))
    else:
        parts["data"] = 2 * (chunk_rows or 0) * m * (b + 8)
    return parts


def check_fit_memory(est, grid: Grid, n_samples, n_features, dev, dt, chunk_rows=None, maps=1):
    """Refuse (:class:`~somlab._utils.FitMemoryError`) a fit whose :func:`fit_memory` estimate
    exceeds the memory free on ``dev``, naming the size and the ways out, before anything of
    the map's size is allocated."""
    itemsize = torch.empty((), dtype=dt).element_size()
    parts = fit_memory(
        n_samples,
        n_features,
        grid.n_nodes * maps,
        itemsize=itemsize,
        init=est.init,
        chunk_rows=chunk_rows,
    )
    need = sum(parts.values())
    free = available_memory(dev)
    if free is None or need <= free:
        return
    name = type(est).__name__
    what = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if v > need / 20)
    rows = "streamed" if n_samples is None else f"{n_samples:,}"
    ways = [f"a smaller map (grid_shape={grid.shape} has {grid.n_nodes:,} nodes)"]
    if parts["init"] > need / 20:
        ways.append("init='sample' (no float64 statistics)")
    if parts["data"] > need / 5:
        ways.append(
            "a smaller chunk_size"
            if n_samples is None
            else "fit on a .npy path or memory map with a chunk_size (read a chunk at a time)"
        )
    raise FitMemoryError(
        f"{name}.fit would need about {format_bytes(need)} ({what}) for {rows} samples x "
        f"{n_features:,} features on a {grid.shape[0]} x {grid.shape[1]} map"
        + (f" x {maps} maps" if maps > 1 else "")
        + f", more than the {format_bytes(free)} free on {dev}; use "
        + ", or ".join(ways)
    )


def _check_training(W: torch.Tensor, qe: float, epoch: int | None = None) -> None:
    """Refuse a map whose training diverged (prototypes not finite) or whose distances
    overflow the dtype (a quantization error that is not finite), with what to do."""
    when = "after training" if epoch is None else f"after epoch {epoch + 1}"
    dt = str(W.dtype).replace("torch.", "")
    if not bool(torch.isfinite(W).all()):
        raise DataError(
            f"training diverged: the prototypes are not finite {when}; lower learning_rate, "
            "scale the data (e.g. StandardScaler) or pass dtype='float64'"
        )
    if not math.isfinite(qe):
        raise DataError(
            f"the distances to the prototypes overflow {dt} (quantization error {qe} {when}); "
            "scale the data (e.g. StandardScaler), pass dtype='float64' or lower learning_rate"
        )


def _span(W: torch.Tensor) -> float:
    """The largest per-feature extent of the prototypes ``W [k, m]`` (NaN-free)."""
    if W.shape[0] < 2:
        return 0.0
    lo, hi = torch.aminmax(W.double(), dim=0)
    return float((hi - lo).amax())


# A mini-batch or online map whose prototypes spread this much wider than the initial map's
# has diverged (w' - x = (1 - lr h)(w - x): steps with lr h > 2 overshoot further each time).
# With a learning rate <= 1 every step is a convex combination: the map stays inside the hull
# of the initial prototypes and the data, which the initialisations span.
_DIVERGED_SPAN = 1e4
#: fitted attributes computed from the prototypes (SOM.cluster): dropped when they change
_PROTOTYPE_DERIVED = ("node_clusters_", "cluster_scores_")


def _check_span(W: torch.Tensor, span0: float, epoch: int, lr: float) -> None:
    """Refuse a mini-batch / online map that exploded while staying finite (issue 17:
    ``learning_rate=50`` reached weights of 4e21 without a message)."""
    span = _span(W)
    if span0 > 0 and span > _DIVERGED_SPAN * span0:
        raise DataError(
            f"training diverged: after epoch {epoch + 1} the prototypes span {span:.3g}, "
            f"{span / span0:.3g} times the initial map's {span0:.3g}; lower learning_rate "
            f"(it is {lr:g}; a step with learning_rate > 2 can overshoot the sample)"
        )


def _observed_mean(st):
    """``st.mean`` of a streamed statistics pass; a feature never observed (NaN in every row,
    missing="ignore") has a NaN mean and is refused with the in-memory fit's message."""
    if bool(torch.isnan(st.mean).any()):
        check_finite_tensor(st.mean.unsqueeze(0), allow_nan=True, columns=True)
    return st.mean


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


# The distances of a streamed chunk are computed for blocks of rows of at most this many
# distances (or features) at a time, 2 MB of float32: their temporaries stay small whatever
# chunk_size is, which also keeps the allocator from piling up freed chunk-sized blocks.
_STREAM_BLOCK = 1 << 19


def _chunk_bmus(X, W, metric, *, k=1, missing=False, ref=None):
    """:func:`best_matching_units` of a streamed chunk ``X [rows, m]``, a row block at a time.

    A row's distances are computed the same way in any block, so this equals one call on the
    chunk (bit for bit on CPU) without its ``[chunk, n_nodes]``-sized temporaries.
    Returns ``(indices [rows, k], distances [rows, k])``.
    """
    step = max(1, _STREAM_BLOCK // max(W.shape[0], X.shape[1], 1))
    if X.shape[0] <= step:
        return best_matching_units(X, W, metric, k=k, missing=missing, ref=ref)
    idx = torch.empty(X.shape[0], k, dtype=torch.long, device=X.device)
    dist = torch.empty(X.shape[0], k, dtype=X.dtype, device=X.device)
    for a in range(0, X.shape[0], step):
        idx[a : a + step], dist[a : a + step] = best_matching_units(
            X[a : a + step], W, metric, k=k, missing=missing, ref=ref
        )
    return idx, dist


def _regroup(batches, size: int):
    """Re-cut a stream of ``[rows, m]`` tensors into steps of exactly ``size`` rows (the last
    may be smaller): rows left at the end of one batch start the next step."""
    carry = None
    for xb in batches:
        start = 0
        if carry is not None:
            start = size - carry.shape[0]
            carry = torch.cat([carry, xb[:start]])
            if carry.shape[0] < size:
                continue
            yield carry
            carry = None
        stop = start + (xb.shape[0] - start) // size * size
        for a in range(start, stop, size):
            yield xb[a : a + size]
        if stop < xb.shape[0]:
            carry = xb[stop:].clone()  # a copy, so that the chunk itself can be freed
    if carry is not None:
        yield carry


# ---------------------------------------------------------------------- epochs
# The epoch rules below are written once for every data source: a :class:`_Rows` says where
# the rows come from (memory, a stream, or a rank's shard in somlab.distributed) and an optional
# ``reduce`` sums the per-node and metric sums over processes (None: this process only).

# A shuffled in-memory pass gathers its rows a block at a time (memory stays bounded, as for
# one step's gather).  A multiple of sequential_steps' refresh period (256), so an online epoch
# split into blocks takes exactly the steps of one call over all the rows.
_PERMUTED_ROWS = 1 << 14


def _new_history() -> dict:
    return {k: [] for k in ("sigma", "learning_rate", "quantization_error", "topographic_error")}


class _Rows:
    """Where an epoch's rows come from.

    ``chunks(generator)`` is one pass as ``[rows, m]`` tensors, in row order or, with a
    generator, shuffled; ``steps(size, generator)`` is a shuffled pass cut into mini-batches
    ``(rows [b, m], B)``, B the batch size a step divides by.
    """

    n_samples: int | None  # rows the schedules count (with several processes: all of them)
    n_rows: int | None  # rows a pass yields here, when known before the pass
    running_metrics = False  # mini-batch history_ measured as the rows go by, not by a pass
    row_blocks = False  # distances a row block at a time (large streamed chunks)

    def chunks(self, generator=None):
        raise NotImplementedError

    def steps(self, size: int, generator):
        for xb in _regroup(self.chunks(generator), size):
            yield xb, xb.shape[0]


class _InMemory(_Rows):
    """Rows held as one tensor ``X [n, m]``: a pass is ``X`` itself; a shuffled pass is
    ``X[torch.randperm(n)]``, gathered ``_PERMUTED_ROWS`` rows at a time."""

    def __init__(self, X: torch.Tensor):
        self.X = X
        self.n_samples = self.n_rows = X.shape[0]

    def chunks(self, generator=None):
        if generator is None:
            yield self.X
            return
        order = torch.randperm(self.n_rows, generator=generator).to(self.X.device)
        for a in range(0, self.n_rows, _PERMUTED_ROWS):
            yield self.X[order[a : a + _PERMUTED_ROWS]]


class _Streamed(_Rows):
    """A :class:`~somlab.datasets._stream.BatchSource` read a chunk at a time.

    Files and memory maps are shuffled by the source (chunk order, then rows within each
    chunk); iterables are read in the order they yield.  Mini-batch metrics are running
    estimates, so that an epoch is a single pass.
    """

    running_metrics = True
    row_blocks = True

    def __init__(self, source: BatchSource, dtype, device, allow_nan: bool):
        self.source, self.dtype, self.device, self.allow_nan = source, dtype, device, allow_nan

    @property
    def n_samples(self):
        return self.source.n_samples

    @property
    def n_rows(self):
        return self.source.n_samples if self.source.addressable else None

    def chunks(self, generator=None):
        return self.source.iter_batches(
            self.dtype,
            self.device,
            allow_nan=self.allow_nan,
            generator=generator if self.source.addressable else None,
        )


@dataclass(frozen=True)
class _Kernels:
    """What an epoch takes from the estimator: grid, neighbourhood, distance, missing values."""

    grid: Grid
    coords: torch.Tensor  # [n_nodes, 2] float64
    periods: tuple | None  # toroidal grid periods
    fn: object  # neighbourhood function
    distance: str
    missing: bool
    row_blocks: bool
    # [m]: the point distances are centred on (core.distances.centred), fixed for a whole pass
    # so that every chunk, and every map of a SOMEnsemble, rounds alike; None: W's own mean
    ref: torch.Tensor | None = None

    @property
    def n_nodes(self) -> int:
        return self.grid.n_nodes

    def winners(self, X, W, metrics=None) -> torch.Tensor:
        """Best-matching unit of each row of ``X`` (``[rows]``); ``metrics`` also gets the
        rows' distances and second-best units (QE and TE of ``W``)."""
        find = _chunk_bmus if self.row_blocks else best_matching_units
        if metrics is None:
            return find(X, W, self.distance, missing=self.missing, ref=self.ref)[0][:, 0]
        k = min(2, self.n_nodes)
        bmu, dist = find(X, W, self.distance, k=k, missing=self.missing, ref=self.ref)
        metrics.add(dist, bmu)
        return bmu[:, 0]

    def spread_sums(self, S, C, sigma: float, reduce=None):
        """``(num, den)`` of :func:`~somlab.core.updates.spread` from this process's winner
        sums, added up over processes first when ``reduce`` is given."""
        if reduce is not None:  # one message; another process may have per-feature counts
            m = S.shape[1]
            if self.missing and C.shape[1] == 1:
                C = C.expand(-1, m)
            both = reduce(torch.cat([S, C], 1))
            S, C = both[:, :m], both[:, m:]
        return spread(self.coords, S, C, self.fn, sigma, self.periods)


def _batch_epoch(kern: _Kernels, chunks, W, sigma: float, metrics=None, reduce=None):
    """One epoch of Kohonen's batch SOM: ``w_j = sum_i h(b_i, j) x_i / sum_i h(b_i, j)``.

    The winner sums of all ``chunks`` are added in row order and spread over the grid once, so
    any chunking gives the map of one chunk (bit for bit on CPU).  A node with no weight keeps
    its prototype.  ``metrics`` collects the QE and TE of ``W``, the map before the update.
    """
    S = C = None
    for xb in chunks:
        S, C = winner_sums(kern.winners(xb, W, metrics), xb, kern.n_nodes, S, C)
        del xb  # let the chunk go before the next one is read
    num, den = kern.spread_sums(S, C, sigma, reduce)
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, 1.0), W)


def _step_epoch(kern: _Kernels, batches, W, t: int, schedule, metrics=None, reduce=None):
    """Mini-batch steps from step ``t``: ``w_j += lr_t / B sum_i h_t(b_i, j) (x_i - w_j)``.

    ``batches`` yields ``(rows [b, m], B)``; B = b except for a process's share of a global
    batch (``reduce`` then adds the shares' sums).  With B = 1 this is the online rule.
    ``schedule(t)`` is ``(sigma, lr)`` of step t; ``metrics`` collects each batch against the
    map before its step.
    """
    for xb, B in batches:
        sigma, rate = schedule(t)
        S, C = winner_sums(kern.winners(xb, W, metrics), xb, kern.n_nodes)
        num, den = kern.spread_sums(S, C, sigma, reduce)
        # mean of the per-sample online updates: lr * (num - den * w) / B
        W = W + (rate / B) * (num - den * W)
        t += 1
    return W


def _online_epoch(kern: _Kernels, chunks, W, t: int, schedule, metrics=None):
    """Online steps from step ``t``, one row at a time in chunk order, by
    :func:`~somlab.core.updates.sequential_steps` (Euclidean distance, no missing values:
    the same steps as :func:`_step_epoch` with B = 1, far faster).  ``metrics`` collects each
    chunk against the map before its steps."""
    for xb in chunks:
        if metrics is not None:
            kern.winners(xb, W, metrics)
        n = xb.shape[0]
        sigmas, rates = zip(*(schedule(t + i) for i in range(n)))
        W = sequential_steps(
            xb, list(range(n)), W, kern.coords, kern.fn, sigmas, rates, kern.periods, ref=kern.ref
        )
        t += n
        del xb  # let the chunk go before the next one is read
    return W


def _measure(kern: _Kernels, chunks, W) -> _RunningMetrics:
    """QE and TE of the map ``W`` on a pass over ``chunks``."""
    metrics = _RunningMetrics(kern.grid)
    for xb in chunks:
        kern.winners(xb, W, metrics)
        del xb
    return metrics


class _RunningMetrics:
    """QE and TE summed chunk by chunk (device tensors: no sync per chunk).

    TE counts the samples whose two best units are farther apart on the grid than
    ``grid.adjacency_radius()``, exactly as :func:`topographic_error_from_bmus`.
    """

    def __init__(self, grid: Grid):
        self.grid, self.n = grid, 0
        self.qe = self.te = self.coords = None

    def add(self, dist: torch.Tensor, bmu: torch.Tensor) -> None:
        if self.qe is None:
            self.qe = torch.zeros((), dtype=torch.float64, device=dist.device)
            self.te = torch.zeros((), dtype=torch.float64, device=dist.device)
            self.coords = self.grid.coordinates(torch.float64, dist.device)
        self.qe += dist[:, 0].sum(dtype=torch.float64)
        if bmu.shape[1] >= 2:
            d = grid_distance(self.coords, bmu[:, 0], bmu[:, 1], self.grid.periods())
            self.te += (d > self.grid.adjacency_radius()).sum()
        self.n += dist.shape[0]

    def values(self, reduce=None) -> tuple[float, float]:
        """``(QE, TE)`` of the rows added, or of every process's rows with ``reduce``."""
        qe, te, n = (0.0, 0.0, 0) if self.qe is None else (float(self.qe), float(self.te), self.n)
        if reduce is not None:
            qe, te, n = reduce(torch.tensor([qe, te, n], dtype=torch.float64)).tolist()
        if n == 0:
            return float("nan"), float("nan")
        return qe / n, te / n if self.grid.n_nodes > 1 else float("nan")

    def record(self, history: dict, reduce=None) -> None:
        qe, te = self.values(reduce)
        history["quantization_error"].append(qe)
        history["topographic_error"].append(te)
