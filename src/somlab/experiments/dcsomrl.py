"""``somlab reproduce dcsomrl``: DC-SOMRL on MNIST / Fashion-MNIST (seeds 001 and 002).

Protocol (SPEC.md §7): train on the train set (``--quick``: a class-stratified subset), encode the
test set, cluster = SOMRL winner; purity, NMI (arithmetic and geometric) and the number of
prototypes, mean ± sample std over seeds, beside the papers' numbers and beside two baselines
computed in the same run on the same data: k-means on the pixels and k-means on the pretrained
latent codes, each with as many clusters as DC-SOMRL has prototypes.
"""

from __future__ import annotations

import datetime as _dt
import math
import shlex
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._errors import SomlabError

#: The papers' figures (purity, NMI arithmetic) on the test sets.
PAPER = {
    "mnist": [
        ("DC-SOMRL, seed 001", 0.884, 0.521),
        ("DC-SOMRL, seed 002 (<= 64 prototypes)", 0.921, 0.615),
        ("DESOM (published)", 0.939, 0.657),
    ],
    "fmnist": [
        ("DC-SOMRL, seed 001", 0.679, 0.404),
        ("DESOM (published)", 0.752, 0.538),
    ],
}
#: Issue 5's targets: purity, NMI and (MNIST) at most 64 prototypes.
TARGETS = {
    "mnist": dict(purity=0.921, nmi=0.615, max_prototypes=64),
    "fmnist": dict(purity=0.70, nmi=0.50, max_prototypes=None),
}
DEFAULT_PRESET = {"mnist": "mnist002", "fmnist": "fmnist"}
#: ``--quick``: 5,000 training images, fewer epochs, one seed (a few minutes on a laptop CPU).
QUICK = dict(n_train=5000, pretrain_epochs=20, epochs=10, seeds=1)


@dataclass(frozen=True)
class DCSOMRLConfig:
    dataset: str = "mnist"
    preset: str | None = None
    n_train: int | None = None  # None: the whole train set
    pretrain_epochs: int = 50
    epochs: int = 30
    seeds: int = 10
    device: str = "cpu"
    data_dir: str | None = None
    quick: bool = False
    #: DCSOMRL parameters on top of the preset (``--param NAME=VALUE``), as sorted pairs
    params: tuple = ()

    def validated(self) -> DCSOMRLConfig:
        from ..deep import PRESETS

        if self.dataset not in PAPER:
            raise SomlabError(f"unknown dataset {self.dataset!r}; choose mnist or fmnist")
        if self.preset is not None and self.preset not in PRESETS:
            raise SomlabError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if self.seeds < 1:
            raise SomlabError(f"--seeds must be >= 1, got {self.seeds}")
        if self.n_train is not None and self.n_train < 10:
            raise SomlabError(f"--n-train must be >= 10, got {self.n_train}")
        if self.epochs < 0 or self.pretrain_epochs < 0:
            raise SomlabError("--epochs and --pretrain-epochs must be >= 0")
        from ..deep.dcsomrl import DCSOMRL

        allowed = set(DCSOMRL._get_param_names()) - {"preset", "pretrain_epochs", "epochs",
                                                 "keep_pretrained", "device", "random_state",
                                                 "verbose"}  # fmt: skip
        for name, _ in self.params:
            if name not in allowed:
                raise SomlabError(
                    f"--param {name}: not a DCSOMRL parameter that --param may set; choose "
                    f"from {', '.join(sorted(allowed))}"
                )
        return self

    @property
    def preset_name(self) -> str:
        return self.preset or DEFAULT_PRESET[self.dataset]


def load_data(config: DCSOMRLConfig):
    """``(X_train, y_train, X_test, y_test)``, pixels / 255 as float32 rows of 784."""
    from ..datasets import load_fashion_mnist, load_mnist, pixel_rows

    loader = load_mnist if config.dataset == "mnist" else load_fashion_mnist
    b = loader(data_dir=config.data_dir)
    X_train, X_test = pixel_rows(b.X_train), pixel_rows(b.X_test)
    y_train, y_test = np.asarray(b.y_train), np.asarray(b.y_test)
    if config.n_train is not None and config.n_train < len(X_train):
        from sklearn.model_selection import train_test_split

        X_train, _, y_train, _ = train_test_split(
            X_train, y_train, train_size=config.n_train, stratify=y_train, random_state=0
        )
    return X_train, y_train, X_test, y_test


def _scores(y, clusters) -> dict:
    from ..metrics import nmi, purity

    return {
        "purity": purity(y, clusters),
        "nmi": nmi(y, clusters),
        "nmi_geometric": nmi(y, clusters, average="geometric"),
    }


