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
import math
import numbers
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
#: 2,000 test images, two CNN epochs (the honest networks get the same number of steps), all
#: seven fractions, both protocols, 10 LHS settings with epochs and age_wins capped at 5 (the
#: convergence phase alone presents age_wins x N samples), one torch thread (on a CPU shared
#: with other jobs torch's default threads oversubscribe it: a 4,000-image, one-epoch MNIST
#: run took 172 s with them, 34 s with one). Each report records its own time.
QUICK = dict(n_train=5000, n_test=2000, cnn_epochs=2, max_epochs=5, max_age_wins=5, threads=1)

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
    ``cache_dir``: feature cache (None: ``~/.cache/somlab/features``), ``use_cache``;
    ``threads``: torch's CPU threads while the networks train and run (None: torch's default;
    on a CPU shared with other jobs, 1 can be several times faster than oversubscribing)."""

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
    threads: int | None = None
    quick: bool = False

    def validated(self) -> Table3Config:
        ds = _ALIASES.get(str(self.dataset).lower(), str(self.dataset).lower())
        if ds not in DATASETS:
            raise SomlabError(
                f"unknown dataset {self.dataset!r}; choose from {', '.join(DATASETS)}"
            )
        fractions = self.fractions
        if isinstance(fractions, (numbers.Real, str)):
            fractions = (fractions,)
        fr = []
        for f in fractions:
            if isinstance(f, bool) or not isinstance(f, numbers.Real) or not 0 < f <= 100:
                raise SomlabError(f"bad label fraction {f!r} %; use percents in (0, 100]")
            fr.append(int(f) if float(f) == int(f) else float(f))
        if not fr:
            raise SomlabError("fractions must not be empty")
        if len(set(fr)) != len(fr):
            raise SomlabError(f"repeated label fraction in {fr}")
        protocols = (self.protocols,) if isinstance(self.protocols, str) else self.protocols
        protocols = tuple(dict.fromkeys(protocols))
        bad = [p for p in protocols if p not in PROTOCOLS]
        if bad or not protocols:
            raise SomlabError(f"bad protocol(s) {bad or protocols}; choose from paper, honest")
        for name in ("n_settings", "seeds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SomlabError(f"{name} must be an integer >= 1, got {v!r}")
        if isinstance(self.n_jobs, bool) or not isinstance(self.n_jobs, int) or self.n_jobs == 0:
            raise SomlabError(
                f"n_jobs must be a positive number of processes or -1 (all cores), got "
                f"{self.n_jobs!r}"
            )
        for name, low in (
            ("n_train", 20),
            ("n_test", 10),
            ("cnn_epochs", 1),
            ("max_epochs", 1),
            ("max_age_wins", 1),
            ("threads", 1),
        ):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise SomlabError(
                    f"{name.replace('_', '-')} must be an integer >= {low}, got {v!r}"
                )
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
        idx, _ = train_test_split(np.arange(len(y)), train_size=int(n), stratify=y, random_state=0)
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
    out = [
        np.clip((np.asarray(a, dtype=np.float32) - lo) / span, 0.0, 1.0) for a in (train, *others)
    ]
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


def _fit_one(F_train, y_semi, F_test, y_test, setting, key=None) -> dict:
    from ..relevance import BatchSSSOM

    t0 = time.perf_counter()
    model = BatchSSSOM(**setting).fit(F_train, y_semi)
    fit_s = time.perf_counter() - t0
    pred = model.predict(F_test)
    out = {"acc": float(np.mean(pred == y_test)), "nodes": int(model.n_nodes_), "fit_s": fit_s}
    return out if key is None else (key, out)


def _cost(setting: dict) -> float:
    """Relative cost of a fit: organisation epochs plus the convergence phase (x N samples)."""
    return float(setting["epochs"]) + float(setting["age_wins"])


def run_fits(jobs, n_jobs: int = 1, progress: bool = False, desc: str = "Batch SS-SOM") -> dict:
    """Fit one Batch SS-SOM per job and score it on the test features.

    ``jobs``: ``key -> (F_train, y_semi, F_test, y_test, setting)`` with ``y_semi = -1`` for
    unlabelled samples. The jobs run longest first (epochs + age_wins) in ``n_jobs`` processes
    (joblib; 1 = in this process). Returns ``key -> {"acc", "nodes", "fit_s"}``."""
    order = sorted(jobs, key=lambda k: -_cost(jobs[k][4]))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc=desc, leave=False)
    out = {}
    if n_jobs == 1 or len(order) <= 1:
        results = (_fit_one(*jobs[k], key=k) for k in order)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
            delayed(_fit_one)(*jobs[k], key=k) for k in order
        )
    for key, res in results:
        out[key] = res
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def fit_som_settings(F_train, y_semi, F_test, y_test, settings, n_jobs=1, progress=False):
    """Fit one Batch SS-SOM per setting on ``(F_train, y_semi)`` (-1 = unlabelled), score on
    the test features. Returns one ``{"acc", "nodes", "fit_s"}`` per setting, in order."""
    jobs = {i: (F_train, y_semi, F_test, y_test, s) for i, s in enumerate(settings)}
    res = run_fits(jobs, n_jobs=n_jobs, progress=progress)
    return [res[i] for i in range(len(settings))]


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
        # test points whose neighbours all carry no label mass get 0/0 probabilities (NaN
        # rows, predicted as the first class): counted as they come, without the warning
        with np.errstate(invalid="ignore", divide="ignore"):
            ls_acc = float(ls.score(F_test, y_test))
    t2 = time.perf_counter()
    return {"knn": knn_acc, "label_spreading": ls_acc, "knn_s": t1 - t0, "ls_s": t2 - t1}


# ------------------------------------------------------------------------------ the run


def _cnn_steps(config: Table3Config, n_train: int) -> int:
    from ..features import CNN_CONFIGS

    cfg = CNN_CONFIGS[config.dataset]
    epochs = cfg.epochs if config.cnn_epochs is None else config.cnn_epochs
    return epochs * math.ceil(n_train / cfg.batch_size)


def _data_hash(data) -> str:
    """SHA-256 (16 hex digits) of the images and labels: the cache key's view of the data."""
    import hashlib

    h = hashlib.sha256()
    for a in data:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()[:16]


