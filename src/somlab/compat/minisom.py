"""A drop-in replacement for MiniSom 2.3.x, backed by somlab's kernels.

``from somlab.compat import MiniSom`` runs code written for ``minisom.MiniSom`` (2.3.x) unchanged
and gives the same numbers for the same ``random_seed``:

* state is kept exactly as MiniSom keeps it: float64 numpy arrays ``_weights`` (``x, y,
  input_len``), ``_activation_map``, ``_xx``/``_yy`` (MiniSom's euclidean coordinates, hexagonal
  rows shifted as MiniSom does), and a ``numpy.random.RandomState`` consumed in the same order
  (initial weights, :meth:`MiniSom.random_weights_init`, shuffles in :meth:`MiniSom.train`);
* sequential training (``train``, ``train_random``, ``train_batch``) runs MiniSom's per-step
  formulas in float64 numpy, in MiniSom's order of operations, with the work that does not change
  between steps done once (:meth:`MiniSom._numpy_steps`): the weights are MiniSom's bit for bit
  and the steps are faster than MiniSom's own (``benchmarks/minisom_compat.py``); the decays are
  MiniSom's literal formulas;
* the neighbourhood methods (``_gaussian`` ...) come from :mod:`somlab.core.neighbourhoods`
  (gaussian and mexican hat on the euclidean coordinates, bubble and triangle on integer indices,
  as MiniSom), distances of many samples from :func:`somlab.core.distances.pairwise_distances`
  (the direct, tie-stable form for euclidean), and ``train_batch_offline``'s sums from
  :func:`somlab.core.updates.accumulate`;
* methods whose result does not depend on the order of the samples (quantization, win_map,
  activation_response, labels_map, distortion_measure, batch-offline accumulation) find the best
  matching units of all samples at once instead of calling :meth:`MiniSom.winner` in a loop.

Outside sequential training, agreement with MiniSom 2.3.6 is to the last few bits, not bit for
bit: ``torch.exp`` and ``numpy.exp`` differ by one ulp on some inputs, the gaussian kernel
evaluates ``exp(-(dx^2 + dy^2) / d)`` where MiniSom multiplies two exponentials, and reductions
sum in a different order (~1e-13 relative).  A map without nodes or features (``MiniSom(0, 5,
4)``) is refused with a ValueError where MiniSom fails later inside training.

Deliberate replications of MiniSom 2.3.6 quirks (so that results stay identical):

* ``activation_distance='chebyshev'`` is MiniSom's ``max(x - w)`` *without* the absolute value
  (the kernel's Chebyshev distance is ``max |x - w|``); it is implemented here as a small adapter;
* ``quantization``, ``quantization_error`` and ``topographic_error`` always use the euclidean
  distance, whatever ``activation_distance`` is;
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from datetime import timedelta
from time import time
from warnings import warn

import numpy as np
import torch

from ..core.distances import best_matching_units, pairwise_distances
from ..core.grids import grid_distance
from ..core.neighbourhoods import NEIGHBOURHOODS
from ..core.updates import accumulate, grouped_sum

__all__ = [
    "MiniSom",
    "asymptotic_decay",
    "bubble",
    "fast_norm",
    "gaussian",
    "inverse_decay_to_one",
    "inverse_decay_to_zero",
    "linear_decay_to_one",
    "linear_decay_to_zero",
    "mexican_hat",
    "triangle",
]

_CHUNK_ELEMENTS = 1 << 22  # bound on [chunk, n_nodes] (or [chunk, n_nodes, m]) temporaries
_DISP_TABLE_NODES2 = 1 << 20  # cache all centre displacements up to 1024 nodes (16 MiB)
_STEP_TABLE_NODES2 = 1 << 20  # train() keeps squared centre offsets for maps of <= 1024 nodes


# ------------------------------------------------------------------------ helpers
def _to_t(a) -> torch.Tensor:
    """float64 torch view of a numpy array (a copy only when needed)."""
    if not (
        type(a) is np.ndarray
        and a.dtype == np.float64
        and a.flags.c_contiguous
        and a.flags.writeable
    ):
        a = np.array(a, dtype=np.float64, order="C")
    return torch.from_numpy(a)


# ------------------------------------------------------------------------ decays
# MiniSom's formulas in MiniSom's order of operations, so that the values are identical (its
# own tests compare them with ==); somlab.core.schedules writes some of them differently.
def asymptotic_decay(dynamic_parameter, t, max_iter):
    """``value / (1 + t / (max_iter / 2))``: decays asymptotically to a third of its start."""
    return dynamic_parameter / (1 + t / (max_iter / 2))


def inverse_decay_to_zero(learning_rate, t, max_iter):
    """``lr * C / (C + t)`` with ``C = max_iter / 100``: inverse-time decay towards zero."""
    C = max_iter / 100.0
    return learning_rate * C / (C + t)


def linear_decay_to_zero(learning_rate, t, max_iter):
    """``lr * (1 - t / max_iter)``: linear decay to zero."""
    return learning_rate * (1 - t / max_iter)


def inverse_decay_to_one(sigma, t, max_iter):
    """``sigma / (1 + t (sigma - 1) / max_iter)``: inverse-time decay towards one."""
    C = (sigma - 1) / max_iter
    return sigma / (1 + (t * C))


def linear_decay_to_one(sigma, t, max_iter):
    """``sigma + t (1 - sigma) / max_iter``: linear decay to one."""
    return sigma + (t * (1 - sigma) / max_iter)


def fast_norm(x):
    """Returns norm-2 of a 1-D numpy array."""
    return np.sqrt(np.dot(x, x.T))


# ------------------------------------------------------------------------ neighbourhoods
# Module-level functions usable as methods (``types.MethodType(gaussian, som)``, or as class
# attributes): ``(som, c, sigma) -> (x, y)`` array, as MiniSom's ``_gaussian(c, sigma)``.
def gaussian(som, c, sigma):
    """Gaussian centred in ``c``: ``exp(-|r - r_c|^2 / (2 sigma^2))`` on euclidean coordinates."""
    return som._neighbourhood("gaussian", c, sigma)


def mexican_hat(som, c, sigma):
    """Mexican hat centred in ``c`` on euclidean coordinates."""
    return som._neighbourhood("mexican_hat", c, sigma)


def bubble(som, c, sigma):
    """Constant function centred in ``c`` with spread ``sigma`` (integer indices, per axis)."""
    return som._neighbourhood("bubble", c, sigma)


def triangle(som, c, sigma):
    """Triangular function centred in ``c`` with spread ``sigma`` (integer indices, per axis)."""
    return som._neighbourhood("triangle", c, sigma)


_NEIGHBOURHOOD_NAMES = {gaussian: "gaussian", mexican_hat: "mexican_hat", bubble: "bubble"}
_NEIGHBOURHOOD_NAMES[triangle] = "triangle"  # the class's wrappers are added below it
# gaussian and mexican hat use MiniSom's euclidean coordinates, bubble and triangle the indices
_USES_EUCLIDEAN = {"gaussian": True, "mexican_hat": True, "bubble": False, "triangle": False}


# MiniSom's distance formulas for one sample ``x [m]`` against flat weights ``w [k, m]`` with
# ``d = x - w`` already computed: the same reductions over the last axis as on ``[x, y, m]``.
def _step_euclidean(x, w, d):
    return np.sqrt(np.add.reduce(d * d, axis=-1))


def _step_manhattan(x, w, d):
    return np.add.reduce(np.abs(d), axis=-1)


def _step_chebyshev(x, w, d):
    return np.max(d, axis=-1)


def _step_cosine(x, w, d):
    # np.linalg.norm inlined as numpy computes it: sqrt of the sum of squares over an axis,
    # sqrt(x . x) for a whole 1-D array (in float64 for integers)
    num = (w * x).sum(axis=-1)
    xf = x if x.dtype.kind == "f" else x.astype(float)
    denum = np.multiply(np.sqrt(np.add.reduce(w * w, axis=-1)), np.sqrt(xf.dot(xf)))
    return 1 - num / (denum + 1e-8)


_STEP_DISTANCES = {
    "euclidean": _step_euclidean,
    "manhattan": _step_manhattan,
    "chebyshev": _step_chebyshev,
    "cosine": _step_cosine,
}


# ------------------------------------------------------------------------ distances
def _signed_chebyshev(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """MiniSom 2.3.6's 'chebyshev': ``max_k (x_k - w_k)`` (no absolute value), ``[n, k]``.

    The kernel's Chebyshev distance takes ``|x - w|``; this adapter reproduces MiniSom.
    """
    n, k, m = X.shape[0], W.shape[0], X.shape[1]
    out = torch.empty(n, k, dtype=X.dtype)
    step = max(1, _CHUNK_ELEMENTS // max(1, k * m))
    for s in range(0, n, step):
        out[s : s + step] = (X[s : s + step].unsqueeze(1) - W.unsqueeze(0)).amax(-1)
    return out


def _pairwise(X: torch.Tensor, W: torch.Tensor, metric: str) -> torch.Tensor:
    if metric == "chebyshev":
        return _signed_chebyshev(X, W)
    return pairwise_distances(X, W, metric, exact=metric == "euclidean")


def _literal_distance(metric, x, w):
    """MiniSom's numpy formulas, for argument shapes the kernels do not take."""
    diff = np.subtract(x, w)
    if metric == "euclidean":
        return np.linalg.norm(diff, axis=-1)
    if metric == "manhattan":
        return np.linalg.norm(diff, ord=1, axis=-1)
    if metric == "chebyshev":
        return np.max(diff, axis=-1)
    num = (w * x).sum(axis=2)
    denum = np.multiply(np.linalg.norm(w, axis=2), np.linalg.norm(x))
    return 1 - num / (denum + 1e-8)


