"""``somlab reproduce table3``: Batch SS-SOM on CNN features (the Batch SS-SOM paper's Table III,
seed 000 §V-D; SPEC.md §9), with two protocols, two selections and two baselines.

Pipeline, per data set (MNIST, Fashion-MNIST, SVHN), seed and label fraction f:

1. **Labels.** Unbalanced Bernoulli sampling (:func:`sample_labelled`): every training image is
   labelled with probability f, independently (no per-class quota), redrawn until at least
   ``ceil(f * N)`` are labelled. The same labelled images serve the CNN (honest protocol), the
   SOM and the baselines.
2. **Features** of the layer the paper names (32, 32 and 84 dimensions), extracted in eval mode
   (:mod:`somlab.features`), then min-max scaled with the training statistics and clipped to
   [0, 1] (SPEC.md choice: the activation threshold assumes [0, 1]).

   * *paper protocol*: the CNN is trained on the **whole labelled training set**; only the SOM
     and the baselines see the reduced labels (what the paper did);
   * *honest protocol*: the CNN is trained **only on the labelled fraction**, for the same
     number of optimiser steps as the full-set network (so 1 % of MNIST is seen for ~100x the
     epochs); at 100 % both protocols are the same network and share their runs.
3. **Batch SS-SOM**: the same ``n_settings`` Latin-hypercube settings over the paper's Table I
   (:func:`~somlab.experiments.lhs.draw_settings`) at every fraction, batch 32, CPU (compiled
   engine); unlabelled images get y = -1. Test accuracy of each run.

   * *best of 10* (the paper's "best results over 10 runs"): per fraction the setting with the
     best **test** accuracy -- an oracle choice, reported because the paper did it;
   * *one setting* (our honest choice): the single setting with the best test accuracy averaged
     over all fractions (and seeds) of the protocol, used at every fraction. It is still chosen
     on the test set, but it is one choice for the whole row instead of one per cell, so the
     gap between the two shows how much the per-cell oracle adds.
4. **Baselines** on the same features and labelled images: 1-nearest-neighbour on the labelled
   images only (scikit-learn ``KNeighborsClassifier(1)``) and ``LabelSpreading`` (kernel knn,
   7 neighbours) on all training images with -1 for the unlabelled ones; and, for context, the
   accuracy of the CNN's own classifier.

The report ``table3_<dataset>[_quick].md`` (and ``.json``, ``.png``) puts each cell beside the
paper's figure and checks the target: at least the paper at every fraction for MNIST and
Fashion-MNIST under the paper protocol (best of 10).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shlex
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .._errors import DataError, SomlabError
from .lhs import draw_settings

__all__ = [
    "DATASETS",
    "FRACTIONS",
    "PAPER_ACC",
    "PROTOCOLS",
    "QUICK",
    "Table3Config",
    "add_parser",
    "aggregate",
    "baseline_scores",
    "command_line",
    "config_from_args",
    "fit_som_settings",
    "load_images",
    "minmax_scale",
    "plot_table",
    "render_markdown",
    "reproduce_table3",
    "run_cli",
    "sample_labelled",
    "settings_for",
]

#: Data sets: name -> (title, loader name).
DATASETS = {"mnist": "MNIST", "fmnist": "Fashion-MNIST", "svhn": "SVHN"}
_ALIASES = {"fashion": "fmnist", "fashion_mnist": "fmnist", "fashion-mnist": "fmnist"}
#: Label fractions of the paper, in percent.
FRACTIONS: tuple[int, ...] = (1, 5, 10, 25, 50, 75, 100)
PROTOCOLS: tuple[str, ...] = ("paper", "honest")
#: Accuracy of the paper's Table III (seed 000), per data set and fraction.
PAPER_ACC: dict[str, dict[int, float]] = {
    "mnist": dict(zip(FRACTIONS, (0.788, 0.9643, 0.974, 0.9793, 0.983, 0.9839, 0.9836))),
    "fmnist": dict(zip(FRACTIONS, (0.624, 0.797, 0.798, 0.834, 0.847, 0.840, 0.846))),
    "svhn": dict(zip(FRACTIONS, (0.560, 0.716, 0.713, 0.777, 0.792, 0.810, 0.826))),
}
#: Data sets with a quality target (issue 6): >= the paper at every fraction, paper protocol.
TARGET_DATASETS = ("mnist", "fmnist")

#: ``--quick`` (fields of :class:`Table3Config`): a stratified 5,000-image training subset and
#: 2,000 test images, one CNN epoch (the honest networks get the same number of steps), all
#: seven fractions, 10 LHS settings with epochs and age_wins capped at 5 (the convergence phase
#: alone presents age_wins x N samples). Measured times are in the reports.
QUICK = dict(n_train=5000, n_test=2000, cnn_epochs=1, max_epochs=5, max_age_wins=5)

_LS_NEIGHBOURS = 7


@dataclass(frozen=True)
class Table3Config:
    """What to run.

    ``fractions``: label percents in (0, 100]; ``n_settings``: LHS settings over Table I
    (seed ``lhs_seed``); ``n_train`` / ``n_test``: class-stratified subsets (None: all);
    ``seeds``: repetitions 0..seeds-1 (CNN initialisation and batch order, label sampling);
    ``cnn_epochs``: override of the data set's CNN epochs; ``max_epochs`` / ``max_age_wins``:
    caps on the settings (the quick preset); ``device``: where the CNN trains (the SOM and the
    baselines run on the CPU); ``n_jobs``: processes for the SOM fits (joblib; 1 = here);
    ``cache_dir``: feature cache (None: ``~/.cache/somlab/features``), ``use_cache``."""

    dataset: str = "mnist"
    fractions: tuple = FRACTIONS
    protocols: tuple = PROTOCOLS
    n_settings: int = 10
    lhs_seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    seeds: int = 1
    cnn_epochs: int | None = None
    max_epochs: int | None = None
    max_age_wins: int | None = None
    device: str = "cpu"
    data_dir: str | None = None
    n_jobs: int = 1
    cache_dir: str | None = None
    use_cache: bool = True
    quick: bool = False

    def validated(self) -> Table3Config:
        ds = _ALIASES.get(str(self.dataset).lower(), str(self.dataset).lower())
        if ds not in DATASETS:
            raise SomlabError(
                f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}"
            )
        fr = []
        for f in self.fractions:
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 100:
                raise SomlabError(f"bad label fraction {f!r} %; use percents in (0, 100]")
            fr.append(int(f) if float(f) == int(f) else float(f))
        if not fr:
            raise SomlabError("fractions must not be empty")
        if len(set(fr)) != len(fr):
            raise SomlabError(f"repeated label fraction in {fr}")
        protocols = tuple(self.protocols)
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad or not protocols:
            raise SomlabError(f"bad protocol(s) {bad or protocols}; choose from paper, honest")
        for name, low in (("n_settings", 1), ("seeds", 1), ("n_jobs", None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or (low is not None and v < low):
                raise SomlabError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.n_jobs == 0:
            raise SomlabError("n_jobs must be a positive number of processes or -1 (all cores)")
        for name, low in (
            ("n_train", 20),
            ("n_test", 10),
            ("cnn_epochs", 1),
            ("max_epochs", 1),
            ("max_age_wins", 1),
        ):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise SomlabError(f"{name.replace('_', '-')} must be an integer >= {low}, got {v!r}")
        _check_device(self.device)
        return replace(self, dataset=ds, fractions=tuple(sorted(fr)), protocols=protocols)

    @property
    def stem(self) -> str:
        return f"table3_{self.dataset}" + ("_quick" if self.quick else "")


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SomlabError(f"bad device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SomlabError(f"device {device!r} asked for but CUDA is not available")


# ------------------------------------------------------------------------------ pieces


def load_images(config: Table3Config):
    """``(X_train, y_train, X_test, y_test)``: uint8 images ([n, 28, 28] or [n, 3, 32, 32]) and
    int64 labels, with ``n_train`` / ``n_test`` class-stratified subsets (seed 0)."""
    from ..datasets import load_fashion_mnist, load_mnist
    from ..features import load_svhn

    loader = {"mnist": load_mnist, "fmnist": load_fashion_mnist, "svhn": load_svhn}
    if config.dataset == "svhn":
        b = load_svhn(config.data_dir)
    else:
        b = loader[config.dataset](data_dir=config.data_dir)
    X_train, y_train = _subset(b.X_train, np.asarray(b.y_train), config.n_train, "--n-train")
    X_test, y_test = _subset(b.X_test, np.asarray(b.y_test), config.n_test, "--n-test")
    return X_train, y_train, X_test, y_test


def _subset(X, y, n, option):
    if n is None or n >= len(y):
        return X, y
    from sklearn.model_selection import train_test_split

    try:
        idx, _ = train_test_split(
            np.arange(len(y)), train_size=int(n), stratify=y, random_state=0
        )
    except ValueError as exc:
        raise SomlabError(f"{option} {n}: {str(exc).splitlines()[0]}") from None
    idx = np.sort(idx)
    return X[idx], y[idx]


def sample_labelled(y, fraction: float, rng, max_tries: int = 10_000) -> np.ndarray:
    """Mask of labelled samples: unbalanced Bernoulli sampling (SPEC.md §9).

    Every sample is labelled with probability ``fraction`` (in (0, 1]) independently of its
    class; the draw is repeated until at least ``ceil(fraction * N)`` are labelled. ``rng``: a
    ``numpy.random.Generator`` (or a seed)."""
    n = len(y)
    fraction = float(fraction)
    if not 0 < fraction <= 1:
        raise SomlabError(f"label fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(rng)
    need = math.ceil(fraction * n - 1e-9)
    if fraction >= 1:
        return np.ones(n, dtype=bool)
    for _ in range(max_tries):
        mask = rng.random(n) < fraction
        if int(mask.sum()) >= need:
            return mask
    raise SomlabError(  # pragma: no cover - a median argument makes this practically impossible
        f"could not draw {need} labelled samples of {n} in {max_tries} tries"
    )


def minmax_scale(train, *others):
    """Min-max scaling with the training statistics, clipped to [0, 1] (constant features map
    to 0). Returns the scaled ``train`` followed by the scaled ``others``, float32."""
    train = np.asarray(train, dtype=np.float32)
    lo = train.min(axis=0)
    span = train.max(axis=0) - lo
    span[span <= 0] = 1.0
    out = [np.clip((np.asarray(a, dtype=np.float32) - lo) / span, 0.0, 1.0) for a in (train, *others)]
    return tuple(a.astype(np.float32) for a in out)


def settings_for(config: Table3Config) -> list[dict]:
    """The LHS settings (Table I ranges), epochs and age_wins capped as the config says."""
    out = []
    for s in draw_settings(int(config.n_settings), seed=int(config.lhs_seed)):
        s = dict(s)
        if config.max_epochs is not None:
            s["epochs"] = min(int(s["epochs"]), int(config.max_epochs))
        if config.max_age_wins is not None:
            s["age_wins"] = min(s["age_wins"], int(config.max_age_wins))
        out.append(s)
    return out


def _fit_one(F_train, y_semi, F_test, y_test, setting) -> dict:
    from ..relevance import BatchSSSOM

    t0 = time.perf_counter()
    model = BatchSSSOM(**setting).fit(F_train, y_semi)
    fit_s = time.perf_counter() - t0
    pred = model.predict(F_test)
    return {
        "acc": float(np.mean(pred == y_test)),
        "nodes": int(model.n_nodes_),
        "fit_s": fit_s,
    }


def fit_som_settings(F_train, y_semi, F_test, y_test, settings, n_jobs=1, progress=False, desc=""):
    """Fit one Batch SS-SOM per setting on ``(F_train, y_semi)`` (-1 = unlabelled), score on
    the test features. Returns one ``{"acc", "nodes", "fit_s"}`` per setting, in order."""
    if n_jobs == 1 or len(settings) == 1:
        it = settings
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(settings, desc=desc or "Batch SS-SOM", leave=False)
        return [_fit_one(F_train, y_semi, F_test, y_test, s) for s in it]
    from joblib import Parallel, delayed

    return list(
        Parallel(n_jobs=n_jobs)(
            delayed(_fit_one)(F_train, y_semi, F_test, y_test, s) for s in settings
        )
    )


def baseline_scores(F_train, y_semi, F_test, y_test) -> dict:
    """Test accuracy of 1-NN (labelled samples only) and LabelSpreading (kernel knn, all
    training samples, -1 = unlabelled), with their times."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading

    lab = y_semi >= 0
    t0 = time.perf_counter()
    knn = KNeighborsClassifier(n_neighbors=1).fit(F_train[lab], y_semi[lab])
    knn_acc = float(knn.score(F_test, y_test))
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ls = LabelSpreading(kernel="knn", n_neighbors=_LS_NEIGHBOURS).fit(F_train, y_semi)
    ls_acc = float(ls.score(F_test, y_test))
    t2 = time.perf_counter()
    return {"knn": knn_acc, "label_spreading": ls_acc, "knn_s": t1 - t0, "ls_s": t2 - t1}