def _features(config, protocol, pct, seed, data, mask, cache, progress, data_id="") -> dict:
    """Train the CNN of this cell (or read its features from the cache) and extract the
    features of every training and test image."""
    import hashlib

    from ..features import CNN_CONFIGS, cache_key, extract_features, train_cnn

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
        "data": data_id,
        "labelled_hash": hashlib.sha256(lab.astype(np.int64).tobytes()).hexdigest()[:16],
        "cnn": asdict(cfg),
        "steps": steps,
        "version": 1,
    }

    def compute():
        t0 = time.perf_counter()
        every = len(lab) == len(y_train)  # no copy of a large image array when all are used
        net = train_cnn(
            config.dataset,
            X_train if every else X_train[lab],
            y_train if every else y_train[lab],
            steps=steps,
            seed=seed,
            device=config.device,
            progress=progress,
        )
        t1 = time.perf_counter()
        F_train = extract_features(net, X_train)
        F_test, logits = extract_features(net, X_test, with_logits=True)
        acc = float(np.mean(logits.argmax(1) == y_test))
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


def label_masks(y_train, fractions, seed: int) -> dict:
    """``percent -> mask`` for one seed; each fraction has its own generator (seeded by
    ``(seed, percent)``), so a fraction's labelled images do not depend on the others run."""
    return {
        pct: sample_labelled(y_train, pct / 100, np.random.default_rng([seed, round(pct * 1000)]))
        for pct in fractions
    }