def _distance(metric, x, w):
    """Distance from one sample ``x`` to every prototype in ``w`` (reduced over the last axis)."""
    if (
        type(x) is np.ndarray
        and type(w) is np.ndarray
        and x.ndim == 1
        and w.ndim == 3
        and x.dtype == np.float64
        and w.dtype == np.float64
        and x.shape[0] == w.shape[2]
    ):  # the common case, a sample and the weights: skip the checks below
        m = x.shape[0]
        d = _pairwise(_to_t(x.reshape(1, m)), _to_t(w.reshape(-1, m)), metric)
        return d.numpy().reshape(w.shape[:2])
    w = np.asarray(w)
    xa = np.asarray(x)
    if w.ndim < 1 or w.dtype == object or xa.dtype == object:
        return _literal_distance(metric, x, w)
    m = w.shape[-1]
    if xa.size not in (1, m) or (metric == "cosine" and (w.ndim != 3 or xa.size != m)):
        return _literal_distance(metric, x, w)  # (a scalar's norm is not its broadcast's)
    if xa.size == m:
        xt = _to_t(xa.reshape(1, m))
    else:  # a scalar broadcasts over the features, as in MiniSom
        xt = torch.full((1, m), float(xa.reshape(())), dtype=torch.float64)
    d = _pairwise(xt, _to_t(w.reshape(-1, m)), metric)
    return d.numpy().reshape(w.shape[:-1])


# ------------------------------------------------------------------------ iteration order
def _build_iteration_indexes(
    data_len, num_iterations, verbose=False, random_generator=None, use_epochs=False
):
    """Sample index of every training step, drawing on ``random_generator`` as MiniSom does."""
    if use_epochs:
        iterations_per_epoch = np.arange(data_len)
        if random_generator:
            random_generator.shuffle(iterations_per_epoch)
        iterations = np.tile(iterations_per_epoch, num_iterations)
    else:
        iterations = np.arange(num_iterations) % data_len
        if random_generator:
            random_generator.shuffle(iterations)
    if verbose:
        return _wrap_index__in_verbose(iterations)
    return iterations


