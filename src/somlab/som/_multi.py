"""Many classic SOMs in one fit: K maps of one grid, each with its own hyper-parameters.

The K prototype sets live in one tensor ``W [K, n_nodes, m]`` (any grid :class:`SOM` takes:
rectangular or hexagonal, toroidal or not, 1-D chains and 3-D rectangular grids).  One epoch of
the exact batch SOM for all maps is

* winners: map by map, :func:`somlab.core.distances.best_matching_units` (the blocked
  first-minimum search a single :class:`SOM` runs, on each map's own reference point);
* sums of the samples per winner for every map (one ``index_add_`` on a ``K * n_nodes`` index);

and then, per map, the neighbourhood-weighted means ``w_kj = sum_r h_k(r, j) S_kr / sum_r h_k(r,
j) C_kr`` with the neighbourhood built a block of rows at a time
(:func:`somlab.core.updates.spread`, the kernel :class:`SOM` calls with K = 1).  No
``samples x nodes x features`` tensor is ever built, so memory is linear in ``K * n_nodes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from .._errors import DataError
from .._permap import PerMapMixin, is_listlike
from .._utils import (
    as_tensor,
    choose_threads,
    progress,
    resolve_device,
    resolve_dtype,
    seeded_generator,
    step_work,
    thread_governor,
    validate_X,
)
from ..core.distances import best_matching_units, reference_point
from ..core.grids import make_grid, parse_grid_shape
from ..core.schedules import decay
from ..persistence import SaveLoadMixin
from ._checks import _check_training, check_fit_memory, checked_tensor
from ._init import ArrayStatistics, initial_weights
from ._som import SOM, schedule_ends
from ._sources import InMemory, Rows
from ._train import _batch_epoch as batch_epoch
from ._train import _Kernels, _RunningMetrics
from ._train import _step_epoch as step_epoch

#: Hyper-parameters that may differ from map to map (a scalar is shared by all maps).
PER_MAP = (
    "radius",
    "sigma",
    "sigma_end",
    "sigma_decay",
    "learning_rate",
    "learning_rate_end",
    "learning_rate_decay",
    "random_state",
)

#: Parameters every map shares, passed unchanged to each map's :class:`SOM`.
SHARED = (
    "grid_shape",
    "topology",
    "toroidal",
    "distance",
    "neighbourhood",
    "epochs",
    "mode",
    "batch_size",
    "device",
    "dtype",
)

# Elements of one [block, n_nodes] neighbourhood block (core.updates.spread).  A GPU wants few
# large launches; a CPU wants cache-sized blocks (SOM's default, so that the sums are its own).
_BLOCK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 24}


def _block_elements(device: torch.device) -> int:
    return _BLOCK_ELEMENTS.get(device.type, _BLOCK_ELEMENTS["cpu"])


# ---------------------------------------------------------------------- winners, map by map
def map_references(W: torch.Tensor) -> torch.Tensor:
    """Each map's :func:`~somlab.core.distances.reference_point`, ``[K, m]`` (what a single
    :class:`SOM` of that map centres its distances on)."""
    return torch.stack([reference_point(Wk) for Wk in W])


def map_winners(X, W, metric: str, k: int, refs=None):
    """Best ``k`` units of every sample in every map: ``(idx [K, n, k], dist [K, n, k])``.

    ``X`` is ``[n, m]`` (the same samples for all maps) or ``[K, n, m]`` (each map its own);
    ``W`` is ``[K, N, m]``.  Map by map, :func:`somlab.core.distances.best_matching_units`, the
    call a single :class:`SOM` makes (centred on ``refs[k]``; None: each map's own mean), so
    winners, ties and distances are that SOM's bit for bit.
    """
    parts = [
        best_matching_units(
            X if X.dim() == 2 else X[j], Wj, metric, k=k, ref=None if refs is None else refs[j]
        )
        for j, Wj in enumerate(W)
    ]
    return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])


@dataclass(frozen=True)
class _MapKernels(_Kernels):
    """SOM's epoch kernels (:class:`~somlab.som._train._Kernels`) for K maps ``W [K, N, m]``:
    each map's winners by :func:`map_winners` (centred on each map's ``refs [K, m]``), ``fn``
    one neighbourhood function per map."""

    refs: torch.Tensor | None = None

    def winners(self, X, W, metrics=None) -> torch.Tensor:
        """Each map's best unit of each row of ``X`` (``[K, rows]``); ``metrics`` also gets
        the distances and second-best units (``[K, rows, 2]``)."""
        k = 1 if metrics is None else min(2, self.n_nodes)
        idx, dist = map_winners(X, W, self.distance, k, self.refs)
        if metrics is not None:
            metrics.add(dist, idx)
        return idx[..., 0]


class _PerMapOrders(Rows):
    """The rows ``X [n, m]`` in one shuffled order per map (a generator each): mini-batch steps
    ``[K, b, m]``, map k's rows in the order ``SOM(random_state=seed_k)`` draws."""

    def __init__(self, X: torch.Tensor, generators):
        self.X, self.generators = X, generators
        self.n_samples = self.n_rows = X.shape[0]

    def steps(self, size: int, generator=None):
        orders = [torch.randperm(self.n_rows, generator=g) for g in self.generators]
        order = torch.stack(orders).to(self.X.device)
        for a in range(0, self.n_rows, size):
            xb = self.X[order[:, a : a + size]]
            yield xb, xb.shape[-2]


