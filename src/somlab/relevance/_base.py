"""What LARFDSSOM, SS-SOM and Batch SS-SOM share: parameters, input checks, prediction.

The training engines (:mod:`._fit` chooses one: the compiled :mod:`._compiled` or the torch
:mod:`._multi_engine`) take the numpy arrays of :meth:`RelevanceMapBase._prepare_fit` and hand
their map to :meth:`RelevanceMapBase._store_map` as numpy arrays; only the torch engine makes
tensors, once, at its edge.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._errors import DataError
from .._utils import as_tensor, resolve_device, validate_X
from ..core.relevance import activation_matrix
from ..metrics import clustering_error
from ..persistence import SaveLoadMixin
from . import _clusters

_PREDICT_CHUNK = 4096

# SPEC.md §5: every flag, its values (the first is the library default).
FLAGS = {
    "distance": ("weighted", "weighted_sq", "reference"),
    "conn_metric": ("euclid", "sq"),
    "count_unit": ("sample", "batch"),
    "unsup_insert": ("group", "per_sample"),
    "capacity": ("greedy", "all_or_nothing"),
    "conflict_update": ("grouped", "per_sample"),
    "labelled_conflict": ("push", "clone"),
    "connection_refresh": ("events", "always"),
    "convergence": ("cpp", "reference", "none"),
    "label_fallback": ("any", "within_at"),
    "init": ("first_sample", "random"),
    "sampling": ("permutation", "replacement"),
    "unsup_threshold": ("sample", "mean"),
    "clone_wins": ("zero", "copy"),
}

# SPEC.md §5 presets; values override the estimator's own flags at fit time.
COMPAT_PRESETS = {
    "reference": dict(
        distance="reference",
        conn_metric="sq",
        count_unit="batch",
        unsup_insert="per_sample",
        capacity="all_or_nothing",
        conflict_update="per_sample",
        connection_refresh="always",
        convergence="reference",
        clone_wins="copy",
    ),
    "cpp_sssom": dict(
        sampling="replacement",
        label_fallback="within_at",
        filter_noise=True,
        max_nodes="n_samples",
        batch_size=1,
    ),
    # SPEC §4.2: the authors' C++ LARFDSSOM
    "cpp_larfdssom": dict(
        distance="weighted_sq",
        count_all_wins=True,
        init="random",
        max_nodes=70,
        sampling="replacement",
        filter_noise=True,
        batch_size=1,
    ),
}


_F32_MAX = float(np.finfo(np.float32).max)


def _check_values(X: np.ndarray) -> None:
    """NaN, inf, and magnitudes whose float32 weighted squared distances overflow: one pass
    (the limit lies far inside float32, so the cast to the maps' float32 cannot make inf)."""
    if X.size == 0:
        return
    lo, hi = float(np.min(X)), float(np.max(X))  # NaN propagates through min and max
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = "NaN" if np.isnan(X).any() else "inf"
        raise DataError(
            f"X contains {bad}; the relevance maps need complete, finite data (impute missing "
            "values first, e.g. sklearn.impute.SimpleImputer)"
        )
    limit = math.sqrt(_F32_MAX / (4 * X.shape[1]))
    big = max(-lo, hi)
    if big > limit:
        raise DataError(
            f"X has values up to {big:.3g} in magnitude, beyond {limit:.3g}, where the maps' "
            "float32 distances overflow; scale the data (e.g. MinMaxScaler: the papers' data "
            "lie in [0, 1])"
        )


def _warn_minus_one(y, labelled, unlabelled_value) -> None:
    """Issue 17: -1 means "unlabelled" (scikit-learn's convention), but in {-1, +1} labels it
    is a class.  Warn when y holds -1 and the rest looks like a complete labelling: exactly
    one other class while -1 is neither rare nor nearly everything (5-95 % of y; a few labels
    of one class among many unlabelled rows is ordinary semi-supervised data)."""
    if unlabelled_value is None or labelled.all() or y.dtype.kind not in "iuf":
        return
    n_minus = int((y == -1).sum())
    if n_minus == 0:
        return
    counts = np.unique(y[labelled])
    if counts.size == 1 and 0.05 <= n_minus / y.size <= 0.95:
        import warnings

        warnings.warn(
            f"y holds -1 for {n_minus} of {y.size} samples and {counts.size} other class(es): "
            "-1 is read as 'unlabelled' (scikit-learn's semi-supervised convention). If -1 is "
            "a class (labels {-1, +1}), pass unlabelled_value=None: then nothing is unlabelled",
            UserWarning,
            stacklevel=4,
        )


class RelevanceMapBase(SaveLoadMixin, BaseEstimator):
    """Base of the relevance-learning maps; see the subclasses for the parameters."""

    _parameter_constraints = {
        "at": [Interval(Real, 0, 1, closed="neither")],
        "lp": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "age_wins": [Interval(Real, 0, None, closed="neither")],
        "eb": [Interval(Real, 0, None, closed="left")],
        "en": [Interval(Real, 0, None, closed="left")],
        "s": [Interval(Real, 0, None, closed="neither")],
        "minwd": [Interval(Real, 0, None, closed="left")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "epush": [Interval(Real, 0, None, closed="left")],
        "max_nodes": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],  # BatchSSSOM's own
        "filter_noise": ["boolean"],
        "count_all_wins": ["boolean"],
        "compat": [StrOptions(set(COMPAT_PRESETS)), None],
        "unlabelled_value": [Integral, None],
        "device": [str, None],
        "engine": [StrOptions({"auto", "compiled", "torch"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        **{name: [StrOptions(set(values))] for name, values in FLAGS.items()},
    }

    # ------------------------------------------------------------------ configuration
    def _effective(self, n_samples: int) -> dict:
        """Parameters after the ``compat`` preset, with SPEC §2's effective rates."""
        p = self.get_params(deep=False)
        if p.get("compat"):
            p.update(COMPAT_PRESETS[p["compat"]])
        if p.get("max_nodes") == "n_samples":
            p["max_nodes"] = n_samples
        p["e_n"] = float(p["en"]) * float(p["eb"])
        p["e_push"] = float(p["epush"]) * float(p["eb"])
        # round half away from zero, as C++ round()
        p["age_wins_samples"] = max(1, int(np.floor(float(p["age_wins"]) * n_samples + 0.5)))
        return p

    def _check_X(self, X, reset: bool) -> np.ndarray:
        if not self._plain_X(X, reset):
            X = validate_X(self, X, reset, type(self).__name__, dtype=(np.float32, np.float64))
        _check_values(X)
        return X

    def _plain_X(self, X, reset: bool) -> bool:
        """True for a non-empty 2-D float32/float64 numpy array that ``validate_data`` would
        pass through unchanged (the common case: ~0.1 ms saved per call), after doing what it
        does for one: on ``reset`` set ``n_features_in_`` and drop ``feature_names_in_``.  Any
        other input, a model fitted with feature names, or a feature count that differs, takes
        scikit-learn's checks (and their messages)."""
        if not (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype in (np.float32, np.float64)
            and X.shape[0] > 0
            and X.shape[1] > 0
        ):
            return False
        if reset:
            self.n_features_in_ = X.shape[1]
            self.__dict__.pop("feature_names_in_", None)
            return True
        return (
            "feature_names_in_" not in self.__dict__
            and self.__dict__.get("n_features_in_") == X.shape[1]
        )

    def _split_labels(self, y, n: int):
        """``(y as a 1-D array, mask of labelled entries)``; −1 and ``unlabelled_value`` mark
        unlabelled samples (scikit-learn's semi-supervised convention and the papers' 999)."""
        if y is None:
            return np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
        if not (type(y) is np.ndarray and y.ndim == 1 and y.dtype.kind in "biuf"):
            # (a 1-D numeric array passes column_or_1d unchanged, up to contiguity)
            try:
                y = column_or_1d(y, warn=True)
            except ValueError as exc:
                raise DataError(f"y must be 1-D: {exc}") from None
        if y.shape[0] != n:
            raise DataError(f"y has {y.shape[0]} entries but X has {n} samples")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise DataError("y contains NaN or inf; use -1 for unlabelled samples")
        if self.unlabelled_value is None:  # every entry is a label, -1 included
            unl = np.zeros(n, dtype=bool)
        elif y.dtype.kind in "iufb":
            unl = (y == -1) | (y == self.unlabelled_value)
        else:  # string or object labels: None (a missing label in pandas) is unlabelled too
            marks = {-1, "-1", self.unlabelled_value, str(self.unlabelled_value), None}
            unl = np.array([v in marks for v in y.tolist()], dtype=bool)
        if (~unl).any() and y.dtype.kind not in "iub":  # integers and bools: class labels
            try:
                kind = type_of_target(y[~unl], input_name="y", raise_unknown=True)
                np.unique(y[~unl])  # mixed types (str and int) cannot be sorted
            except (TypeError, ValueError) as exc:
                first = str(exc).splitlines()[0][:160]
                raise DataError(
                    f"y must hold class labels of one type (-1 or None = unlabelled): {first}"
                ) from None
            if kind not in ("binary", "multiclass"):
                raise DataError(
                    f"Unknown label type: {kind}; y must hold class labels (-1 = unlabelled)"
                )
        return y, ~unl

    def _prepare_fit(self, X, y):
        """Checked inputs of a fit: ``X`` as a C-contiguous float32 array ``[N, m]`` (a view of a
        float32 input), class indices ``[N]`` (int64, -1 unlabelled; sets ``classes_`` and
        ``supervised_``) and the device."""
        self._validate_params()
        Xn = self._check_X(X, reset=True)
        if Xn.shape[0] == 0:
            raise DataError("X is empty")
        y, labelled = self._split_labels(y, Xn.shape[0])
        _warn_minus_one(y, labelled, self.unlabelled_value)
        dev = resolve_device(self.device)
        self.classes_ = np.unique(y[labelled])
        self.supervised_ = bool(labelled.any())
        idx = np.full(Xn.shape[0], -1, dtype=np.int64)
        idx[labelled] = np.searchsorted(self.classes_, y[labelled])
        Xf = np.ascontiguousarray(Xn, dtype=np.float32)
        self._merge_X = Xf  # for the label-free default's node merge (_clusters.store)
        return Xf, idx, dev

    def _store_map(self, nodes: dict, history=None) -> None:
        """Store a trained map given as numpy arrays of its K active nodes, which the model
        keeps (no copy): ``C``, ``delta``, ``omega`` ``[K, m]``, ``wins``, ``classes`` ``[K]``
        (class indices, -1 unlabelled) and ``adj`` ``[K, K]``."""
        self.prototypes_ = nodes["C"]
        self.relevances_ = nodes["omega"]
        self.distance_averages_ = nodes["delta"]
        self.node_class_index_ = nodes["classes"]
        self.node_classes_ = self._decode(self.node_class_index_)
        self.node_wins_ = nodes["wins"]
        self.adjacency_ = nodes["adj"]
        self.n_nodes_ = int(nodes["C"].shape[0])
        if history is not None:
            self.history_ = history
        _clusters.store(self, self.__dict__.pop("_merge_X", None), self._activation_args()[0])

    # ------------------------------------------------------------------ prediction
    def _activation_args(self):
        """``distance``, ``at``, ``label_fallback`` and ``filter_noise`` after the ``compat``
        preset: what prediction reads (without ``_effective``'s ``get_params``)."""
        preset = COMPAT_PRESETS.get(self.compat or "", {})
        distance, fallback, noise = (
            preset.get(k, getattr(self, k)) for k in ("distance", "label_fallback", "filter_noise")
        )
        return distance, float(self.at), fallback, bool(noise)

    def _decide(self, X, decode: bool = True):
        """Classes (class indices when not ``decode``) and node ids per SPEC.md §2 Outputs,
        chunked over samples."""
        check_is_fitted(self, "prototypes_")
        return self._decide_checked(self._check_X(X, reset=False), decode)

    def _decide_checked(self, Xn: np.ndarray, decode: bool = True):
        """:meth:`_decide` on rows already validated (``_check_X`` or ``_prepare_fit``)."""
        dev = resolve_device(self.device)
        Xt = as_tensor(Xn, torch.float32, dev)
        C = torch.as_tensor(self.prototypes_, device=dev)
        omega = torch.as_tensor(self.relevances_, device=dev)
        cls = torch.as_tensor(self.node_class_index_, device=dev)
        distance, at, fallback, filter_noise = self._activation_args()
        n = Xt.shape[0]
        pred = torch.full((n,), -1, dtype=torch.int64, device=dev)
        node = torch.full((n,), -1, dtype=torch.int64, device=dev)
        if C.shape[0] == 0:
            return pred.cpu().numpy(), node.cpu().numpy()
        for s in range(0, n, _PREDICT_CHUNK):
            A = activation_matrix(Xt[s : s + _PREDICT_CHUNK], C, omega, distance)
            a, w = A.max(1)  # first maximum: ties go to the lowest node index
            noise = a < at
            if not self.supervised_:
                p, nd = w.clone(), w.clone()
            else:
                labelled = cls != -1
                ok = labelled.unsqueeze(0)
                if fallback == "within_at":
                    ok = ok & (A >= at)
                fb_act = torch.where(ok, A, torch.full_like(A, -torch.inf))
                fb_a, fb = fb_act.max(1)
                has_fb = torch.isfinite(fb_a)
                own = cls[w] != -1
                nd = torch.where(own, w, torch.where(has_fb, fb, w))
                p = torch.where(own, cls[w], torch.where(has_fb, cls[fb], -1))
                if filter_noise and fallback == "within_at":
                    noise = noise | (~own & ~has_fb)
            if filter_noise:
                p = torch.where(noise, -1, p)
                nd = torch.where(noise, -1, nd)
            pred[s : s + _PREDICT_CHUNK] = p
            node[s : s + _PREDICT_CHUNK] = nd
        pred, node = _clusters.apply(self, pred.cpu().numpy(), node.cpu().numpy(), Xn)
        return (self._decode(pred) if decode else pred), node

    def _decode(self, idx):
        """Class indices back to the labels seen in fit; −1 stays −1 ("no class")."""
        if not self.supervised_:
            return idx.copy()
        out = self.classes_[np.maximum(idx, 0)]
        if (idx < 0).any():
            out = out.astype(object) if out.dtype.kind not in "iuf" else out
            out[idx < 0] = -1
        return out

    def predict(self, X):
        """Class of each sample (−1 = no class); cluster ids for a model that saw no label."""
        return self._decide(X)[0]

    def predict_cluster(self, X):
        """Cluster of each sample; −1 for noise when ``filter_noise``.

        The winning node's id, except for a model fitted with no label and its defaults
        (LARFDSSOM(), SSSOM(), BatchSSSOM()): there the id of the merged cluster, an index
        into ``cluster_centers_`` (relevance/_clusters.py), not into ``prototypes_``."""
        return self._decide(X)[1]

    def fit_predict(self, X, y=None):
        return self.fit(X, y).predict(X)

    def activations(self, X):
        """Activation of every node for each sample, shape (n_samples, n_nodes)."""
        check_is_fitted(self, "prototypes_")
        return self._activations_checked(self._check_X(X, reset=False))

    def _activations_checked(self, Xn: np.ndarray) -> np.ndarray:
        """:meth:`activations` of rows already validated."""
        Xt = as_tensor(Xn, torch.float32, resolve_device(self.device))
        C = torch.as_tensor(self.prototypes_, device=Xt.device)
        omega = torch.as_tensor(self.relevances_, device=Xt.device)
        return activation_matrix(Xt, C, omega, self._activation_args()[0]).cpu().numpy()

    def subspace_clusters(self, X):
        """Overlapping subspace clustering (SPEC.md §2): membership ``(n_samples, n_nodes)`` —
        each sample belongs to its winner and every node with activation >= at — and the
        relevant dimensions per node ``(n_nodes, n_features)``: omega_ji >= mean_i omega_ji."""
        A = self.activations(X)
        member = A >= float(self.at)
        member[np.arange(A.shape[0]), A.argmax(1)] = True
        dims = self.relevances_ >= self.relevances_.mean(1, keepdims=True)
        return member, dims

    def score(self, X, y):
        """Accuracy of :meth:`predict` against ``y`` (−1 predictions count as wrong).

        Labels in ``y`` that the model never saw are scored as errors (a warning says how
        many), never a crash.  A map fitted without labels (LARFDSSOM, or ``fit(X)``) has no
        classes to predict: its score is the clustering error CE of :meth:`predict_cluster`
        (the best one-to-one matching of clusters to classes; noise counts as wrong).
        """
        y, mask = self._split_labels(y, len(X))
        check_is_fitted(self, "prototypes_")
        if not self.supervised_:
            if not mask.any():
                raise DataError("score needs at least one labelled sample in y")
            return clustering_error(y[mask], self.predict_cluster(X)[mask])
        pred = self.predict(X)
        known = set(self.classes_.tolist())
        unseen = sorted(set(y[mask].tolist()) - known)
        if unseen:
            import warnings

            warnings.warn(
                f"score: y holds labels the model never saw in fit ({unseen[:10]}); "
                "their samples count as errors",
                stacklevel=2,
            )
        if not mask.any():
            raise DataError("score needs at least one labelled sample in y")
        return float((pred[mask] == y[mask]).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