def _kmeans(X_train, X_test, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=max(1, k), n_init=3, random_state=seed).fit(X_train)
    return km.predict(X_test)


def run_seed(config: DCSOMRLConfig, data, seed: int, verbose: bool = False) -> dict:
    """One DC-SOMRL fit and its baselines; the record of that seed."""
    from ..deep import DCSOMRL

    X_train, _, X_test, y_test = data
    t0 = time.perf_counter()
    est = DCSOMRL(
        config.preset_name,
        pretrain_epochs=config.pretrain_epochs,
        epochs=config.epochs,
        keep_pretrained=True,
        device=config.device,
        random_state=seed,
        verbose=verbose,
        **dict(config.params),
    ).fit(X_train)
    fit_s = time.perf_counter() - t0
    k = est.n_prototypes_
    rec = {"seed": seed, "n_prototypes": k, "fit_s": fit_s, "history": est.history_}
    rec["dcsomrl"] = _scores(y_test, est.predict(X_test))
    t1 = time.perf_counter()
    rec["kmeans_pixels"] = _scores(y_test, _kmeans(X_train, X_test, k, seed))
    codes_train = est.transform(X_train, pretrained=True)
    codes_test = est.transform(X_test, pretrained=True)
    rec["kmeans_pretrained_codes"] = _scores(y_test, _kmeans(codes_train, codes_test, k, seed))
    rec["baselines_s"] = time.perf_counter() - t1
    return rec


def _agg(values):
    vals = [float(v) for v in values]
    return {
        "mean": statistics.fmean(vals),
        "std": statistics.stdev(vals) if len(vals) > 1 else None,
    }


def summarize(records: list[dict], config: DCSOMRLConfig) -> dict:
    rows = {}
    for method in ("dcsomrl", "kmeans_pixels", "kmeans_pretrained_codes"):
        rows[method] = {
            m: _agg(r[method][m] for r in records) for m in ("purity", "nmi", "nmi_geometric")
        }
    rows["dcsomrl"]["n_prototypes"] = _agg(r["n_prototypes"] for r in records)
    t = TARGETS[config.dataset]
    d = rows["dcsomrl"]
    met = {
        "purity": round(d["purity"]["mean"], 3) >= t["purity"],
        "nmi": round(d["nmi"]["mean"], 3) >= t["nmi"],
    }
    if t["max_prototypes"] is not None:
        met["prototypes"] = max(r["n_prototypes"] for r in records) <= t["max_prototypes"]
    return {"rows": rows, "targets": t, "met": met}


def command_line(config: DCSOMRLConfig, out_dir) -> str:
    parts = ["somlab", "reproduce", "dcsomrl", "--dataset", config.dataset]
    if config.quick:
        parts.append("--quick")
    parts += ["--preset", config.preset_name, "--seeds", str(config.seeds)]
    if config.n_train is not None:
        parts += ["--n-train", str(config.n_train)]
    parts += ["--pretrain-epochs", str(config.pretrain_epochs), "--epochs", str(config.epochs)]
    if config.device != "cpu":
        parts += ["--device", config.device]
    for name, value in config.params:
        parts += ["--param", f"{name}={value}"]
    parts += ["--out-dir", str(out_dir)]
    return shlex.join(parts)


def _ms(a: dict) -> str:
    s = f"{a['mean']:.3f}"
    return s + (f" ± {a['std']:.3f}" if a.get("std") is not None else "")


def _joint(cfg: dict, meta: dict) -> str:
    """The joint training's length: epochs, or the iterations a preset's max_iter allows."""
    from ..deep import PRESETS

    params = dict(cfg.get("params") or ())
    max_iter = params.get("max_iter", PRESETS.get(cfg["preset"], {}).get("max_iter"))
    per_epoch = math.ceil(int(meta["n_train"]) / 256)
    iters = cfg["epochs"] * per_epoch
    if max_iter is None or max_iter >= iters:
        return f"{cfg['epochs']} joint epochs ({iters} iterations)"
    return f"{max_iter} joint iterations ({max_iter / per_epoch:.1f} epochs; max_iter)"