def run_cells(config: Table3Config, data, progress: bool = False, cache=None) -> list[dict]:
    """Every (seed, protocol, fraction) cell, as a record holding the CNN's figures, the run of
    every setting (``som``: acc, nodes, fit_s) and the baselines.

    First every network is trained (or its features read from the cache): the paper protocol
    trains one network per seed, the honest protocol one per seed and fraction below 100 %
    (at 100 % it is the paper's network and its record a copy marked ``same_as_paper``). Then
    all the Batch SS-SOM fits of all cells run in one pool of ``config.n_jobs`` processes,
    longest first; then the baselines, one cell per process."""
    from ..features import FeatureCache

    if cache is None:
        cache = FeatureCache(config.cache_dir, enabled=config.use_cache)
    settings = settings_for(config)
    _, y_train, _, y_test = data
    full = np.ones(len(y_train), dtype=bool)
    data_id = _data_hash(data)
    cells = []  # (seed, protocol, pct, scaled features id, label mask): the distinct runs
    layout = []  # (index of the cell, protocol) in report order; 100 % appears once per seed
    scaled: dict = {}
    meta: dict = {}
    for seed in range(config.seeds):
        masks = label_masks(y_train, config.fractions, seed)
        masks[100] = full
        for protocol in config.protocols:
            for pct in config.fractions:
                own = protocol == "honest" and pct != 100
                fid = ("honest", pct, seed) if own else ("paper", 100, seed)
                if fid not in scaled:
                    mask = masks[pct] if own else full
                    feats = _features(config, *fid[:2], seed, data, mask, cache, progress, data_id)
                    scaled[fid] = minmax_scale(feats["train"], feats["test"])
                    meta[fid] = {k: v for k, v in feats.items() if k not in ("train", "test")}
                same = [i for i, c in enumerate(cells) if c[0] == seed and c[2] == 100]
                if pct == 100 and same:
                    layout.append((same[0], protocol))
                    continue
                layout.append((len(cells), protocol))
                cells.append((seed, protocol, pct, fid, masks[pct]))
    jobs = {}
    for ci, (_, _, _, fid, mask) in enumerate(cells):
        y_semi = np.where(mask, y_train, -1).astype(np.int64)
        F_train, F_test = scaled[fid]
        for si, s in enumerate(settings):
            jobs[(ci, si)] = (F_train, y_semi, F_test, y_test, s)
    t0 = time.perf_counter()
    fits = run_fits(jobs, n_jobs=config.n_jobs, progress=progress)
    pool_s = time.perf_counter() - t0
    base_args = [
        (*scaled[fid][:1], np.where(mask, y_train, -1).astype(np.int64), scaled[fid][1], y_test)
        for (_, _, _, fid, mask) in cells
    ]
    if config.n_jobs == 1 or len(cells) <= 1:
        bases = [baseline_scores(*a) for a in base_args]
    else:
        from joblib import Parallel, delayed

        bases = Parallel(n_jobs=config.n_jobs)(delayed(baseline_scores)(*a) for a in base_args)
    runs = []
    for ci, (seed, _, pct, fid, mask) in enumerate(cells):
        F_train = scaled[fid][0]
        m = meta[fid]
        runs.append(
            {
                "seed": seed,
                "fraction": pct,
                "n_labelled": int(mask.sum()),
                "classes_labelled": int(np.unique(y_train[mask]).size),
                "feature_dim": int(F_train.shape[1]),
                "cnn_id": m["cnn_id"],
                "cnn_acc": float(m["cnn_acc"]),
                "cnn_steps": int(m["cnn_steps"]),
                "n_cnn_train": int(m["n_cnn_train"]),
                "cnn_train_s": float(m["cnn_train_s"]),
                "extract_s": float(m["extract_s"]),
                "features_from_cache": bool(m["from_cache"]),
                "som": [fits[(ci, si)] for si in range(len(settings))],
                "som_pool_s": pool_s,
                **bases[ci],
            }
        )
    return [
        {
            **runs[ci],
            "protocol": protocol,
            "same_as_paper": protocol == "honest" and runs[ci]["fraction"] == 100,
        }
        for ci, protocol in layout
    ]


# ------------------------------------------------------------------------------ aggregation


def _agg(values) -> dict:
    vals = [float(v) for v in values]
    if not vals:
        return {"mean": None, "std": None}
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else None,
    }


