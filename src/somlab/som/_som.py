"""The classic Kohonen Self-Organizing Map as a scikit-learn estimator."""

from __future__ import annotations

import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._errors import DataError
from .._utils import (
    PARALLEL_WORK,
    as_tensor,
    choose_threads,
    poll_threads,
    progress,
    resolve_device,
    resolve_dtype,
    seeded_generator,
    step_work,
    thread_governor,
    validate_X,
)
from ..core.distances import METRICS, best_matching_units, pairwise_distances, reference_point
from ..core.grids import TOPOLOGIES, Grid, make_grid
from ..core.neighbourhoods import NEIGHBOURHOODS, CutOff, get_neighbourhood
from ..core.schedules import SCHEDULES, decay, parse_schedule
from ..datasets._stream import DEFAULT_CHUNK_SIZE, BatchSource, as_batch_source
from ..metrics._som import topographic_error_from_bmus
from ..persistence import SaveLoadMixin
from ._checks import (  # noqa: F401  (fit_memory, checked_tensor: re-exported)
    _check_span,
    _check_training,
    _span,
    check_fit_memory,
    checked_tensor,
    fit_memory,
)
from ._cluster import MapAnalysisMixin
from ._init import (  # noqa: F401  (principal_axes: re-exported)
    INITS,
    ArrayStatistics,
    DataStatistics,
    StreamStatistics,
    initial_weights,
    principal_axes,
)
from ._sources import InMemory, Rows, _Streamed
from ._train import (
    _batch_epoch,
    _Kernels,
    _measure,
    _new_history,
    _online_epoch,
    _RunningMetrics,
    _step_epoch,
)

#: fitted attributes computed from the prototypes (SOM.cluster): dropped when they change
_PROTOTYPE_DERIVED = ("node_clusters_", "cluster_scores_")
MODES = ("batch", "minibatch", "online")


