"""The classic Kohonen Self-Organizing Map as a scikit-learn estimator."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._errors import DataError
from .._utils import (
    as_tensor,
    check_finite_tensor,
    make_generator,
    progress,
    resolve_device,
    resolve_dtype,
)
from ..core.distances import METRICS, best_matching_units, pairwise_distances
from ..core.grids import TOPOLOGIES, Grid, parse_grid
from ..core.neighbourhoods import NEIGHBOURHOODS, get_neighbourhood
from ..core.schedules import SCHEDULES, decay
from ..core.updates import accumulate, sequential_steps
from ..metrics._som import topographic_error_from_bmus
from ..persistence import SaveLoadMixin

MODES = ("batch", "minibatch", "online")
INITS = ("pca", "random", "sample")


class SOM(SaveLoadMixin, TransformerMixin, BaseEstimator):
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
    neighbourhood : {"gaussian", "bubble", "mexican_hat", "triangle"}, default="gaussian"
    sigma : float or None, default=None
        Initial neighbourhood radius in grid units; None means ``max(rows, cols) / 2``.
    sigma_end : float or None, default=None
        Final radius (None: ``min(1, sigma)``); ignored by the "asymptotic" and "constant" decays.
    sigma_decay : {"linear", "asymptotic", "exponential", "inverse_time", "constant"}
    learning_rate : float, default=0.5
        Initial learning rate of the "online" and "minibatch" modes (the exact batch SOM has none).
    learning_rate_end : float or None, default=None
        Final learning rate (None: ``learning_rate / 100``).
    learning_rate_decay : str, default="asymptotic"
        One of the decay schedules above (MiniSom's default).
    epochs : int, default=10
        Passes over the data.
    mode : {"batch", "minibatch", "online"}, default="batch"
        "batch" is Kohonen's exact batch SOM: each epoch every prototype becomes the
        neighbourhood-weighted mean of the data, ``w_j = sum_i h(b_i, j) x_i / sum_i h(b_i, j)``.
        "minibatch" takes, per batch of B samples, the mean of the online updates,
        ``w_j += lr * sum_i h(b_i, j) (x_i - w_j) / B`` (with B = 1 it is the online rule).
        "online" presents samples one at a time in a fresh random order each epoch, as MiniSom.
    init : {"pca", "random", "sample"} or array of shape (rows, cols, n_features), default="pca"
        "pca" spans the two leading principal components (mean +- sqrt(eigenvalue));
        "random" draws uniformly in the data's bounding box; "sample" picks random samples;
        an array gives the initial prototypes.
    batch_size : int, default=256
        Samples per step in "minibatch" mode.
    missing : {"error", "ignore"}, default="error"
        "error" rejects NaN and inf; "ignore" leaves NaN features out of distances and updates.
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
        Mean distance of the training samples to their best-matching unit after training.
    topographic_error_ : float
        Share of training samples whose two best units are not adjacent on the grid.
    history_ : dict of lists
        Per epoch: ``sigma``, ``learning_rate``, ``quantization_error``, ``topographic_error``
        (measured on the training data after the epoch).
    labels_ : ndarray of shape (n_samples,)
        Best-matching unit of each training sample.
    n_iter_ : int
        Epochs run (partial_fit calls count one each).

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
        "sigma": [Interval(Real, 0, None, closed="neither"), None],
        "sigma_end": [Interval(Real, 0, None, closed="neither"), None],
        "sigma_decay": [StrOptions(set(SCHEDULES))],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_end": [Interval(Real, 0, None, closed="neither"), None],
        "learning_rate_decay": [StrOptions(set(SCHEDULES))],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions(set(MODES))],
        "init": [StrOptions(set(INITS)), "array-like"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
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
        self.missing = missing
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ set-up helpers
    @property
    def grid_(self) -> Grid:
        rows, cols = parse_grid(self.grid_shape)
        return Grid(rows, cols, self.topology, bool(self.toroidal))

    def _setup(self):
        self._validate_params()
        grid = self.grid_
        dev = resolve_device(self.device)
        dt = resolve_dtype(self.dtype)
        sigma0 = float(self.sigma) if self.sigma is not None else max(grid.shape) / 2.0
        sigma1 = float(self.sigma_end) if self.sigma_end is not None else min(1.0, sigma0)
        lr0 = float(self.learning_rate)
        lr1 = float(self.learning_rate_end) if self.learning_rate_end is not None else lr0 / 100
        return grid, dev, dt, (sigma0, sigma1), (lr0, lr1)

    def _check_X(self, X, reset: bool) -> np.ndarray:
        allow_nan = self.missing == "ignore"
        try:
            X = validate_data(
                self,
                X,
                reset=reset,
                dtype=[np.float64, np.float32],
                ensure_all_finite="allow-nan" if allow_nan else True,
            )
        except ValueError as exc:
            raise DataError(str(exc)) from None
        return X

    def _tensor(self, X, dev, dt):
        T = as_tensor(X, dt, dev)
        check_finite_tensor(T, allow_nan=self.missing == "ignore")
        return T

    # ------------------------------------------------------------------ initialisation
    def _initial_weights(self, X: torch.Tensor, grid: Grid, gen: torch.Generator):
        n, m = X.shape
        k = grid.n_nodes
        init = self.init
        if not isinstance(init, str):
            if np.size(init) != k * m:
                raise DataError(
                    f"init array must have {k} x {m} values (rows, cols, n_features), "
                    f"got shape {np.shape(init)}"
                )
            return as_tensor(init, X.dtype, X.device).reshape(k, m).clone()
        if init == "pca" and (n < 2 or m < 1):
            init = "sample"
        if init == "sample":
            if n >= k:
                idx = torch.randperm(n, generator=gen)[:k]
            else:
                idx = torch.randint(0, n, (k,), generator=gen)
            W = X[idx.to(X.device)].clone()
            if self.missing == "ignore":  # holes in the picked samples take the feature mean
                W = torch.where(torch.isnan(W), torch.nanmean(X, 0).expand_as(W), W)
            return W
        Xd = X.double()
        mean = torch.nanmean(Xd, 0)
        if init == "random":
            lo = torch.where(torch.isnan(Xd), torch.inf, Xd).amin(0)
            hi = torch.where(torch.isnan(Xd), -torch.inf, Xd).amax(0)
            u = torch.rand(k, m, generator=gen, dtype=torch.float64).to(X.device)
            return (lo + u * (hi - lo)).to(X.dtype)
        # PCA: covariance of the mean-filled data, leading eigenvectors with a fixed sign.
        Xc = torch.nan_to_num(Xd - mean, nan=0.0)
        cov = Xc.T @ Xc / max(n - 1, 1)
        evals, evecs = torch.linalg.eigh(cov)
        order = torch.argsort(evals, descending=True)
        evals, evecs = evals[order].clamp_min(0.0), evecs[:, order]
        signs = torch.sign(evecs.gather(0, evecs.abs().argmax(0, keepdim=True)))
        evecs = evecs * torch.where(signs == 0, 1.0, signs)
        coords = grid.coordinates(torch.float64, X.device)
        span = coords.amax(0) - coords.amin(0)
        unit = torch.where(span > 0, 2 * (coords - coords.amin(0)) / span.clamp_min(1e-12) - 1, 0)
        W = mean.expand(k, m).clone()
        for axis in range(min(2, m)):
            W += unit[:, axis : axis + 1] * math.sqrt(evals[axis]) * evecs[:, axis]
        return W.to(X.dtype)

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Train the map on ``X`` (n_samples, n_features); ``y`` is ignored."""
        grid, dev, dt, sig, lr = self._setup()
        Xn = self._check_X(X, reset=True)
        Xt = self._tensor(Xn, dev, dt)
        gen = make_generator(self.random_state)
        W = self._initial_weights(Xt, grid, gen)
        self.history_ = {
            k: [] for k in ("sigma", "learning_rate", "quantization_error", "topographic_error")
        }
        W = self._train(
            Xt,
            W,
            grid,
            gen,
            sig,
            lr,
            epochs=self.epochs,
            first_epoch=0,
            total_epochs=self.epochs,
            mode=self.mode,
        )
        self.n_iter_ = int(self.epochs)
        self._finish(Xt, W, grid)
        return self

    def partial_fit(self, X, y=None):
        """One epoch over ``X`` (online: per sample; batch and minibatch: mini-batch steps).

        The first call initialises the map from ``X``.  Schedules advance one step per call and
        reach their end values after ``epochs`` calls.
        """
        first = not hasattr(self, "weights_")
        grid, dev, dt, sig, lr = self._setup()
        Xn = self._check_X(X, reset=first)
        Xt = self._tensor(Xn, dev, dt)
        if first:
            self._gen = make_generator(self.random_state)
            W = self._initial_weights(Xt, grid, self._gen)
            self.history_ = {
                k: [] for k in ("sigma", "learning_rate", "quantization_error", "topographic_error")
            }
            self.n_iter_ = 0
        else:
            W = as_tensor(self.weights_.reshape(grid.n_nodes, -1), dt, dev).clone()
            if not hasattr(self, "_gen"):
                self._gen = make_generator(self.random_state)
        mode = "online" if self.mode == "online" else "minibatch"
        W = self._train(
            Xt,
            W,
            grid,
            self._gen,
            sig,
            lr,
            epochs=1,
            first_epoch=self.n_iter_,
            total_epochs=max(self.epochs, self.n_iter_ + 1),
            mode=mode,
        )
        self.n_iter_ += 1
        self._finish(Xt, W, grid)
        return self

    def _train(self, X, W, grid, gen, sig, lr, *, epochs, first_epoch, total_epochs, mode):
        dev = X.device
        coords = grid.coordinates(torch.float64, dev)
        periods = grid.periods()
        fn = get_neighbourhood(self.neighbourhood)
        missing = self.missing == "ignore"
        n = X.shape[0]
        bar = progress(
            range(first_epoch, first_epoch + epochs),
            bool(self.verbose),
            desc=f"SOM {mode}",
            unit="epoch",
        )
        for epoch in bar:
            if mode == "batch":
                p, total = epoch, max(total_epochs - 1, 1)
                sigma = decay(self.sigma_decay, sig[0], sig[1], p, total)
                bmu, dist = best_matching_units(
                    X, W, self.distance, k=2 if grid.n_nodes > 1 else 1, missing=missing
                )
                if epoch > first_epoch:  # metrics of the map left by the previous epoch
                    self._record_metrics(dist, bmu, grid)
                num, den = accumulate(coords, bmu[:, 0], X, fn, sigma, periods)
                ok = den > 0
                W = torch.where(ok, num / torch.where(ok, den, 1.0), W)
                self.history_["sigma"].append(sigma)
                self.history_["learning_rate"].append(None)  # the exact batch SOM has none
                continue
            order = torch.randperm(n, generator=gen).to(dev)
            step = 1 if mode == "online" else int(self.batch_size)
            n_steps = math.ceil(n / step)
            total = total_epochs * n_steps
            ts = range(epoch * n_steps, (epoch + 1) * n_steps)
            sigmas = [decay(self.sigma_decay, sig[0], sig[1], t, total) for t in ts]
            rates = [decay(self.learning_rate_decay, lr[0], lr[1], t, total) for t in ts]
            sigma, lr_t = sigmas[-1], rates[-1]
            if mode == "online" and not missing and self.distance == "euclidean":
                W = sequential_steps(X, order.tolist(), W, coords, fn, sigmas, rates, periods)
            else:
                for b in range(n_steps):
                    xb = X[order[b * step : (b + 1) * step]]
                    bmu, _ = best_matching_units(xb, W, self.distance, missing=missing)
                    num, den = accumulate(coords, bmu[:, 0], xb, fn, sigmas[b], periods)
                    # mean of the per-sample online updates: lr * (num - den * w) / B
                    W = W + (rates[b] / xb.shape[0]) * (num - den * W)
            bmu, dist = best_matching_units(
                X, W, self.distance, k=2 if grid.n_nodes > 1 else 1, missing=missing
            )
            self.history_["sigma"].append(sigma)
            self.history_["learning_rate"].append(lr_t)
            self._record_metrics(dist, bmu, grid)
        return W

    def _record_metrics(self, dist, bmu, grid):
        self.history_["quantization_error"].append(float(dist[:, 0].mean()))
        self.history_["topographic_error"].append(topographic_error_from_bmus(bmu, grid))

    def _finish(self, X, W, grid):
        bmu, dist = best_matching_units(
            X, W, self.distance, k=2 if grid.n_nodes > 1 else 1, missing=self.missing == "ignore"
        )
        if self.mode == "batch" and len(self.history_["quantization_error"]) < len(
            self.history_["sigma"]
        ):
            self._record_metrics(dist, bmu, grid)
        self.weights_ = W.detach().cpu().numpy().reshape(*grid.shape, X.shape[1])
        self.labels_ = bmu[:, 0].cpu().numpy()
        self.quantization_error_ = float(dist[:, 0].mean())
        self.topographic_error_ = topographic_error_from_bmus(bmu, grid)

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
        """Negative quantization error of ``X`` (higher is better)."""
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
        """``(row, col)`` grid index of each sample's best-matching unit, shape (n_samples, 2)."""
        cols = self.weights_.shape[1]
        b = self.predict(X)
        return np.stack([b // cols, b % cols], axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "ignore"
        tags.transformer_tags.preserves_dtype = []
        return tags