def render_markdown(result: dict) -> str:
    meta, cfg, summ = result["meta"], result["config"], result["summary"]
    rows = summ["rows"]
    name = {"mnist": "MNIST", "fmnist": "Fashion-MNIST"}[cfg["dataset"]]
    lines = [
        f"# DC-SOMRL on {name}" + (" (quick preset)" if cfg["quick"] else ""),
        "",
        "Command:",
        "",
        "```bash",
        meta["command"],
        "```",
        "",
        f"- date: {meta['date']}; machine: {meta['machine']}; device: {meta['device']}",
        f"- data: {meta['n_train']} training images, {meta['n_test']} test images (scores on "
        "the test set)",
        f"- preset {cfg['preset']}, {cfg['pretrain_epochs']} pretraining epochs, "
        f"{_joint(cfg, meta)}, batch 256, {cfg['seeds']} seed(s)"
        + "".join(f", {n}={v}" for n, v in cfg.get("params") or ()),
        f"- time per seed: fit {meta['fit_s_mean']:.1f} s (mean), baselines "
        f"{meta['baselines_s_mean']:.1f} s; wall time {meta['wall_s']:.1f} s",
        "",
        "| method | purity | NMI (arithmetic) | NMI (geometric) | clusters |",
        "|---|---|---|---|---|",
    ]
    kp = rows["dcsomrl"]["n_prototypes"]
    k = f"{kp['mean']:.1f}" + (f" ± {kp['std']:.1f}" if kp.get("std") is not None else "")
    for key, label in (
        ("dcsomrl", "**somlab DC-SOMRL**"),
        ("kmeans_pretrained_codes", "k-means on the pretrained codes (same k)"),
        ("kmeans_pixels", "k-means on the pixels (same k)"),
    ):
        r = rows[key]
        lines.append(
            f"| {label} | {_ms(r['purity'])} | {_ms(r['nmi'])} | {_ms(r['nmi_geometric'])} | {k} |"
        )
    for label, pur, nm in PAPER[cfg["dataset"]]:
        lines.append(f"| {label} (paper) | {pur:.3f} | {nm:.3f} | — | — |")
    t, met = summ["targets"], summ["met"]
    yes = {True: "yes", False: "**no**"}
    lines += [
        "",
        "Targets (issue 5): purity >= "
        f"{t['purity']:.3f} ({yes[met['purity']]}), NMI >= {t['nmi']:.3f} "
        f"({yes[met['nmi']]})"
        + (
            f", at most {t['max_prototypes']} prototypes ({yes[met['prototypes']]})"
            if "prototypes" in met
            else ""
        )
        + (
            ". Quick runs are not comparable with the targets (5,000 images, fewer epochs)."
            if cfg["quick"]
            else "."
        ),  # fmt: skip
        "",
    ]
    return "\n".join(lines)


def reproduce_dcsomrl(config: DCSOMRLConfig, out_dir="experiments/results", progress=True):
    """Run every seed, write ``dcsomrl_<dataset>[_quick].md`` and ``.json``; return the dict."""
    import platform

    import torch

    config = config.validated()
    t0 = time.perf_counter()
    data = load_data(config)
    records = []
    for seed in range(config.seeds):
        records.append(run_seed(config, data, seed, verbose=progress))
    out_dir = Path(out_dir)
    stem = f"dcsomrl_{config.dataset}" + ("_quick" if config.quick else "")
    device = config.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device += f" ({torch.cuda.get_device_name(0)})"
    result = {
        "table": "dcsomrl",
        "config": {**asdict(config), "preset": config.preset_name},
        "meta": {
            "command": command_line(config, out_dir),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{platform.platform()}, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}",
            "device": device,
            "n_train": int(len(data[0])),
            "n_test": int(len(data[2])),
            "fit_s_mean": statistics.fmean(r["fit_s"] for r in records),
            "baselines_s_mean": statistics.fmean(r["baselines_s"] for r in records),
            "wall_s": time.perf_counter() - t0,
        },
        "summary": summarize(records, config),
        "runs": records,
        "paper": {k: [list(v) for v in rows] for k, rows in PAPER.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    from .runner import write_report

    write_report(out_dir, stem, result, render_markdown(result))
    return result


def config_from_args(args) -> DCSOMRLConfig:
    cfg = DCSOMRLConfig(dataset=args.dataset, quick=bool(args.quick))
    if args.quick:
        cfg = DCSOMRLConfig(dataset=args.dataset, quick=True, **QUICK)
    changes = {
        k: getattr(args, k)
        for k in ("preset", "n_train", "pretrain_epochs", "epochs", "seeds", "device", "data_dir")
        if getattr(args, k, None) is not None
    }
    from .table2 import parse_params

    params = parse_params(getattr(args, "param", None))
    if params:
        changes["params"] = tuple(sorted(params.items()))
    return DCSOMRLConfig(**{**asdict(cfg), **changes}).validated()


__all__ = [
    "DCSOMRLConfig",
    "PAPER",
    "QUICK",
    "TARGETS",
    "config_from_args",
    "reproduce_dcsomrl",
    "render_markdown",
    "summarize",
]