# ---------------------------------------------------------------------- the estimator
class SOMEnsemble(SaveLoadMixin, PerMapMixin, BaseEstimator):
    """K classic SOMs of one grid trained together on the same data, in one fit.

    Each map has its own neighbourhood and learning-rate schedule (and, optionally, its own
    seed); everything that shapes the computation (grid, distance, neighbourhood function,
    epochs, mode, batch size) is shared.  Map ``k`` is the map that
    ``SOM(**ensemble.get_map_params()[k]).fit(X)`` trains (bit for bit on the CPU, see Notes),
    in one fit: ``X`` is checked and its initialisation statistics computed once, and every
    epoch runs SOM's kernels with a map axis.

    Parameters
    ----------
    grid_shape, topology, toroidal, distance, neighbourhood, epochs, batch_size, device, dtype,
    verbose
        Shared by all maps; as in :class:`somlab.SOM`.  ``grid_shape`` is one ``(rows, cols)``
        (or ``(rows, cols, layers)``, a 3-D rectangular grid) for all maps: maps of different
        sizes need one ensemble per grid shape.
    radius, sigma, sigma_end, sigma_decay, learning_rate, learning_rate_end, learning_rate_decay
        A scalar (shared) or a sequence of K values, one per map; as in :class:`somlab.SOM`
        (``radius``: the neighbourhood's cut-off at the start of training, shrinking with
        each map's sigma; None: none).
        All sequences must have the same length K; with no sequence K = 1.
    mode : {"batch", "minibatch"}, default="batch"
        Kohonen's exact batch SOM, or mean online updates over batches of ``batch_size``
        samples (with ``batch_size=1`` this is the online rule).
    init : {"pca", "random", "sample"} or array, default="pca"
        As in :class:`somlab.SOM`; an array of shape (*grid_shape, n_features) is shared, one
        of shape (K, *grid_shape, n_features) gives each map its own initial prototypes.
    random_state : int, RandomState, None, or a sequence of K of these
        A single value seeds one generator shared by all maps: every map starts from the same
        prototypes and (minibatch) sees the samples in the same order, which is what
        ``SOM(random_state=value)`` does for each map.  A sequence gives each map its own
        generator, hence its own initialisation and sample order.

    Attributes
    ----------
    n_maps_ : int
    weights_ : ndarray of shape (K, *grid_shape, n_features)
    quantization_error_ : ndarray of shape (K,)
        Mean distance of the training samples to their best-matching unit, per map, in the
        maps' ``distance`` (as :attr:`SOM.quantization_error_`; only for "euclidean" is it
        :func:`somlab.metrics.quantization_error`).
    topographic_error_ : ndarray of shape (K,)
        Share of training samples whose two best units are not adjacent, per map.
    labels_ : ndarray of shape (K, n_samples)
        Best-matching unit of each training sample in each map.
    history_ : dict of ndarrays of shape (epochs, K)
        ``sigma``, ``learning_rate`` (NaN in batch mode), ``quantization_error`` and
        ``topographic_error`` after each epoch.
    n_iter_ : int

    Notes
    -----
    Each map's winners are found by the call a single :class:`SOM` makes
    (:func:`~somlab.core.distances.best_matching_units`), so winners (ties included) are the
    same, and each map's update sums are those of a single SOM (the kernels of
    :mod:`somlab.core.updates` with a map axis run the one-map rule per map): on CPU map
    ``k``'s weights, winners, metrics and history equal ``SOM(**get_map_params()[k]).fit(X)``'s
    bit for bit (tested on every grid, 3-D ones included, distance and neighbourhood).  On
    CUDA, where sums by atomics make even one SOM vary from run to run, a sample that rounding
    places between two units may take either.
    ``missing="ignore"`` and the "online" mode of :class:`SOM` are not offered.

    Examples
    --------
    >>> import numpy as np
    >>> from somlab.som._multi import SOMEnsemble
    >>> X = np.random.default_rng(0).random((300, 3))
    >>> ens = SOMEnsemble((6, 6), sigma=[3.0, 2.0, 1.0], epochs=5, random_state=0).fit(X)
    >>> ens.weights_.shape, ens.quantization_error_.shape
    ((3, 6, 6, 3), (3,))
    >>> best = ens.to_soms()[int(np.argmin(ens.quantization_error_))]
    >>> best.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **{
            k: SOM._parameter_constraints[k]
            for k in (*SHARED, "init", "verbose")
            if k != "mode"  # one of SOM's modes is not offered: "online"
        },
        "mode": [StrOptions({"batch", "minibatch"})],
        # per-map values are checked map by map with SOM's own constraints
        **dict.fromkeys(PER_MAP, "no_validation"),
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
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    PER_MAP = PER_MAP

    @classmethod
    def from_settings(cls, settings, **shared):
        """An ensemble with one map per dict of ``settings`` (e.g. a ``ParameterGrid``).

        Keys of the dicts must be per-map parameters (:data:`PER_MAP`); a key missing from a
        dict takes its value from ``shared`` or the default.  ``shared`` holds the rest.

        >>> from sklearn.model_selection import ParameterGrid
        >>> grid = ParameterGrid({"sigma": [1.0, 2.0], "sigma_decay": ["linear", "exponential"]})
        >>> SOMEnsemble.from_settings(grid, grid_shape=(5, 5), epochs=3).n_maps()
        4
        """
        return super().from_settings(settings, **shared)

    # ------------------------------------------------------------------ per-map parameters
    def _per_map_init(self) -> bool:
        """Whether ``init`` is one array of initial prototypes per map: ``(K, *grid_shape,
        n_features)``, one axis more than a shared one (4 axes on a 2-D grid, 5 on a 3-D)."""
        if isinstance(self.init, str):
            return False
        try:
            axes = len(parse_grid_shape(self.grid_shape)) + 2
        except ValueError:  # reported by _setup
            axes = 4
        return np.ndim(self.init) == axes

    def _extra_lengths(self) -> dict:
        return {"init": len(self.init)} if self._per_map_init() else {}

    def get_map_params(self) -> list[dict]:
        """The :class:`SOM` parameters of each map, a list of K dicts.

        ``SOM(**params).fit(X)`` trains the same map as the ensemble's map ``k``.
        """
        K = self.n_maps()
        shared = {name: getattr(self, name) for name in SHARED}
        out = []
        for k in range(K):
            p = dict(shared)
            for name in PER_MAP:
                value = getattr(self, name)
                if is_listlike(value):
                    value = value[k]
                    if isinstance(value, np.generic):
                        value = value.item()
                p[name] = value
            p["init"] = np.asarray(self.init)[k] if self._per_map_init() else self.init
            out.append(p)
        return out

    def _setup(self):
        self._validate_params()
        spec = self.grid_shape
        if is_listlike(spec) and any(isinstance(v, str) or np.ndim(v) > 0 for v in spec):
            raise ValueError(
                f"all maps of a SOMEnsemble share one grid shape: grid_shape must be one "
                f"(rows, cols) such as (10, 10) or (rows, cols, layers), got {spec!r}; fit one "
                "ensemble per grid shape"
            )
        grid = make_grid(spec, self.topology, self.toroidal)
        params = self.get_map_params()
        for k, p in enumerate(params):
            try:
                SOM(**p)._validate_params()
            except ValueError as exc:
                raise type(exc)(f"map {k}: {exc}") from None
        return params, grid, resolve_device(self.device), resolve_dtype(self.dtype)

    @staticmethod
    def _schedules(params, grid):
        """Per map: (sigma start, end, decay), (rate start, end, decay), as SOM._setup."""
        out = []
        for p in params:
            (s0, s1), (r0, r1) = schedule_ends(p, grid)
            out.append(((s0, s1, p["sigma_decay"]), (r0, r1, p["learning_rate_decay"])))
        return out

    def _tensor(self, X, reset: bool, dev, dt) -> torch.Tensor:
        """``X`` checked (shape, features, NaN, inf, magnitude) as a ``dt`` tensor on ``dev``."""
        X = validate_X(self, X, reset, "SOMEnsemble")
        hint = "clean the data (SOMEnsemble has no missing='ignore'; SOM has)"
        return checked_tensor(X, dt, dev, self.distance, hint=hint)

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Train all K maps on ``X`` (n_samples, n_features); ``y`` is ignored.

        Runs on the CPU threads that the work size and the machine's load call for
        (:func:`somlab._utils.choose_threads` and a :class:`~somlab._utils.thread_governor`,
        as :class:`SOM`)."""
        try:  # the size of one step; bad parameters are reported by _fit
            rows, cols = np.shape(X)
            if self.mode != "batch":
                rows = min(rows, int(self.batch_size))
            nodes = math.prod(parse_grid_shape(self.grid_shape))
            work = step_work(rows, nodes, cols, maps=len(self.get_map_params()))
        except Exception:
            work = float("inf")

        def pick():
            try:
                return choose_threads(work, resolve_device(self.device))
            except Exception:
                return None

        with thread_governor(pick):
            return self._fit(X)

    def _fit(self, X):
        params, grid, dev, dt = self._setup()
        K = len(params)
        Xt = self._tensor(X, True, dev, dt)
        n, m = Xt.shape
        N = grid.n_nodes
        check_fit_memory(self, grid, n, m, dev, dt, maps=K)
        shared_gen = not is_listlike(self.random_state)
        gens = (
            [seeded_generator(self.random_state)]
            if shared_gen
            else [seeded_generator(p["random_state"]) for p in params]
        )
        W = self._initial_weights(Xt, grid, params, gens, shared_gen)
        coords = grid.coordinates(torch.float64, dev)
        kern = _MapKernels(
            grid,
            coords,
            grid.periods(),
            # each map's neighbourhood as its SOM builds it (with its radius cut-off)
            [SOM(**p)._neighbourhood_function() for p in params],
            self.distance,
            missing=False,
            row_blocks=False,
            block_elements=_block_elements(dev),
            # the point every epoch centres its distances on (SOM's: the initial map's mean)
            refs=map_references(W),
        )
        ctx = {
            "grid": grid,
            "sched": self._schedules(params, grid),
            "gens": gens,
            "refs": kern.refs,
            "kern": kern,
        }
        hist = {
            k: [] for k in ("sigma", "learning_rate", "quantization_error", "topographic_error")
        }
        kk = 2 if N > 1 else 1
        bar = progress(
            range(self.epochs), bool(self.verbose), desc=f"SOMEnsemble x{K}", unit="epoch"
        )
        for epoch in bar:
            if self.mode == "batch":
                W, metrics = self._batch_epoch(Xt, W, epoch, ctx, hist)
                if epoch > 0:
                    hist["quantization_error"].append(metrics[0])
                    hist["topographic_error"].append(metrics[1])
            else:
                W = self._minibatch_epoch(Xt, W, epoch, ctx, hist)
                # the map after the epoch, centred on the fit's references (as SOM measures it)
                qe, te, _ = self._evaluate(Xt, W, kk, ctx, labels=False, refs="fit")
                hist["quantization_error"].append(qe)
                hist["topographic_error"].append(te)
        # the final map, centred on its own references (SOM's final pass)
        qe, te, labels = self._evaluate(Xt, W, kk, ctx)
        if self.mode == "batch":
            hist["quantization_error"].append(qe)
            hist["topographic_error"].append(te)
        ok = (torch.isfinite(W).flatten(1).all(1) & torch.isfinite(qe)).tolist()
        for k in (k for k, good in enumerate(ok) if not good):
            try:
                _check_training(W[k], float(qe[k]))
            except DataError as exc:
                raise DataError(f"map {k}: {exc}") from None
        self.n_maps_ = K
        self.weights_ = W.cpu().numpy().reshape(K, *grid.shape, m)
        self.labels_ = labels
        self.quantization_error_ = qe.cpu().numpy()
        self.topographic_error_ = te.cpu().numpy()
        self.history_ = {
            key: torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in vals]).cpu().numpy()
            if vals and torch.is_tensor(vals[0])
            else np.asarray(vals, dtype=np.float64).reshape(len(vals), K)
            for key, vals in hist.items()
        }
        self.n_iter_ = int(self.epochs)
        return self

    def _initial_weights(self, X, grid, params, gens, shared_gen):
        """K initial prototype sets ``[K, N, m]``, each exactly as ``SOM(**params_k)`` makes it
        (SOM's rules, from one :class:`~somlab.som._init.ArrayStatistics` of ``X``)."""
        K, N, m = len(params), grid.n_nodes, X.shape[1]
        stats = ArrayStatistics(X)
        if shared_gen and not self._per_map_init():
            W0 = initial_weights(params[0]["init"], stats, grid, gens[0])
            return W0.reshape(1, N, m).expand(K, N, m).clone()
        gens = gens if not shared_gen else gens * K
        return torch.stack(
            [initial_weights(p["init"], stats, grid, g) for p, g in zip(params, gens)]
        )

    def _batch_epoch(self, X, W, epoch, ctx, hist):
        """One exact batch step of every map (SOM's batch epoch with K maps); returns the new
        prototypes and the metrics ``(qe [K], te [K])`` of the map that entered the epoch."""
        total = max(self.epochs - 1, 1)
        sig = [decay(s[2], s[0], s[1], epoch, total) for s, _ in ctx["sched"]]
        metrics = _RunningMetrics(ctx["grid"])
        W = batch_epoch(ctx["kern"], [X], W, sig, metrics)
        hist["sigma"].append(sig)
        hist["learning_rate"].append([math.nan] * W.shape[0])
        return W, metrics.means()

    def _minibatch_epoch(self, X, W, epoch, ctx, hist):
        """One epoch of mean online updates over mini-batches for every map: SOM's mini-batch
        steps with K maps, each map's batches in its SOM's order."""
        n_steps = math.ceil(X.shape[0] / int(self.batch_size))
        total = self.epochs * n_steps
        sched = ctx["sched"]

        def schedule(t):  # each map's (sigma, rate) at step t, as its SOM's schedule
            sig = [decay(s[2], s[0], s[1], t, total) for s, _ in sched]
            lr = [decay(r[2], r[0], r[1], t, total) for _, r in sched]
            return sig, torch.tensor(lr, dtype=torch.float64, device=X.device)

        gens = ctx["gens"]
        rows = InMemory(X) if len(gens) == 1 else _PerMapOrders(X, gens)
        batches = rows.steps(int(self.batch_size), gens[0])
        W = step_epoch(ctx["kern"], batches, W, epoch * n_steps, schedule)
        sig, lr = schedule((epoch + 1) * n_steps - 1)
        hist["sigma"].append(sig)
        hist["learning_rate"].append(lr.tolist())
        return W

    def _evaluate(self, X, W, kk, ctx, labels=True, refs=None):
        """QE [K], TE [K] and (optionally) the winners ``[K, n]`` (numpy) of ``X`` in every map.

        ``refs="fit"``: centre on the fit's references (a history entry, as SOM measures it);
        None: on ``W``'s own (the final map, as ``predict`` does)."""
        metrics = _RunningMetrics(ctx["grid"])
        refs = ctx["refs"] if refs == "fit" else None
        idx, dist = map_winners(X, W, self.distance, kk, refs)
        metrics.add(dist, idx)
        qe, te = metrics.means()
        return qe, te, idx[..., 0].cpu().numpy() if labels else None

    # ------------------------------------------------------------------ inference
    def _prepare(self, X):
        check_is_fitted(self, "weights_")
        dev, dt = resolve_device(self.device), resolve_dtype(self.dtype)
        Xt = self._tensor(X, False, dev, dt)
        K = self.weights_.shape[0]
        W = as_tensor(self.weights_.reshape(K, -1, self.weights_.shape[-1]), dt, dev)
        grid = make_grid(self.weights_.shape[1:-1], self.topology, self.toroidal)
        return Xt, W, {"grid": grid}

    def predict(self, X) -> np.ndarray:
        """Best-matching unit of each sample in each map, shape (K, n_samples)."""
        Xt, W, ctx = self._prepare(X)
        return self._evaluate(Xt, W, 1, ctx)[2]

    def quantization_error(self, X) -> np.ndarray:
        """Mean distance of each sample to its best-matching unit, per map, shape (K,)."""
        Xt, W, ctx = self._prepare(X)
        return self._evaluate(Xt, W, 1, ctx, labels=False)[0].cpu().numpy()

    def topographic_error(self, X) -> np.ndarray:
        """Share of samples whose two best units are not grid neighbours, per map, shape (K,)."""
        Xt, W, ctx = self._prepare(X)
        kk = 2 if W.shape[1] > 1 else 1
        return self._evaluate(Xt, W, kk, ctx, labels=False)[1].cpu().numpy()

    def _restore_state(self, arrays, scalars):
        super()._restore_state(arrays, scalars)
        self.history_ = {k: np.asarray(v, dtype=np.float64) for k, v in self.history_.items()}

    def to_soms(self) -> list[SOM]:
        """The K trained maps as ordinary fitted :class:`SOM` estimators (copies)."""
        check_is_fitted(self, "weights_")
        soms = []
        batch = self.mode == "batch"
        for k, p in enumerate(self.get_map_params()):
            som = SOM(**p)
            som.weights_ = self.weights_[k].copy()
            som.labels_ = self.labels_[k].copy()
            som.quantization_error_ = float(self.quantization_error_[k])
            som.topographic_error_ = float(self.topographic_error_[k])
            h = self.history_
            som.history_ = {
                "sigma": h["sigma"][:, k].tolist(),
                "learning_rate": [None] * len(h["sigma"])
                if batch
                else h["learning_rate"][:, k].tolist(),
                "quantization_error": h["quantization_error"][:, k].tolist(),
                "topographic_error": h["topographic_error"][:, k].tolist(),
            }
            som.n_iter_ = self.n_iter_
            som.n_features_in_ = self.n_features_in_
            if hasattr(self, "feature_names_in_"):
                som.feature_names_in_ = self.feature_names_in_.copy()
            soms.append(som)
        return soms