def schedule_ends(p: dict, grid: Grid):
    """``((sigma start, end), (rate start, end))`` of a map with parameters ``p`` on ``grid``:
    sigma defaults to half the longest axis, its end to ``min(1, start)``, the rate's end to
    a hundredth of its start; winner-only training has sigma 0 throughout.  (SOM and each map
    of SOMEnsemble.)"""
    s0 = float(p["sigma"]) if p["sigma"] is not None else max(grid.shape) / 2.0
    s1 = float(p["sigma_end"]) if p["sigma_end"] is not None else min(1.0, s0)
    if p.get("neighbourhood") == "winner":  # no neighbourhood: sigma plays no part
        s0 = s1 = 0.0
    r0 = float(p["learning_rate"])
    r1 = float(p["learning_rate_end"]) if p["learning_rate_end"] is not None else r0 / 100
    return (s0, s1), (r0, r1)


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

    Engines that own the data layout train through one documented hook,
    :meth:`_fit_epochs` (their rows, initialisation statistics, generator and reductions;
    :func:`somlab.distributed.fit_som` uses it), so that every way of fitting runs the same
    initialisation rules (:mod:`somlab.som._init`) and epoch rules (:mod:`somlab.som._train`).

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
        sigmas, rates = schedule_ends(self.get_params(), grid)
        return grid, dev, dt, sigmas, rates

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
    def _initial_weights(self, stats: DataStatistics, grid: Grid, gen: torch.Generator):
        """:func:`~somlab.som._init.initial_weights` of ``init`` from ``stats``."""
        return initial_weights(self.init, stats, grid, gen, missing=self.missing == "ignore")

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
        source = as_batch_source(X, self.chunk_size)
        if source is not None:
            return self._fit_stream(source)
        return self._fit_epochs(X)

    def _fit_epochs(self, X, *, layout=None, generator=None, reduce=None, agree=None, show=True):
        """The training hook: ``fit`` on in-memory ``X`` with the data layout, the generator and
        the reductions supplied by the caller.  :func:`somlab.distributed.fit_som` trains
        through it (and only through it); ``fit(X)`` is ``_fit_epochs(X)``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Checked as ``fit`` checks it (here: this process's rows).
        layout : callable or None
            ``layout(Xt) -> (rows, statistics)`` with ``Xt`` the checked training tensor:
            ``rows`` a :class:`~somlab.som._sources.Rows` (where each epoch's rows come from),
            ``statistics`` a :class:`~somlab.som._init.DataStatistics` (what ``init`` reads).
            None: ``Xt`` itself (:class:`~somlab.som._sources.InMemory`,
            :class:`~somlab.som._init.ArrayStatistics`).
        generator : callable or None
            ``generator(g) -> g'`` applied to the estimator's seeded generator (e.g. to make
            every process use rank 0's state).
        reduce : callable or None
            ``reduce(t, op="sum")`` adds a tensor up over processes: the per-node winner sums
            of every step and the metric sums (None: this process only).
        agree : callable or None
            ``agree(W) -> W`` applied to the trained prototypes before the final pass (e.g. a
            broadcast from rank 0, so that every process holds the same bits).
        show : bool
            Show the progress bar (with ``verbose``); e.g. on rank 0 only.

        Sets what ``fit`` sets; ``labels_`` holds the winners of this process's rows; the
        metrics are over all processes when ``reduce`` is given.  Returns ``self``.
        """
        grid, dev, dt, sig, lr = self._setup()
        Xa = self._check_X(X, reset=True)
        check_fit_memory(self, grid, *Xa.shape, dev, dt)
        # a feature NaN in every row of one shard may be observed in another's
        Xt = self._tensor(Xa, dev, dt, whole=layout is None)
        data, stats = (InMemory(Xt), ArrayStatistics(Xt)) if layout is None else layout(Xt)
        gen = seeded_generator(self.random_state)
        if generator is not None:
            gen = generator(gen)
        return self._fit_from(
            data, stats, grid, gen, sig, lr, reduce=reduce, agree=agree, show=show
        )

    def _fit_from(self, data, stats, grid, gen, sig, lr, *, reduce=None, agree=None, show=True):
        """Initialise from ``stats``, run the epochs over ``data`` and the final pass."""
        W = self._initial_weights(stats, grid, gen)
        self.history_ = _new_history()
        if self.mode != "batch" and data.n_samples is None:
            for _ in data.chunks():  # the schedules need the number of steps: count
                pass
        W, look = self._train(data, W, grid, gen, sig, lr, mode=self.mode, reduce=reduce, show=show)
        self.n_iter_ = int(self.epochs)
        if agree is not None:
            W = agree(W)
        self._finish(data, W, grid, reduce=reduce, prior=look)
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
        stats = ArrayStatistics(Xt)
        W = self._initial_weights(stats, grid, seeded_generator(self.random_state))
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
        data = InMemory(self._tensor(Xa, dev, dt, whole=whole))
        if first:
            self._gen = seeded_generator(self.random_state)
            W = self._initial_weights(ArrayStatistics(data.X), grid, self._gen)
            self.history_ = _new_history()
            self.n_iter_ = 0
        else:
            W = as_tensor(self.weights_.reshape(grid.n_nodes, -1), dt, dev).clone()
            if not hasattr(self, "_gen"):
                self._gen = seeded_generator(self.random_state)
        W, look = self._train(
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
        self._finish(data, W, grid, prior=look)
        return self

    def _threads(self, data: Rows, n_nodes: int, n_features: int, mode: str):
        """:func:`~somlab._utils.choose_threads` for the steps of ``mode`` over ``data``
        (:func:`~somlab._utils.step_work`): a batch epoch, a mini-batch step, or online a
        chunk of the metrics pass after each epoch (the sample loop itself runs on one
        thread in any case)."""
        work = self._step_work(data, n_nodes, n_features, mode)
        return choose_threads(work, resolve_device(self.device))

    def _step_work(self, data: Rows, n_nodes: int, n_features: int, mode: str) -> float:
        """:func:`~somlab._utils.step_work` of a step of ``mode`` over ``data``."""
        rows = data.n_rows or int(self.chunk_size)
        if mode == "minibatch":
            rows = min(rows, int(self.batch_size))
        elif mode != "batch":
            rows = min(rows, int(self.chunk_size))
        return step_work(rows, n_nodes, n_features)

    def _train(self, data: Rows, W, grid, gen, sig, lr, *, mode, **kw):
        """:meth:`_run_epochs` on the CPU threads that the work size and the machine's load
        call for (:func:`~somlab._utils.choose_threads`, looked at again during the fit by a
        :class:`~somlab._utils.thread_governor`); the caller's setting is restored.  Returns
        the prototypes and the governor's outcome (the final pass's ``prior``)."""
        for attr in _PROTOTYPE_DERIVED:  # clusters of the old prototypes no longer hold
            self.__dict__.pop(attr, None)
        with thread_governor(lambda: self._threads(data, grid.n_nodes, W.shape[1], mode)) as g:
            W = self._run_epochs(data, W, grid, gen, sig, lr, mode=mode, **kw)
        # the count stands for the load only where the steps were large enough to look at it
        # (small steps take one thread whatever the load; the final pass's are larger)
        big = self._step_work(data, grid.n_nodes, W.shape[1], mode) >= PARALLEL_WORK
        return W, (g.outcome if big else None)

    def _run_epochs(
        self,
        data: Rows,
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

    def _kernels(self, grid, dev, data: Rows, ref=None) -> _Kernels:
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

    def _finish(self, data: Rows, W, grid, reduce=None, prior=None):
        """The final pass (:meth:`_final_pass`) on the threads its work and the load call for;
        ``prior``: the training's thread count (``thread_governor.outcome``; None where its
        steps were too small to look at the load), kept where it had every core or is fresh,
        so that the pass needs no look of its own (nor does a transient read pin it on one
        core)."""
        pick = lambda: self._threads(data, grid.n_nodes, W.shape[1], "batch")  # noqa: E731
        with thread_governor(pick, prior):
            self._final_pass(data, W, grid, reduce)

    def _final_pass(self, data: Rows, W, grid, reduce=None):
        """Final pass: ``weights_``, ``labels_`` (this process's rows, in order),
        ``quantization_error_`` and ``topographic_error_`` (over all processes with
        ``reduce``), and in batch mode the final map's ``history_`` metrics."""
        kern = self._kernels(grid, W.device, data)
        metrics = _RunningMetrics(grid)
        n = data.n_rows
        labels = np.empty(n, dtype=np.int64) if n is not None else []
        at = 0
        for xb in data.chunks():
            poll_threads()
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
    def _fit_stream(self, source: BatchSource):
        """``fit`` on a :class:`~somlab.datasets._stream.BatchSource`, a chunk at a time.

        With an ``init`` array there is no statistics pass, so a feature that is NaN in every
        row (missing="ignore") is not looked for: it only drops out of every distance and
        update, and a second pass over the data just to find it would slow every fit."""
        grid, dev, dt, sig, lr = self._setup()
        if source.n_features is not None:  # an iterable's width is known after one batch
            check_fit_memory(self, grid, None, source.n_features, dev, dt, self.chunk_size)
        missing = self.missing == "ignore"
        data = _Streamed(source, dt, dev, allow_nan=missing)
        gen = seeded_generator(self.random_state)
        stats = StreamStatistics(
            source, dt, dev, allow_nan=missing, init=self.init, k=grid.n_nodes, generator=gen
        )
        self._fit_from(data, stats, grid, gen, sig, lr)
        self.n_features_in_ = int(source.n_features)
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

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