def aggregate(records, config: Table3Config) -> dict:
    """Rows per protocol and fraction, and the targets.

    Row fields: ``protocol``, ``fraction``, ``paper`` (the paper's accuracy or None),
    ``n_labelled`` (mean over seeds), ``classes_labelled`` (min over seeds), ``som_best``
    (mean/std over seeds of the best test accuracy over the settings; ``som_best_settings``:
    the chosen setting of each seed, ``som_best_nodes``), ``som_one`` (the one setting with the
    best accuracy averaged over the protocol's fractions and seeds: ``som_one_setting``),
    ``knn``, ``label_spreading``, ``cnn`` (mean/std over seeds), ``met`` (paper protocol of a
    target data set: ``som_best`` mean >= the paper; else None)."""
    paper = PAPER_ACC[config.dataset]
    out = {"rows": [], "one_setting": {}, "targets": {}}
    for protocol in config.protocols:
        recs = [r for r in records if r["protocol"] == protocol]
        if not recs:
            continue
        n_set = len(recs[0]["som"])
        means = [statistics.fmean(r["som"][i]["acc"] for r in recs) for i in range(n_set)]
        one = max(range(n_set), key=lambda i: (means[i], -i))
        out["one_setting"][protocol] = {"setting": one, "mean_acc": means[one]}
        for pct in config.fractions:
            cells = [r for r in recs if r["fraction"] == pct]
            if not cells:
                continue
            best = [max(range(n_set), key=lambda i, r=r: (r["som"][i]["acc"], -i)) for r in cells]
            row = {
                "protocol": protocol,
                "fraction": pct,
                "paper": paper.get(pct),
                "n_labelled": statistics.fmean(r["n_labelled"] for r in cells),
                "classes_labelled": min(r["classes_labelled"] for r in cells),
                "som_best": _agg(r["som"][b]["acc"] for r, b in zip(cells, best)),
                "som_best_settings": best,
                "som_best_nodes": statistics.fmean(
                    r["som"][b]["nodes"] for r, b in zip(cells, best)
                ),
                "som_one": _agg(r["som"][one]["acc"] for r in cells),
                "som_one_setting": one,
                "som_one_nodes": statistics.fmean(r["som"][one]["nodes"] for r in cells),
                "som_all_mean": _agg(statistics.fmean(x["acc"] for x in r["som"]) for r in cells),
                "knn": _agg(r["knn"] for r in cells),
                "label_spreading": _agg(r["label_spreading"] for r in cells),
                "cnn": _agg(r["cnn_acc"] for r in cells),
                "same_as_paper": bool(cells[0].get("same_as_paper", False)),
            }
            row["met"] = (
                row["som_best"]["mean"] >= row["paper"]
                if protocol == "paper"
                and config.dataset in TARGET_DATASETS
                and row["paper"] is not None
                else None
            )
            out["rows"].append(row)
    checked = [r for r in out["rows"] if r["met"] is not None]
    out["targets"] = {
        "rule": ">= the paper at every fraction (paper protocol, best of the settings)",
        "applies": config.dataset in TARGET_DATASETS and "paper" in config.protocols,
        "n_met": sum(bool(r["met"]) for r in checked),
        "n_checked": len(checked),
        "all_met": bool(checked) and all(r["met"] for r in checked),
    }
    return out


def _timings(records, wall_s: float) -> dict:
    cnns = {}
    for r in records:
        cnns.setdefault((r["cnn_id"], r["seed"]), r)
    fresh = [r for r in cnns.values() if not r["features_from_cache"]]
    unique_cells = {(r["seed"], r["cnn_id"], r["fraction"]): r for r in records}.values()
    return {
        "wall_s": wall_s,
        "n_cnn": len(cnns),
        "n_cnn_trained_now": len(fresh),
        "cnn_train_s": sum(r["cnn_train_s"] for r in fresh),
        "extract_s": sum(r["extract_s"] for r in fresh),
        "n_som_fits": sum(len(r["som"]) for r in unique_cells),
        "som_s": records[0]["som_pool_s"] if records else 0.0,
        "som_fit_s": sum(x["fit_s"] for r in unique_cells for x in r["som"]),
        "baselines_s": sum(r["knn_s"] + r["ls_s"] for r in unique_cells),
    }


# ------------------------------------------------------------------------------ report


def command_line(config: Table3Config, out_dir=None) -> str:
    """The explicit command that re-creates this table (every option spelled out)."""
    parts = ["somlab", "reproduce", "table3", "--dataset", config.dataset]
    if config.quick:
        parts.append("--quick")
    parts += ["--fractions", ",".join(str(f) for f in config.fractions)]
    if tuple(config.protocols) != PROTOCOLS:
        parts += ["--protocols", ",".join(config.protocols)]
    parts += ["--settings", str(config.n_settings), "--lhs-seed", str(config.lhs_seed)]
    if config.n_train is not None:
        parts += ["--n-train", str(config.n_train)]
    if config.n_test is not None:
        parts += ["--n-test", str(config.n_test)]
    if config.seeds != 1:
        parts += ["--seeds", str(config.seeds)]
    if config.cnn_epochs is not None:
        parts += ["--cnn-epochs", str(config.cnn_epochs)]
    if config.max_epochs is not None:
        parts += ["--max-epochs", str(config.max_epochs)]
    if config.max_age_wins is not None:
        parts += ["--max-age-wins", str(config.max_age_wins)]
    parts += ["--device", config.device]
    if config.n_jobs != 1:
        parts += ["--jobs", str(config.n_jobs)]
    if config.threads is not None:
        parts += ["--threads", str(config.threads)]
    if config.data_dir is not None:
        parts += ["--data-dir", str(config.data_dir)]
    if out_dir is not None:
        parts += ["--out-dir", str(out_dir)]
    return shlex.join(parts)