# ------------------------------------------------------------------------------ the run


def _cnn_steps(config: Table3Config, n_train: int) -> int:
    from ..features import CNN_CONFIGS

    cfg = CNN_CONFIGS[config.dataset]
    epochs = cfg.epochs if config.cnn_epochs is None else config.cnn_epochs
    return epochs * math.ceil(n_train / cfg.batch_size)


def _features(config, protocol, pct, seed, data, mask, cache, progress) -> dict:
    """Train the CNN of this cell (or read its features from the cache) and extract the
    features of every training and test image."""
    import hashlib

    from ..features import CNN_CONFIGS, cache_key, cnn_accuracy, extract_features, train_cnn

    X_train, y_train, X_test, y_test = data
    cfg = CNN_CONFIGS[config.dataset]
    steps = _cnn_steps(config, len(y_train))
    lab = np.flatnonzero(mask)
    meta = {
        "dataset": config.dataset,
        "protocol": protocol,
        "fraction": pct,
        "seed": seed,
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "train_hash": hashlib.sha256(np.ascontiguousarray(y_train).tobytes()).hexdigest()[:16],
        "test_hash": hashlib.sha256(np.ascontiguousarray(y_test).tobytes()).hexdigest()[:16],
        "labelled_hash": hashlib.sha256(lab.astype(np.int64).tobytes()).hexdigest()[:16],
        "cnn": asdict(cfg),
        "steps": steps,
        "version": 1,
    }

    def compute():
        t0 = time.perf_counter()
        net = train_cnn(
            config.dataset,
            X_train[lab],
            y_train[lab],
            steps=steps,
            seed=seed,
            device=config.device,
            progress=progress,
        )
        t1 = time.perf_counter()
        F_train = extract_features(net, X_train)
        F_test = extract_features(net, X_test)
        acc = cnn_accuracy(net, X_test, y_test)
        t2 = time.perf_counter()
        return {
            "train": F_train,
            "test": F_test,
            "cnn_acc": np.float64(acc),
            "cnn_train_s": np.float64(t1 - t0),
            "extract_s": np.float64(t2 - t1),
            "loss": np.asarray(net.history_["loss"], dtype=np.float64),
        }

    key = cache_key(config.dataset, protocol, pct, seed, meta)
    arrays, hit = cache.get_or_compute(key, compute, meta)
    return {
        **arrays,
        "from_cache": hit,
        "cnn_steps": steps,
        "n_cnn_train": int(len(lab)),
        "cnn_id": f"{protocol}-{pct}-s{seed}",
    }