def _wrap_index__in_verbose(iterations):
    """Yields the values in iterations printing the status on the stdout (as MiniSom)."""
    m = len(iterations)
    digits = len(str(m))
    progress = "\r [ {s:{d}} / {m} ] {s:3.0f}% - ? it/s"
    progress = progress.format(m=m, d=digits, s=0)
    sys.stdout.write(progress)
    beginning = time()
    sys.stdout.write(progress)
    for i, it in enumerate(iterations):
        yield it
        sec_left = ((m - i + 1) * (time() - beginning)) / (i + 1)
        time_left = str(timedelta(seconds=sec_left))[:7]
        progress = "\r [ {i:{d}} / {m} ]".format(i=i + 1, d=digits, m=m)
        progress += f" {100 * (i + 1) / m:3.0f}%"
        progress += f" - {time_left} left "
        sys.stdout.write(progress)


# ------------------------------------------------------------------------ the class
class MiniSom:
    """Self-Organizing Map with MiniSom 2.3.x's API and numbers, on somlab's kernels.

    Parameters are MiniSom's: ``x, y`` (map shape), ``input_len``, ``sigma``, ``learning_rate``,
    ``decay_function`` ('inverse_decay_to_zero', 'linear_decay_to_zero', 'asymptotic_decay' or
    a callable ``(learning_rate, t, max_iter)``), ``neighborhood_function`` ('gaussian',
    'mexican_hat', 'bubble', 'triangle'), ``topology`` ('rectangular', 'hexagonal'),
    ``activation_distance`` ('euclidean', 'cosine', 'manhattan', 'chebyshev' or a callable
    ``(x, w)``), ``random_seed`` and ``sigma_decay_function`` ('inverse_decay_to_one',
    'linear_decay_to_one', 'asymptotic_decay').
    """

    Y_HEX_CONV_FACTOR = (3.0 / 2.0) / np.sqrt(3)

    def __init__(
        self,
        x,
        y,
        input_len,
        sigma=1,
        learning_rate=0.5,
        decay_function="asymptotic_decay",
        neighborhood_function="gaussian",
        topology="rectangular",
        activation_distance="euclidean",
        random_seed=None,
        sigma_decay_function="asymptotic_decay",
    ):
        # A map without nodes or features: MiniSom fails later, deep in training
        # (ZeroDivisionError, argmin of an empty sequence); refuse it here, clearly.
        for name, v in (("x", x), ("y", y), ("input_len", input_len)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(
                    f"MiniSom needs a positive integer {name} (map rows x, columns y, "
                    f"features input_len), got {name}={v!r}"
                )
        # Same checks, warnings and random draws as MiniSom 2.3.6, in the same order.
        if sigma > np.sqrt(x * x + y * y):
            warn("Warning: sigma might be too high for the dimension of the map.", stacklevel=2)

        self._random_generator = np.random.RandomState(random_seed)

        self._learning_rate = learning_rate
        self._sigma = sigma
        self._input_len = input_len
        # random initialization
        self._weights = self._random_generator.rand(x, y, input_len) * 2 - 1
        self._weights /= np.linalg.norm(self._weights, axis=-1, keepdims=True)

        self._activation_map = np.zeros((x, y))
        self._neigx = np.arange(x)
        self._neigy = np.arange(y)  # used to evaluate the neighborhood function

        if topology not in ["hexagonal", "rectangular"]:
            msg = "%s not supported only hexagonal and rectangular available"
            raise ValueError(msg % topology)
        self.topology = topology
        self._xx, self._yy = np.meshgrid(self._neigx, self._neigy)
        self._xx = self._xx.astype(float)
        self._yy = self._yy.astype(float)
        if topology == "hexagonal":
            self._xx[::-2] -= 0.5
            self._yy *= self.Y_HEX_CONV_FACTOR
            if neighborhood_function in ["triangle"]:
                warn(
                    "triangle neighborhood function does not take in account hexagonal topology",
                    stacklevel=2,
                )

        lr_decay_functions = {
            "inverse_decay_to_zero": self._inverse_decay_to_zero,
            "linear_decay_to_zero": self._linear_decay_to_zero,
            "asymptotic_decay": self._asymptotic_decay,
        }

        if isinstance(decay_function, str):
            if decay_function not in lr_decay_functions:
                msg = "%s not supported. Functions available: %s"
                raise ValueError(msg % (decay_function, ", ".join(lr_decay_functions.keys())))

            self._learning_rate_decay_function = lr_decay_functions[decay_function]
        elif callable(decay_function):
            self._learning_rate_decay_function = decay_function

        sig_decay_functions = {
            "inverse_decay_to_one": self._inverse_decay_to_one,
            "linear_decay_to_one": self._linear_decay_to_one,
            "asymptotic_decay": self._asymptotic_decay,
        }

        if sigma_decay_function not in sig_decay_functions:
            msg = "%s not supported. Functions available: %s"
            raise ValueError(msg % (sigma_decay_function, ", ".join(sig_decay_functions.keys())))

        self._sigma_decay_function = sig_decay_functions[sigma_decay_function]

        neig_functions = {
            "gaussian": self._gaussian,
            "mexican_hat": self._mexican_hat,
            "bubble": self._bubble,
            "triangle": self._triangle,
        }

        if neighborhood_function not in neig_functions:
            msg = "%s not supported. Functions available: %s"
            raise ValueError(msg % (neighborhood_function, ", ".join(neig_functions.keys())))

        if neighborhood_function in ["triangle", "bubble"] and (
            divmod(sigma, 1)[1] != 0 or sigma < 1
        ):
            warn(
                # (sic: MiniSom's message has no space before "are")
                "sigma should be an integer >=1 when triangle or bubbleare used as neighborhood "
                "function",
                stacklevel=2,
            )

        self.neighborhood = neig_functions[neighborhood_function]

        distance_functions = {
            "euclidean": self._euclidean_distance,
            "cosine": self._cosine_distance,
            "manhattan": self._manhattan_distance,
            "chebyshev": self._chebyshev_distance,
        }

        if isinstance(activation_distance, str):
            if activation_distance not in distance_functions:
                msg = "%s not supported. Distances available: %s"
                raise ValueError(msg % (activation_distance, ", ".join(distance_functions.keys())))

            self._activation_distance = distance_functions[activation_distance]
        elif callable(activation_distance):
            self._activation_distance = activation_distance

    # -------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_coords_cache", None)
        return state

    # -------------------------------------------------------------- coordinates
    def get_weights(self):
        """Returns the weights of the neural network."""
        return self._weights

    def get_euclidean_coordinates(self):
        """Positions of the neurons on the euclidean plane, as two ``(x, y)`` meshgrids."""
        return self._xx.T, self._yy.T

    def convert_map_to_euclidean(self, xy):
        """Converts map coordinates into euclidean coordinates of the chosen topology."""
        return self._xx.T[xy], self._yy.T[xy]

    def _get_euclidean_coordinates_from_index(self, index):
        """Euclidean coordinates of a neuron from its flat index."""
        if index < 0:
            return (-1, -1)
        y = self._weights.shape[1]
        coords = self.convert_map_to_euclidean((int(index / y), index % y))
        return coords

    def _coords(self, euclidean: bool, table: bool = False):
        """Node positions as a float64 ``[x, y, 2]`` tensor (cached per coordinate arrays).

        ``euclidean``: ``(_xx.T, _yy.T)`` (MiniSom's hexagonal shift included); otherwise the
        integer indices ``(i, j)``, which MiniSom's bubble and triangle use.  With ``table``,
        the displacements from every centre, ``[x, y, x, y, 2]``, or None for large maps.
        """
        key = (euclidean, table, id(self._xx), id(self._yy), id(self._neigx), id(self._neigy))
        cache = self.__dict__.setdefault("_coords_cache", {})
        if key not in cache:
            if len(cache) > 8:
                cache.clear()
            if table:
                c = self._coords(euclidean)
                n = c.shape[0] * c.shape[1]
                cache[key] = None if n * n > _DISP_TABLE_NODES2 else c - c[:, :, None, None]
            elif euclidean:
                cache[key] = _to_t(np.stack([self._xx.T, self._yy.T], axis=-1))
            else:
                ii, jj = np.meshgrid(self._neigx, self._neigy, indexing="ij")
                cache[key] = _to_t(np.stack([ii, jj], axis=-1))
        return cache[key]

    # -------------------------------------------------------------- decays (MiniSom methods)
    def _inverse_decay_to_zero(self, learning_rate, t, max_iter):
        """Decay of the learning rate that asymptotically approaches zero."""
        return inverse_decay_to_zero(learning_rate, t, max_iter)

    def _linear_decay_to_zero(self, learning_rate, t, max_iter):
        """Decay of the learning rate that linearly decreases to zero."""
        return linear_decay_to_zero(learning_rate, t, max_iter)

    def _inverse_decay_to_one(self, sigma, t, max_iter):
        """Decay of sigma that asymptotically approaches one."""
        return inverse_decay_to_one(sigma, t, max_iter)

    def _linear_decay_to_one(self, sigma, t, max_iter):
        """Decay of sigma that linearly decreases to one."""
        return linear_decay_to_one(sigma, t, max_iter)

    def _asymptotic_decay(self, dynamic_parameter, t, max_iter):
        """Decay to a third of the start value, asymptotically."""
        return asymptotic_decay(dynamic_parameter, t, max_iter)

    # -------------------------------------------------------------- neighbourhoods
    # thin wrappers rather than ``_gaussian = gaussian`` so that bound methods pickle by name
    def _gaussian(self, c, sigma):
        """Returns a Gaussian centered in c."""
        return gaussian(self, c, sigma)

    def _mexican_hat(self, c, sigma):
        """Mexican hat centered in c."""
        return mexican_hat(self, c, sigma)

    def _bubble(self, c, sigma):
        """Constant function centered in c with spread sigma."""
        return bubble(self, c, sigma)

    def _triangle(self, c, sigma):
        """Triangular function centered in c with spread sigma."""
        return triangle(self, c, sigma)

    def _neighbourhood(self, name, c, sigma):
        """Kernel ``name`` centred on node ``c`` at spread ``sigma``, an ``(x, y)`` array."""
        euclidean = _USES_EUCLIDEAN[name]
        i, j = int(c[0]), int(c[1])
        table = self._coords(euclidean, table=True)
        if table is None:
            coords = self._coords(euclidean)
            disp = coords - coords[i, j]
        else:
            disp = table[i, j]
        return NEIGHBOURHOODS[name](disp, float(sigma)).numpy()

    def _overridden(self, *names):
        """Whether a subclass or the instance replaces any of these methods.

        The vectorised paths stand in for MiniSom's per-sample calls of these methods; when a
        user replaces one, MiniSom's own loop runs so that the replacement is honoured.
        """
        cls = type(self)
        return any(n in self.__dict__ or getattr(cls, n) is not getattr(MiniSom, n) for n in names)

    def _neighbourhood_name(self):
        """Kernel name of ``self.neighborhood``, or None for a user-supplied function."""
        f = self.neighborhood
        if getattr(f, "__self__", None) is not self:
            return None
        return _NEIGHBOURHOOD_NAMES.get(getattr(f, "__func__", None))

    # -------------------------------------------------------------- distances
    def _cosine_distance(self, x, w):
        return _distance("cosine", x, w)

    def _euclidean_distance(self, x, w):
        return _distance("euclidean", x, w)

    def _manhattan_distance(self, x, w):
        return _distance("manhattan", x, w)

    def _chebyshev_distance(self, x, w):
        return _distance("chebyshev", x, w)

    def _metric_name(self):
        """Kernel metric of ``self._activation_distance``, or None for a callable."""
        f = self._activation_distance
        if getattr(f, "__self__", None) is not self:
            return None
        return _METRIC_NAMES.get(getattr(f, "__func__", None))

    def _activate(self, x):
        """Updates matrix activation_map: element i,j is the response of neuron i,j to x."""
        self._activation_map = self._activation_distance(x, self._weights)

    def activate(self, x):
        """Returns the activation map to x."""
        self._activate(x)
        return self._activation_map

    def _distance_from_weights(self, data):
        """``d[i, j]``: euclidean distance between ``data[i]`` and the j-th weight."""
        X = _to_t(np.asarray(data, dtype=np.float64))
        W = _to_t(self._weights.reshape(-1, self._weights.shape[2]))
        return pairwise_distances(X, W, "euclidean", exact=True).numpy()

    def _bmus(self, data):
        """Flat index of the best matching unit of every sample (activation distance).

        Vectorised for the built-in distances; a callable distance is evaluated per sample as
        MiniSom does.  Leaves ``_activation_map`` as MiniSom's loop would: the last sample's.
        """
        n = len(data)
        metric = self._metric_name()
        shape = self._weights.shape[:2]
        if metric is None or n == 0 or self._overridden("winner", "_activate"):
            out = np.empty(n, dtype=np.intp)
            for i, x in enumerate(data):
                out[i] = np.ravel_multi_index(self.winner(x), shape)
            return out
        X = _to_t(np.asarray(data, dtype=np.float64).reshape(n, -1))
        W = _to_t(self._weights.reshape(-1, self._weights.shape[-1]))
        if metric == "chebyshev":
            step = max(1, _CHUNK_ELEMENTS // max(1, W.shape[0] * W.shape[1]))
            idx = torch.cat(
                [_signed_chebyshev(X[s : s + step], W).argmin(1) for s in range(0, n, step)]
            )
        else:
            idx = best_matching_units(X, W, metric, exact=metric == "euclidean")[0][:, 0]
        self._activate(data[n - 1])
        return idx.numpy().astype(np.intp)

    def _winner_tuples(self, data):
        """Winners of all samples as MiniSom's ``(np.intp, np.intp)`` tuples."""
        rows, cols = np.unravel_index(self._bmus(data), self._weights.shape[:2])
        return list(zip(rows, cols))

    # -------------------------------------------------------------- checks
    def _check_iteration_number(self, num_iteration):
        if num_iteration < 1:
            raise ValueError("num_iteration must be > 1")

    def _check_input_len(self, data):
        """Checks that the data in input is of the correct shape."""
        data_len = len(data[0])
        if self._input_len != data_len:
            msg = f"Received {data_len:d} features, expected {self._input_len:d}."
            raise ValueError(msg)

    def _check_fixed_points(self, fixed_points, data):
        for k in fixed_points.keys():
            if not isinstance(k, int):
                raise TypeError("fixed points indexes must be integers.")
            if k >= len(data) or k < 0:
                raise ValueError(
                    "an index of a fixed point cannot be grater than len(data) or less than 0."
                )
            if (
                fixed_points[k][0] >= self._weights.shape[0]
                or fixed_points[k][1] >= self._weights.shape[1]
            ):
                raise ValueError("coordinates for fixed point are out of boundaries.")
            if fixed_points[k][0] < 0 or fixed_points[k][1] < 0:
                raise ValueError("coordinates cannot be negative.")

    # -------------------------------------------------------------- winner and update
    def winner(self, x):
        """Computes the coordinates of the winning neuron for the sample x."""
        self._activate(x)
        return np.unravel_index(self._activation_map.argmin(), self._activation_map.shape)

    def update(self, x, win, t, max_iteration):
        """Updates the weights of the neurons towards ``x`` around the winner ``win``.

        ``t`` is the decay step and ``max_iteration`` the number of steps (epochs if
        ``use_epochs``) the decays run over.
        """
        eta = self._learning_rate_decay_function(self._learning_rate, t, max_iteration)
        sig = self._sigma_decay_function(self._sigma, t, max_iteration)
        # improves the performances
        g = self.neighborhood(win, sig) * eta
        # w_new = eta * neighborhood_function * (x-w)
        self._weights += np.einsum("ij, ijk->ijk", g, x - self._weights)

    # -------------------------------------------------------------- initialisation
    def random_weights_init(self, data):
        """Initializes the weights of the SOM picking random samples from data."""
        self._check_input_len(data)
        it = np.nditer(self._activation_map, flags=["multi_index"])
        while not it.finished:
            rand_i = self._random_generator.randint(len(data))
            self._weights[it.multi_index] = data[rand_i]
            it.iternext()

    def pca_weights_init(self, data):
        """Initializes the weights to span the first two principal components."""
        if self._input_len == 1:
            msg = "The data needs at least 2 features for pca initialization"
            raise ValueError(msg)
        self._check_input_len(data)
        if len(self._neigx) == 1 or len(self._neigy) == 1:
            msg = "PCA initialization inappropriate:One of the dimensions of the map is 1."
            warn(msg, stacklevel=2)
        cov_mat = np.cov(data, rowvar=False)
        eigvals, eigvecs = np.linalg.eigh(cov_mat)
        order = np.argsort(eigvals)[::-1]
        pc1 = eigvecs[:, order[0]]
        pc2 = eigvecs[:, order[1]]
        data_mean = np.mean(data, axis=0)
        c1 = np.linspace(-1, 1, len(self._neigx))[:, None, None]
        c2 = np.linspace(-1, 1, len(self._neigy))[None, :, None]
        # same elementwise operations, in the same order, as MiniSom's double loop
        self._weights[: len(self._neigx), : len(self._neigy)] = data_mean + c1 * pc1 + c2 * pc2

    # -------------------------------------------------------------- training
    def train(
        self,
        data,
        num_iteration,
        random_order=False,
        verbose=False,
        use_epochs=False,
        fixed_points=None,
    ):
        """Trains the SOM sample by sample (MiniSom's online algorithm).

        ``num_iteration`` updates (``len(data) * num_iteration`` if ``use_epochs``, with the
        decays constant within an epoch); ``random_order`` shuffles the sample order with the
        map's random generator; ``fixed_points`` maps a sample index to the node ``(i, j)`` used
        as its winner.
        """
        self._check_iteration_number(num_iteration)
        self._check_input_len(data)
        random_generator = None
        if random_order:
            random_generator = self._random_generator
        iterations = _build_iteration_indexes(
            len(data), num_iteration, verbose, random_generator, use_epochs
        )
        data_len = len(data)
        if fixed_points:
            self._check_fixed_points(fixed_points, data)
        else:
            fixed_points = {}

        if use_epochs:

            def get_decay_rate(iteration_index):
                return int(iteration_index / data_len)
        else:

            def get_decay_rate(iteration_index):
                return int(iteration_index)

        if not self._numpy_steps(data, iterations, get_decay_rate, num_iteration, fixed_points):
            for t, iteration in enumerate(iterations):  # MiniSom's loop
                self.update(
                    data[iteration],
                    fixed_points.get(iteration, self.winner(data[iteration])),
                    get_decay_rate(t),
                    num_iteration,
                )
        if verbose:
            print("\n quantization error:", self.quantization_error(data))

    def _numpy_steps(self, data, iterations, get_decay_rate, num_iteration, fixed_points):
        """MiniSom's training steps in plain float64 numpy, with MiniSom's formulas in
        MiniSom's order; returns False (nothing done) when :meth:`train` must run MiniSom's
        own loop instead (a subclass replacing ``update``, ``winner`` or ``_activate``, a
        user neighbourhood function, data or weights numpy cannot take as they are).

        Per step ``x = data[i]``: ``d = x - w`` (once, shared by the euclidean distance and
        the update, as both compute it from the same weights), the winner
        ``argmin_j dist(x, w_j)``, then ``w += (h(winner, sigma_t) * eta_t) * d``.  The work
        MiniSom repeats every step and that does not depend on it (the squared offsets
        ``(xx - xx_c)^2`` of the gaussian and mexican hat, for maps of up to 1,024 nodes) is
        computed once; nothing else is reordered, so the weights are MiniSom's bit for bit.
        """
        name = self._neighbourhood_name()
        metric = self._metric_name()
        if name is None or self._overridden("update", "winner", "_activate"):
            return False
        W3 = self._weights
        if not (
            type(W3) is np.ndarray
            and W3.dtype == np.float64
            and W3.ndim == 3
            and W3.flags.c_contiguous
            and W3.flags.writeable
        ):
            return False
        try:
            X = np.asarray(data)
        except (TypeError, ValueError):
            return False
        if X.ndim != 2 or X.dtype.kind not in "fiu" or X.shape[1] != W3.shape[2]:
            return False
        rows, cols, m = W3.shape
        k = rows * cols
        Wf = W3.reshape(k, m)  # a view: the steps write into self._weights
        neighbourhood = self._step_neighbourhood(name, rows, cols)
        distance = _STEP_DISTANCES.get(metric)
        lr_decay, sigma_decay = self._learning_rate_decay_function, self._sigma_decay_function
        lr0, sigma0 = self._learning_rate, self._sigma
        fixed = {i: int(r) * cols + int(c) for i, (r, c) in fixed_points.items()}
        dist = None
        for t, i in enumerate(iterations):
            x = X[i]
            d = np.subtract(x, Wf)
            if distance is None:  # a user distance: MiniSom's winner, on the 3-D weights
                win = self.winner(x)
                c = int(win[0]) * cols + int(win[1])
            else:
                dist = distance(x, Wf, d)
                c = int(dist.argmin())
            c = fixed.get(i, c)
            rate = get_decay_rate(t)
            eta = lr_decay(lr0, rate, num_iteration)
            sig = sigma_decay(sigma0, rate, num_iteration)
            g = neighbourhood(c, sig) * eta
            d *= g[:, None]
            Wf += d
        if dist is not None:  # the activation MiniSom's last winner() call left
            self._activation_map = dist.reshape(rows, cols)
        return True

    def _step_neighbourhood(self, name, rows, cols):
        """``h(c, sigma) -> [rows * cols]`` for :meth:`_numpy_steps`: MiniSom's ``_gaussian``,
        ``_mexican_hat``, ``_bubble`` or ``_triangle`` at flat centre ``c``, flattened."""
        if name in ("bubble", "triangle"):
            neigx, neigy = self._neigx, self._neigy

            if name == "bubble":

                def h(c, sigma):
                    c0, c1 = divmod(c, cols)
                    ax = np.logical_and(neigx > c0 - sigma, neigx < c0 + sigma)
                    ay = np.logical_and(neigy > c1 - sigma, neigy < c1 + sigma)
                    return (np.outer(ax, ay) * 1.0).ravel()

                return h

            def h(c, sigma):
                c0, c1 = divmod(c, cols)
                tx = (-abs(c0 - neigx)) + sigma
                ty = (-abs(c1 - neigy)) + sigma
                tx[tx < 0] = 0.0
                ty[ty < 0] = 0.0
                return np.outer(tx, ty).ravel()

            return h
        xf = np.ascontiguousarray(self._xx.T).ravel()  # node (i, j) at i * cols + j
        yf = np.ascontiguousarray(self._yy.T).ravel()
        if xf.size * xf.size <= _STEP_TABLE_NODES2:
            SX = np.power(xf[None, :] - xf[:, None], 2)  # row c: (xx - xx_c)^2
            SY = np.power(yf[None, :] - yf[:, None], 2)

            def offsets(c):
                return SX[c], SY[c]
        else:

            def offsets(c):
                return np.power(xf - xf[c], 2), np.power(yf - yf[c], 2)

        if name == "gaussian":

            def h(c, sigma):
                sx, sy = offsets(c)
                d = 2 * sigma * sigma
                return np.exp(-sx / d) * np.exp(-sy / d)

            return h

        def h(c, sigma):  # mexican hat
            sx, sy = offsets(c)
            p = sx + sy
            d = 2 * sigma * sigma
            return np.exp(-p / d) * (1 - 2 / d * p)

        return h

    def train_random(self, data, num_iteration, verbose=False):
        """Trains the SOM picking samples at random from data."""
        self.train(data, num_iteration, random_order=True, verbose=verbose)

    def train_batch(self, data, num_iteration, verbose=False):
        """Trains the SOM using all the vectors in data sequentially."""
        self.train(data, num_iteration, random_order=False, verbose=verbose)

    def train_batch_offline(self, data, num_iteration, verbose=False):
        """Batch SOM (Kohonen 2013): one update per iteration from all the data.

        ``new_j = sum_i h(b_i, j) x_i / sum_i h(b_i, j)`` (accumulated by
        :func:`somlab.core.updates.accumulate`), then ``w_j = (1 - lr) w_j + lr new_j`` for the
        nodes whose neighbourhood sum is positive, as in MiniSom.
        """
        self._check_iteration_number(num_iteration)
        self._check_input_len(data)
        iterations = range(num_iteration)
        if verbose:
            iterations = _wrap_index__in_verbose(iterations)
        X_np = np.asarray(data, dtype=np.float64)
        X = _to_t(X_np)
        name = self._neighbourhood_name()
        shape = self._weights.shape[:2]

        for iteration in iterations:
            learning_rate = self._learning_rate_decay_function(
                self._learning_rate, iteration, num_iteration
            )
            sigma = self._sigma_decay_function(self._sigma, iteration, num_iteration)
            if name is not None:
                bmus = torch.from_numpy(self._bmus(data).astype(np.int64))
                num, den = self._accumulate(name, bmus, X, float(sigma))
                numerator = num.numpy().reshape(self._weights.shape)
                denominator = den.numpy().reshape(shape)
            else:  # a user-supplied neighbourhood function: MiniSom's loop
                numerator = np.zeros_like(self._weights)
                denominator = np.zeros(shape)
                for sample in X_np:
                    g = self.neighborhood(self.winner(sample), sigma)
                    numerator += g[:, :, np.newaxis] * sample
                    denominator += g

            denominator_safe = np.where(
                denominator[:, :, np.newaxis] > 0, denominator[:, :, np.newaxis], 1.0
            )
            new_weights = numerator / denominator_safe
            mask = denominator > 0
            self._weights[mask] = (1 - learning_rate) * self._weights[
                mask
            ] + learning_rate * new_weights[mask]

        if verbose:
            print(f"Quantization Error: {self.quantization_error(data):.4f}")

    def _accumulate(self, name, bmus, X, sigma):
        """``sum_i h(b_i, j) x_i`` and ``sum_i h(b_i, j)`` for every node j, ``[k, m]``, ``[k, 1]``.

        :func:`somlab.core.updates.accumulate` drops neighbourhood values below ``tiny / eps``
        (~1e-292) as negligible.  They are, except for nodes that only tiny values reach:
        MiniSom still moves such a node to their weighted mean (its test is ``denominator >
        0``).  Nodes whose denominator is below 1e-200 are summed again here without the cut.
        """
        coords = self._coords(_USES_EUCLIDEAN[name]).reshape(-1, 2)
        fn = NEIGHBOURHOODS[name]
        num, den = accumulate(coords, bmus, X, fn, sigma)
        faint = torch.nonzero(den[:, 0].abs() < 1e-200).squeeze(1)
        if faint.numel():
            won, inverse = torch.unique(bmus, return_inverse=True)
            S = grouped_sum(inverse, X, won.numel())
            C = grouped_sum(inverse, torch.ones_like(X[:, :1]), won.numel())
            step = max(1, _CHUNK_ELEMENTS // won.numel())
            for s in range(0, faint.numel(), step):
                nodes = faint[s : s + step]
                h = fn(coords[nodes].unsqueeze(0) - coords[won].unsqueeze(1), sigma)  # [won, b]
                num[nodes] = h.T @ S
                den[nodes] = h.T @ C
        return num, den

    # -------------------------------------------------------------- analysis
    def quantization(self, data):
        """Code book (weights of the winning neuron, euclidean) of each sample in data."""
        self._check_input_len(data)
        if self._overridden("_distance_from_weights"):
            winners_coords = np.argmin(self._distance_from_weights(data), axis=1)
        else:
            X = _to_t(np.asarray(data, dtype=np.float64))
            W = _to_t(self._weights.reshape(-1, self._weights.shape[2]))
            winners_coords = best_matching_units(X, W, "euclidean", exact=True)[0][:, 0].numpy()
        return self._weights[np.unravel_index(winners_coords, self._weights.shape[:2])]

    def quantization_error(self, data):
        """Average euclidean distance between each sample and its best matching unit."""
        self._check_input_len(data)
        return np.linalg.norm(data - self.quantization(data), axis=1).mean()

    def distortion_measure(self, data):
        """``sum_i sum_c neighborhood(c, sigma) * ||d_i - w_c||`` (MiniSom's definition)."""
        name = self._neighbourhood_name()
        if name is None:
            distortion = 0
            for d in data:
                h = self.neighborhood(self.winner(d), self._sigma)
                distortion += np.multiply(h, np.linalg.norm(d - self.get_weights(), axis=2)).sum()
            return distortion
        n = len(data)
        bmus = torch.from_numpy(self._bmus(data).astype(np.int64))
        coords = self._coords(_USES_EUCLIDEAN[name]).reshape(-1, 2)
        X = _to_t(np.asarray(data, dtype=np.float64).reshape(n, -1))
        W = _to_t(self._weights.reshape(-1, self._weights.shape[2]))
        fn = NEIGHBOURHOODS[name]
        per_sample = np.empty(n)
        step = max(1, _CHUNK_ELEMENTS // max(1, W.shape[0]))
        for s in range(0, n, step):
            b = bmus[s : s + step]
            h = fn(coords.unsqueeze(0) - coords[b].unsqueeze(1), float(self._sigma))
            d = pairwise_distances(X[s : s + step], W, "euclidean", exact=True)
            per_sample[s : s + step] = (h * d).numpy().sum(axis=1)
        # MiniSom adds the per-sample sums one after the other
        return np.add.accumulate(per_sample)[-1] if n else 0

    def topographic_error(self, data):
        """Fraction of samples whose best and second-best units are not adjacent.

        Rectangular: grid distance > 1.42; hexagonal: euclidean distance not close to 1.
        """
        self._check_input_len(data)
        total_neurons = np.prod(self._activation_map.shape)
        if total_neurons == 1:
            warn("The topographic error is not defined for a 1-by-1 map.", stacklevel=2)
            return np.nan
        if self._overridden("_distance_from_weights"):
            b2mu = np.argsort(self._distance_from_weights(data), axis=1)[:, :2]
            b2mu = torch.from_numpy(np.ascontiguousarray(b2mu, dtype=np.int64))
        else:
            X = _to_t(np.asarray(data, dtype=np.float64))
            W = _to_t(self._weights.reshape(-1, self._weights.shape[2]))
            b2mu = best_matching_units(X, W, "euclidean", k=2, exact=True)[0]
        if self.topology == "hexagonal":
            coords = self._coords(True).reshape(-1, 2)
            d = grid_distance(coords, b2mu[:, 0], b2mu[:, 1]).numpy()
            return 1 - np.mean(np.isclose(1, d))
        coords = self._coords(False).reshape(-1, 2)
        d = grid_distance(coords, b2mu[:, 0], b2mu[:, 1]).numpy()
        return (d > 1.42).mean()

    def distance_map(self, scaling="sum"):
        """Distance map (U-matrix) of the weights, normalised to a maximum of 1.

        Each cell is the sum (``scaling='sum'``) or mean (``'mean'``) of the euclidean distances
        between a neuron and its neighbours (8 on rectangular maps, 6 on hexagonal ones).
        """
        if scaling not in ["sum", "mean"]:
            raise ValueError(f'scaling should be either "sum" or "mean" ("{scaling}" not valid)')
        W = np.asarray(self._weights)
        X, Y = W.shape[0], W.shape[1]
        um = np.nan * np.zeros((X, Y, 8))  # 2 spots more for hexagonal topology

        ii = [[0, -1, -1, -1, 0, 1, 1, 1]] * 2
        jj = [[-1, -1, 0, 1, 1, 1, 0, -1]] * 2
        if self.topology == "hexagonal":
            ii = [[1, 1, 1, 0, -1, 0], [0, 1, 0, -1, -1, -1]]
            jj = [[1, 0, -1, -1, 0, 1], [1, 0, -1, -1, 0, 1]]

        ys_all = np.arange(Y)
        for e in (0, 1):  # e = (y % 2 == 0), only matters on hexagonal maps
            ys_e = ys_all[(ys_all % 2 == 0) == bool(e)]
            for k, (i, j) in enumerate(zip(ii[e], jj[e])):
                xs = np.arange(max(0, -i), min(X, X - i))
                ys = ys_e[(ys_e + j >= 0) & (ys_e + j < Y)]
                if xs.size == 0 or ys.size == 0:
                    continue
                diff = W[np.ix_(xs, ys)] - W[np.ix_(xs + i, ys + j)]
                if diff.ndim == 2:
                    sq = diff * diff
                else:
                    sq = np.einsum("...k,...k->...", diff, diff)
                um[np.ix_(xs, ys, [k])] = np.sqrt(sq)[..., None]

        if scaling == "mean":
            um = np.nanmean(um, axis=2)
        if scaling == "sum":
            um = np.nansum(um, axis=2)
        return um / um.max()

    def activation_response(self, data):
        """Number of times each neuron has been the winner, an ``(x, y)`` float array."""
        self._check_input_len(data)
        shape = self._weights.shape[:2]
        counts = np.bincount(self._bmus(data), minlength=shape[0] * shape[1])
        return counts.reshape(shape).astype(float)

    def win_map(self, data, return_indices=False):
        """Dictionary ``(i, j) -> list`` of the samples (or their indices) won by neuron i,j."""
        self._check_input_len(data)
        winmap = defaultdict(list)
        for i, (x, w) in enumerate(zip(data, self._winner_tuples(data))):
            winmap[w].append(i if return_indices else x)
        return winmap

    def labels_map(self, data, labels):
        """Dictionary ``(i, j) -> Counter`` of the labels of the samples won by neuron i,j."""
        self._check_input_len(data)
        if not len(data) == len(labels):
            raise ValueError("data and labels must have the same length.")
        winmap = defaultdict(list)
        for w, lab in zip(self._winner_tuples(data), labels):
            winmap[w].append(lab)
        for position in winmap:
            winmap[position] = Counter(winmap[position])
        return winmap


_METRIC_NAMES = {
    MiniSom._euclidean_distance: "euclidean",
    MiniSom._cosine_distance: "cosine",
    MiniSom._manhattan_distance: "manhattan",
    MiniSom._chebyshev_distance: "chebyshev",
}
_NEIGHBOURHOOD_NAMES.update(
    {
        MiniSom._gaussian: "gaussian",
        MiniSom._mexican_hat: "mexican_hat",
        MiniSom._bubble: "bubble",
        MiniSom._triangle: "triangle",
    }
)