def _f3(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def _paper(v) -> str:
    """The paper's figure as printed there (3 or 4 decimals)."""
    if v is None:
        return "—"
    return f"{v:.3f}" if round(v, 3) == v else f"{v:.4f}"


def _ms(a: dict) -> str:
    if a is None or a.get("mean") is None:
        return "—"
    return _f3(a["mean"]) + (f" ± {a['std']:.3f}" if a.get("std") is not None else "")


def _pct(p) -> str:
    return f"{p:g} %"


_PROTOCOL_TITLES = {
    "paper": "Paper protocol — the CNN is trained on the whole labelled training set; only the "
    "SOM and the baselines see the reduced labels",
    "honest": "Honest protocol — the CNN is trained only on the labelled images (same number "
    "of optimiser steps); nothing sees the other labels",
}


def render_markdown(table: dict) -> str:
    """The report (``table3_<dataset>[_quick].md``) from :func:`reproduce_table3`'s dict."""
    meta, cfg, agg = table["meta"], table["config"], table["summary"]
    t = meta["timings"]
    name = DATASETS[cfg["dataset"]]
    cnn = meta["cnn"]
    lines = [
        f"# Table III — Batch SS-SOM on CNN features, {name}"
        + (" (`--quick` preset)" if cfg["quick"] else ""),
        "",
        "Command:",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- CNN device: {meta['device']}; Batch SS-SOM, 1-NN and LabelSpreading on the CPU "
        f"({cfg['n_jobs']} process(es) for the SOM fits)",
        f"- data: {meta['n_train']} training images, {meta['n_test']} test images"
        + (" (class-stratified subsets)" if cfg["n_train"] or cfg["n_test"] else "")
        + f"; features: {meta['feature_dim']}-d, min-max scaled with the training statistics, "
        "clipped to [0, 1]",
        f"- CNN: Adam lr {cnn['lr']}, batch {cnn['batch_size']}, {cnn['epochs']} epoch(s) on the "
        f"full training set = {meta['cnn_steps']} steps (the honest protocol's networks get the "
        "same number of steps); features in eval mode",
        f"- Batch SS-SOM: {cfg['n_settings']} Latin-hypercube settings over the paper's Table I "
        f"(seed {cfg['lhs_seed']})"
        + (f", epochs capped at {cfg['max_epochs']}" if cfg["max_epochs"] else "")
        + (f", age_wins capped at {cfg['max_age_wins']}" if cfg["max_age_wins"] else "")
        + f", batch 32; seeds: {cfg['seeds']}",
        f"- **wall time {t['wall_s']:.0f} s**: {t['n_cnn_trained_now']} CNN(s) trained now in "
        f"{t['cnn_train_s']:.0f} s ({t['n_cnn'] - t['n_cnn_trained_now']} read from the feature "
        f"cache), feature extraction {t['extract_s']:.0f} s, {t['n_som_fits']} Batch SS-SOM fits "
        f"{t['som_s']:.0f} s, baselines {t['baselines_s']:.0f} s",
        "",
        "Each cell: test accuracy (± std over seeds when there are several). **Best of "
        f"{cfg['n_settings']}**: per fraction the setting with the best *test* accuracy, the "
        'paper\'s selection ("best results over 10 runs"; an oracle). **One setting**: our '
        "honest choice, the single setting with the best test accuracy averaged over all the "
        "fractions of the protocol, used at every fraction (still chosen on the test set, but "
        "once per row instead of once per cell). **1-NN**: nearest neighbour among the "
        "labelled images only. **LabelSpreading**: scikit-learn, kernel knn (7 neighbours), all "
        "training images with -1 for the unlabelled. **CNN**: the network's own classifier. "
        "Labels: unbalanced Bernoulli sampling (each image labelled with probability f, redrawn "
        "until at least ceil(f N) are); the same labelled images for every method.",
        "",
    ]
    tg = agg["targets"]
    if tg["applies"]:
        lines += [
            f"**Target** ({tg['rule']}): met at {tg['n_met']}/{tg['n_checked']} fractions"
            + (" — yes." if tg["all_met"] else " — **no**.")
            + (
                " (Quick preset: fewer images and CNN epochs; not the full protocol.)"
                if cfg["quick"]
                else ""
            ),
            "",
        ]
    for protocol in cfg["protocols"]:
        rows = [r for r in agg["rows"] if r["protocol"] == protocol]
        if not rows:
            continue
        one = agg["one_setting"][protocol]["setting"]
        lines += [
            f"## {_PROTOCOL_TITLES[protocol]}",
            "",
            f"| labelled | n labelled | paper (Batch SS-SOM) | **Batch SS-SOM best of "
            f"{cfg['n_settings']}** | Batch SS-SOM one setting (#{one}) | 1-NN | LabelSpreading "
            "| CNN |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            mark = ""
            if r["met"] is not None:
                mark = " ✓" if r["met"] else " ✗"
            note = " (= paper protocol)" if r["same_as_paper"] and protocol == "honest" else ""
            lines.append(
                f"| {_pct(r['fraction'])}{note} | {r['n_labelled']:.0f} | {_paper(r['paper'])} | "
                f"**{_ms(r['som_best'])}**{mark} (#{','.join(map(str, r['som_best_settings']))},"
                f" {r['som_best_nodes']:.0f} nodes) | {_ms(r['som_one'])} | {_ms(r['knn'])} | "
                f"{_ms(r['label_spreading'])} | {_ms(r['cnn'])} |"
            )
        lines.append("")
    lines += [
        "## Settings (Latin hypercube over Table I)",
        "",
        "| # | at | lp | beta | age_wins | eb | en | s | minwd | epochs | epush | seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(table["settings"]):
        lines.append(
            f"| {i} | {s['at']:.4f} | {s['lp']:.4f} | {s['beta']:.3f} | {s['age_wins']} | "
            f"{s['eb']:.4f} | {s['en']:.3f} | {s['s']:.3f} | {s['minwd']:.3f} | {s['epochs']} | "
            f"{s['epush']:.3f} | {s['random_state']} |"
        )
    lines += [
        "",
        "## The paper's Table III (accuracy, Batch SS-SOM)",
        "",
        "| labelled | " + " | ".join(DATASETS.values()) + " |",
        "|---|---|---|---|",
    ]
    for pct in FRACTIONS:
        lines.append(
            f"| {pct} % | " + " | ".join(_paper(PAPER_ACC[d][pct]) for d in DATASETS) + " |"
        )
    lines.append("")
    if meta.get("plot"):
        lines += [f"![accuracy against the label fraction]({meta['plot']})", ""]
    return "\n".join(lines)


def plot_table(table: dict, path) -> None:
    """Accuracy against the label fraction: one panel per protocol; Batch SS-SOM (best of the
    settings, one setting), 1-NN, LabelSpreading, the CNN and the paper's figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg, agg = table["config"], table["summary"]
    protocols = [p for p in cfg["protocols"] if any(r["protocol"] == p for r in agg["rows"])]
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.2 * len(protocols), 3.8), squeeze=False)
    lines = (
        ("som_best", f"Batch SS-SOM, best of {cfg['n_settings']}", "tab:blue", "-", "o"),
        ("som_one", "Batch SS-SOM, one setting", "tab:blue", ":", "s"),
        ("knn", "1-NN", "tab:orange", "-", "^"),
        ("label_spreading", "LabelSpreading", "tab:green", "-", "v"),
        ("cnn", "CNN classifier", "tab:gray", "--", "x"),
    )
    lows = []
    for ax, protocol in zip(axes.ravel(), protocols):
        rows = [r for r in agg["rows"] if r["protocol"] == protocol]
        xs = list(range(len(rows)))
        for key, label, colour, ls, marker in lines:
            ys = [r[key]["mean"] for r in rows]
            lows += ys
            ax.plot(xs, ys, color=colour, ls=ls, marker=marker, ms=4, label=label)
        px = [(x, r["paper"]) for x, r in zip(xs, rows) if r["paper"] is not None]
        if px:
            ax.plot(*zip(*px), color="k", ls="--", marker="*", ms=6, label="paper (Batch SS-SOM)")
            lows += [v for _, v in px]
        ax.set_xticks(xs, [_pct(r["fraction"]) for r in rows], fontsize=8)
        ax.set_xlabel("labelled training images")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{DATASETS[cfg['dataset']]}: {protocol} protocol", fontsize=10)
        ax.grid(alpha=0.3)
    low = min(v for v in lows if v is not None)
    for ax in axes.ravel():
        ax.set_ylim(max(0.0, low - 0.05), 1.005)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine(device: str) -> tuple[str, str]:
    import os
    import platform

    import torch

    from .. import __version__

    machine = (
        f"{platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, python "
        f"{platform.python_version()}, torch {torch.__version__}, somlab {__version__}"
    )
    dev = device
    if torch.device(device).type == "cuda":
        dev += f" ({torch.cuda.get_device_name(torch.device(device))})"
    return machine, dev


# ------------------------------------------------------------------------------ entry point


def reproduce_table3(
    config: Table3Config,
    out_dir="experiments/results",
    progress: bool = True,
    data=None,
    cache=None,
    plot: bool = True,
) -> dict:
    """Run the pipeline, write ``table3_<dataset>[_quick].md``, ``.json`` and ``.png`` in
    ``out_dir``, return the table dict (``config``, ``meta``, ``summary`` (:func:`aggregate`),
    ``settings``, ``records``, ``paper``).

    ``data``: ``(X_train, y_train, X_test, y_test)`` images to use instead of loading the data
    set (the images must suit the data set's network); ``cache``: a
    :class:`~somlab.features.FeatureCache` (default from the config)."""
    config = config.validated()
    t0 = time.perf_counter()
    if data is None:
        data = load_images(config)
    else:
        data = tuple(np.asarray(a) for a in data)
        if len(data) != 4 or len(data[0]) != len(data[1]) or len(data[2]) != len(data[3]):
            raise DataError("data must be (X_train, y_train, X_test, y_test) of matching lengths")
    import torch

    threads = torch.get_num_threads()
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        records = run_cells(config, data, progress=progress, cache=cache)
        machine, device = _machine(config.device)
    finally:
        torch.set_num_threads(threads)
    wall = time.perf_counter() - t0
    from ..features import CNN_CONFIGS

    out_dir = Path(out_dir)
    stem = config.stem
    cnn = asdict(CNN_CONFIGS[config.dataset])
    if config.cnn_epochs is not None:
        cnn["epochs"] = config.cnn_epochs
    table = {
        "table": "table3",
        "config": asdict(config),
        "meta": {
            "command": command_line(config, out_dir),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine,
            "device": device,
            "n_train": int(len(data[1])),
            "n_test": int(len(data[3])),
            "feature_dim": records[0]["feature_dim"],
            "cnn": cnn,
            "cnn_steps": _cnn_steps(config, len(data[1])),
            "timings": _timings(records, wall),
            "plot": f"{stem}.png" if plot else None,
        },
        "summary": aggregate(records, config),
        "settings": settings_for(config),
        "records": records,
        "paper": {d: {str(k): v for k, v in row.items()} for d, row in PAPER_ACC.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    from .runner import write_report

    write_report(out_dir, stem, table, render_markdown(table))
    if plot:
        plot_table(table, out_dir / f"{stem}.png")
    return table


# ------------------------------------------------------------------------------ CLI


def add_parser(subparsers):
    """Register ``table3`` on the ``somlab reproduce`` sub-parsers; returns the parser."""
    import argparse

    p = subparsers.add_parser(
        "table3",
        help="Batch SS-SOM on CNN features: MNIST, Fashion-MNIST, SVHN (Table III)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Table III of the Batch SS-SOM paper (SPEC.md section 9): train the paper's\n"
        "CNN, extract the features of its last hidden layer (eval mode), min-max scale them,\n"
        "and fit Batch SS-SOM with 10 Latin-hypercube settings at each label fraction\n"
        "(unbalanced Bernoulli sampling), beside 1-NN and LabelSpreading on the same features\n"
        "and labels. Two protocols: 'paper' (the CNN sees every training label, only the SOM\n"
        "sees the reduced ones) and 'honest' (the CNN is trained on the labelled images only).\n"
        "Two selections: best of the settings per fraction (the paper's, an oracle on the test\n"
        "set) and one setting for all fractions. Features are cached (~/.cache/somlab/features).\n"
        "Writes OUT_DIR/table3_<dataset>[_quick].md, .json and .png.",
        epilog="examples:\n"
        "  somlab reproduce table3 --quick                     # MNIST, 5,000 images, CPU\n"
        "  somlab reproduce table3 --dataset fmnist --quick\n"
        "  somlab reproduce table3 --dataset mnist --device cuda --jobs 16   # full protocol\n"
        "  somlab reproduce table3 --dataset svhn --data-dir ~/data/svhn --device cuda\n"
        "  somlab reproduce table3 --fractions 1,10 --settings 3 --protocols paper --json\n"
        "data: MNIST / Fashion-MNIST files in --data-dir, $SOMLAB_DATA or ~/.cache/somlab (else\n"
        "downloaded); SVHN needs the official train_32x32.mat and test_32x32.mat there.",
    )
    p.add_argument(
        "--dataset", default="mnist", help="mnist (default), fmnist (Fashion-MNIST) or svhn"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small preset: 5,000 training / 2,000 test images, 2 CNN epochs, epochs and "
        "age_wins of the settings capped at 5, 1 torch thread (1-2 min on 2 CPU cores); "
        "options given explicitly override it; writes table3_<dataset>_quick.*",
    )
    p.add_argument(
        "--fractions",
        default=None,
        help="comma list of label percents (default 1,5,10,25,50,75,100)",
    )
    p.add_argument("--protocols", default=None, help="comma list of paper, honest (default both)")
    p.add_argument("--settings", type=int, default=None, help="LHS settings (default 10)")
    p.add_argument("--lhs-seed", type=int, default=None, help="seed of the LHS draw (default 0)")
    p.add_argument("--n-train", type=int, default=None, help="stratified training subset")
    p.add_argument("--n-test", type=int, default=None, help="stratified test subset")
    p.add_argument("--seeds", type=int, default=None, help="repetitions 0..N-1 (default 1)")
    p.add_argument(
        "--cnn-epochs",
        type=int,
        default=None,
        help="CNN epochs (default: MNIST 3, fmnist 10, svhn 20)",
    )
    p.add_argument("--max-epochs", type=int, default=None, help="cap every setting's epochs")
    p.add_argument("--max-age-wins", type=int, default=None, help="cap every setting's age_wins")
    p.add_argument("--device", default=None, help="where the CNN trains: cpu (default), cuda")
    p.add_argument(
        "--jobs", type=int, default=None, help="processes for the SOM fits (default 1; -1: all)"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for the CNNs (default: torch's); on a CPU shared with other "
        "jobs, 1 avoids oversubscription and can be several times faster",
    )
    p.add_argument("--data-dir", default=None, help="folder with the data set's files")
    p.add_argument(
        "--cache-dir", default=None, help="feature cache (default ~/.cache/somlab/features)"
    )
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument(
        "--out-dir", default="experiments/results", help="report folder (default %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars (stderr)")
    p.add_argument("--json", action="store_true", help="print the table as JSON on stdout")
    p.set_defaults(func=run_cli)
    return p


def _split(value: str) -> list[str]:
    return [v.strip() for v in str(value).split(",") if v.strip()]


def config_from_args(args) -> Table3Config:
    """A :class:`Table3Config` from the options (``--quick`` fills what is not given)."""
    base = {"dataset": args.dataset, "quick": bool(args.quick)}
    if args.quick:
        base.update(QUICK)
    if args.fractions is not None:
        fr = []
        for f in _split(args.fractions):
            try:
                v = float(f.rstrip("%"))
            except ValueError:
                raise SomlabError(f"bad label fraction {f!r}; use percents in (0, 100]") from None
            fr.append(int(v) if v == int(v) else v)
        base["fractions"] = tuple(fr)
    if args.protocols is not None:
        base["protocols"] = tuple(p.lower() for p in _split(args.protocols))
    for opt, field_name in (
        ("settings", "n_settings"),
        ("lhs_seed", "lhs_seed"),
        ("n_train", "n_train"),
        ("n_test", "n_test"),
        ("seeds", "seeds"),
        ("cnn_epochs", "cnn_epochs"),
        ("max_epochs", "max_epochs"),
        ("max_age_wins", "max_age_wins"),
        ("device", "device"),
        ("jobs", "n_jobs"),
        ("data_dir", "data_dir"),
        ("cache_dir", "cache_dir"),
        ("threads", "threads"),
    ):
        v = getattr(args, opt, None)
        if v is not None:
            base[field_name] = v
    if getattr(args, "no_cache", False):
        base["use_cache"] = False
    return Table3Config(**base).validated()


def summary_line(table: dict, out_dir) -> str:
    cfg, agg = table["config"], table["summary"]
    stem = f"table3_{cfg['dataset']}" + ("_quick" if cfg["quick"] else "")
    best = [r for r in agg["rows"] if r["protocol"] == cfg["protocols"][0]]
    cells = ", ".join(f"{_pct(r['fraction'])} {r['som_best']['mean']:.3f}" for r in best)
    tg = agg["targets"]
    target = f"; target met at {tg['n_met']}/{tg['n_checked']} fractions" if tg["applies"] else ""
    out = Path(out_dir)
    return (
        f"Table III {DATASETS[cfg['dataset']]} ({cfg['protocols'][0]} protocol, best of "
        f"{cfg['n_settings']}): {cells}{target}; {table['meta']['timings']['wall_s']:.0f} s; wrote "
        f"{out / (stem + '.md')}, {out / (stem + '.json')}, {out / (stem + '.png')}"
    )


def run_cli(args) -> None:
    """``somlab reproduce table3``: run, then print a one-line summary or (``--json``) the
    table as JSON."""
    cfg = config_from_args(args)
    table = reproduce_table3(cfg, out_dir=args.out_dir, progress=not args.quiet)
    if args.json:
        from ..cli import json_text

        print(json_text(table))
    else:
        print(summary_line(table, args.out_dir))
