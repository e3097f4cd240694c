"""Many Batch SS-SOMs in one pass: K settings of SPEC.md §3 trained as one tensor program."""

from __future__ import annotations

import copy

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from tqdm import tqdm

from .._permap import PerMapMixin, is_listlike
from .._utils import seeded_generator
from ..persistence import SaveLoadMixin, _jsonable, _params_from_json
from . import _compiled
from ._fit import engine_params, fit_many, torch_inputs
from ._multi_engine import MultiEngine
from ._params import make_init
from .batch_sssom import BatchSSSOM

#: Hyper-parameters that may differ from map to map (a scalar is shared by all maps).
PER_MAP = (
    "at",
    "lp",
    "beta",
    "age_wins",
    "eb",
    "en",
    "s",
    "minwd",
    "epochs",
    "epush",
    "max_nodes",
    "random_state",
)


class BatchSSSOMEnsemble(SaveLoadMixin, PerMapMixin, BaseEstimator):
    """K Batch SS-SOMs with different hyper-parameters trained together on the same data.

    Every rule of SPEC.md §3 runs once per batch for all K maps (one set of node tensors with
    an extra map axis; insertions, removals and update rounds are per-map ranks and masks), so
    a parameter sweep is one tensor program, the shape a GPU wants.  Map ``k`` is the map
    that ``BatchSSSOM(**ensemble.get_map_params()[k]).fit(X, y)`` trains: on a CPU the same
    nodes, classes, edges and wins, with prototypes and relevances equal to rounding (the
    vectorized exp of the logistic relevance may round a row's last bit differently in a batch
    of another size); tests/test_relevance_ensemble.py checks this on every flag set.  On CUDA,
    sums by atomics make even two single fits differ in the last bits, and a last bit can tip a
    threshold, so expect agreement in size and predictions rather than bit for bit (a CUDA test
    checks that; it has not run yet: no GPU was available, GPU not measured).

    Parameters
    ----------
    at, lp, beta, age_wins, eb, en, s, minwd, epochs, epush, max_nodes, random_state
        As in :class:`BatchSSSOM`: a scalar (shared by all maps) or a sequence of K values,
        one per map.  All sequences must have the same length K.  An int ``random_state``
        seeds the map's own generator, as in a single fit.
    batch_size, the rule flags (distance, conn_metric, ...), filter_noise, count_all_wins,
    compat, unlabelled_value, device, engine, verbose
        Shared by all maps; as in :class:`BatchSSSOM` (every SPEC.md flag and preset).
        ``engine``: "auto" (default) trains the maps as compiled single fits on the CPU cores
        when the compiled engine implements the flags, else as one tensor program; "torch"
        always the tensor program; "compiled" the compiled engine or a clear error.

    Attributes
    ----------
    n_maps_ : int
    models_ : list of K fitted :class:`BatchSSSOM`
        Each map as an ordinary estimator (predict, score, save, plots).
    n_nodes_ : ndarray of shape (K,)
    classes_ : ndarray
        The labels seen in fit (shared by all maps).

    Notes
    -----
    On a CPU (``engine`` "auto" with flags the compiled engine implements, or "compiled") the
    K maps train as K compiled single fits spread over the cores with the GIL released
    (:func:`somlab.relevance._fit.fit_many`): each map is then exactly its single fit.  The
    tensor program (``engine="torch"``, and CUDA) is for GPUs, where a batch step's kernel
    launches serve all K maps (``benchmarks/sssom_ensemble.py --device cuda``).
    """

    __init__ = make_init()

    PER_MAP = PER_MAP

    @classmethod
    def from_settings(cls, settings, **shared):
        """An ensemble with one map per dict of ``settings`` (e.g. rows of an LHS design).

        Keys of the dicts must be per-map parameters (:data:`PER_MAP`); the rest goes in
        ``shared``.

        >>> BatchSSSOMEnsemble.from_settings([{"at": 0.9}, {"at": 0.95, "lp": 0.01}]).n_maps()
        2
        """
        return super().from_settings(settings, **shared)

    def get_map_params(self) -> list[dict]:
        """The :class:`BatchSSSOM` parameters of each map, a list of K dicts."""
        K = self.n_maps()
        base = self.get_params(deep=False)
        shared = [k for k, v in base.items() if k not in PER_MAP and is_listlike(v)]
        if shared:
            raise ValueError(
                f"{', '.join(shared)} is shared by all maps of an ensemble (per-map: "
                f"{', '.join(PER_MAP)}); fit one ensemble per value"
            )
        out = []
        for k in range(K):
            p = dict(base)
            for name in PER_MAP:
                if is_listlike(p[name]):
                    v = p[name][k]
                    p[name] = v.item() if isinstance(v, np.generic) else v
            out.append(p)
        return out

    def fit(self, X, y=None):
        """Train all K maps on ``X`` with labels ``y`` (−1 = unlabelled; None: unsupervised)."""
        models = [BatchSSSOM(**p) for p in self.get_map_params()]
        for m in models:
            m._validate_params()  # each map's values, with BatchSSSOM's messages
        first = models[0]
        if self._compiled(models, X):  # the CPU: K compiled fits on the cores, GIL released
            fit_many(models, X, y)
            return self._set_models(models)
        Xn, y_idx, dev = first._prepare_fit(X, y)
        n_classes = len(first.classes_)
        params = [engine_params(m, Xn.shape[0], n_classes, int(m.batch_size)) for m in models]
        gens = [seeded_generator(m.random_state) for m in models]
        engine = MultiEngine(*torch_inputs(Xn, y_idx, dev), params, gens)
        with tqdm(desc=f"BatchSSSOM x{len(models)}", unit="batch", disable=not self.verbose) as bar:
            engine.run(progress=lambda _: bar.update(1))
        merge_X = first.__dict__.get("_merge_X")  # each map's label-free merge (as its own fit)
        for k, m in enumerate(models):
            for name in ("classes_", "supervised_", "n_features_in_", "feature_names_in_"):
                if hasattr(first, name):
                    setattr(m, name, getattr(first, name))
            m._merge_X = merge_X
            m._store_map(engine.map_arrays(k), engine.history[k])
        return self._set_models(models)

    def _compiled(self, models, X) -> bool:
        """Whether every map runs on the compiled engine (``engine`` "auto" or "compiled" on the
        CPU with flags it implements); "compiled" that cannot is the single fit's error."""
        if self.engine == "torch":
            return False
        from .._utils import resolve_device

        dev = resolve_device(self.device)
        if self.engine == "compiled":
            return True  # fit_many raises the single fit's clear error where one cannot
        if dev.type != "cpu" or not _compiled.available():
            return False
        n = max(1, len(X))
        return all(_compiled.supports(m._effective(n)) for m in models)

    def _set_models(self, models):
        """The fitted maps and the attributes read from them."""
        first = models[0]
        self.models_ = models
        self.n_maps_ = len(models)
        self.n_nodes_ = np.array([m.n_nodes_ for m in models])
        self.classes_ = first.classes_
        self.n_features_in_ = first.n_features_in_
        return self

    def predict(self, X) -> np.ndarray:
        """Each map's :meth:`BatchSSSOM.predict`, shape (K, n_samples)."""
        check_is_fitted(self, "models_")
        return np.stack([m.predict(X) for m in self.models_])

    def score(self, X, y) -> np.ndarray:
        """Each map's accuracy (:meth:`BatchSSSOM.score`), shape (K,)."""
        check_is_fitted(self, "models_")
        return np.array([m.score(X, y) for m in self.models_])

    # ------------------------------------------------------------------ save / load
    def _state_for_save(self):
        """Each map's own state under ``map<k>.``; its parameters beside it."""
        check_is_fitted(self, "models_")
        arrays, maps = {}, []
        for k, m in enumerate(self.models_):
            a, scalars = m._state_for_save()
            arrays.update({f"map{k}.{name}": v for name, v in a.items()})
            maps.append({"params": _jsonable(m.get_params()), "attributes": scalars})
        return arrays, {"maps": maps}

    def _restore_state(self, arrays, scalars):
        models = []
        for k, saved in enumerate(scalars["maps"]):
            m = BatchSSSOM(**_params_from_json(saved["params"]))
            prefix = f"map{k}."
            own = {n[len(prefix) :]: v for n, v in arrays.items() if n.startswith(prefix)}
            m._restore_state(own, saved["attributes"])
            models.append(m)
        self._set_models(models)

    def to_models(self) -> list[BatchSSSOM]:
        """The K trained maps as independent fitted :class:`BatchSSSOM` (copies)."""
        check_is_fitted(self, "models_")
        return copy.deepcopy(self.models_)


__all__ = ["PER_MAP", "BatchSSSOMEnsemble"]
