"""The ``somlab`` command line: fit, predict, evaluate, plot, datasets, demo.

Every command that reports results takes ``--json`` (machine-readable, on stdout; strict JSON:
NaN and infinities are written as ``null``).  Bad input (missing file, wrong shape, NaN, unknown
option, corrupt model, a full disk) prints one line on stderr and exits with code 2, without a
traceback, and leaves no half-written file behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from ._errors import DataError, SomlabError

#: the sweep backends of experiments.runner.BACKENDS, listed here so that building the parser
#: does not import the experiments (tests/test_cli.py checks the two agree)
SWEEP_BACKENDS = ("joblib", "dask", "ensemble", "compiled")

DATA_HELP = (
    "a data file (.csv, .tsv, .npy, .npz, .arff, .parquet) or a bundled set: "
    "toy:iris, toy:digits, toy:wine, uci:NAME[:FOLD] (e.g. uci:breast:x1_k1, train split), "
    "image:mnist_5000 (bundled), image:mnist, image:fashion_mnist (train split, pixels / 255)"
)


LOAD_DEVICE_HELP = "run the model here (cpu, cuda, cuda:N) instead of the device it was saved with"


def load_data(spec: str, label_column=None, header="auto", comment=None):
    """Resolve a data argument into ``(X, y or None)``; ``header`` and ``comment`` apply to
    text files (see :func:`somlab.datasets.read_csv`)."""
    from . import datasets

    bundled = spec.startswith(("toy:", "uci:", "image:"))
    if bundled and label_column is not None:
        raise DataError(f"--label-column applies to files; {spec} comes with its labels")
    if bundled and (header != "auto" or comment is not None):
        raise DataError(f"--header, --no-header and --comment apply to files, not to {spec}")
    if spec.startswith("toy:"):
        X, y = datasets.load_toy(spec[4:])
        return X, y
    if spec.startswith("uci:"):
        parts = spec.split(":")
        if len(parts) > 3:
            raise DataError(f"bad data argument {spec!r}: use uci:NAME or uci:NAME:FOLD")
        fold = parts[2] if len(parts) > 2 else "x1_k1"
        b = datasets.load_uci(parts[1], fold=fold)
        return b.X_train, b.y_train
    if spec.startswith("image:"):
        return _load_image_spec(spec[6:])
    return datasets.load_file(spec, label_column=label_column, header=header, comment=comment)


def _data(args, spec=None):
    """``load_data`` with the command's --label-column, --header / --no-header, --comment."""
    return load_data(
        args.data if spec is None else spec,
        _label_column(args.label_column),
        header=getattr(args, "header", "auto"),
        comment=getattr(args, "comment", None),
    )


def _load_image_spec(name: str):
    from . import datasets

    if name == "mnist_5000":
        return datasets.load_mnist_subset()
    loaders = {"mnist": datasets.load_mnist, "fashion_mnist": datasets.load_fashion_mnist}
    if name not in loaders:
        raise DataError(f"unknown image set {name!r}: choose mnist_5000, mnist or fashion_mnist")
    b = loaders[name]()
    return datasets.pixel_rows(b.X_train), b.y_train


def _label_column(value):
    if value is None or value == "last":
        return value
    return int(value) if value.lstrip("-").isdigit() else value


def json_safe(value):
    """``value`` with numpy scalars and arrays as Python numbers and lists, and every NaN or
    infinity as None, so that it is strict JSON (``json.dumps(..., allow_nan=False)``)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def json_text(payload) -> str:
    """The one JSON writer of the command line (every ``--json`` output goes through it)."""
    return json.dumps(json_safe(payload), indent=2, allow_nan=False, default=str)


def _emit(args, payload: dict, text: str) -> None:
    if getattr(args, "json", False):
        print(json_text(payload))
    else:
        print(text)


_DEVICE_TYPES = ("cpu", "cuda", "mps")


def _check_device(value):
    """A --device value that can run a map: 'auto', cpu, cuda, cuda:N or mps (not 'meta')."""
    if value is None or value == "auto":
        return value
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in _DEVICE_TYPES:
        raise SomlabError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}")
    return value


def _image_shape(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise argparse.ArgumentTypeError(f"must be ROWSxCOLS, e.g. 28x28, got {text!r}")


# ------------------------------------------------------------------------------- scaling
SCALES = ("minmax", "standard")


def fit_scaler(kind: str, X) -> dict:
    """``somlab fit --scale``'s scaler of ``X``: ``{"kind", "offset", "scale"}`` (float64
    lists, one value per feature; NaN ignored), applied as ``(X - offset) / scale``.  "minmax"
    maps each feature's range to [0, 1], "standard" gives mean 0 and standard deviation 1; a
    constant feature gets scale 1."""
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(all="ignore"):
        if kind == "minmax":
            offset = np.nanmin(X, axis=0)
            scale = np.nanmax(X, axis=0) - offset
        elif kind == "standard":
            offset = np.nanmean(X, axis=0)
            scale = np.nanstd(X, axis=0)
        else:
            raise SomlabError(f"--scale must be one of {', '.join(SCALES)}, got {kind!r}")
    offset = np.where(np.isfinite(offset), offset, 0.0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return {"kind": kind, "offset": offset.tolist(), "scale": scale.tolist()}


def apply_scaler(model, X):
    """``X`` scaled with the scaler ``somlab fit --scale`` stored in the model (``scaler_``),
    or ``X`` itself for a model without one.  The command line applies it before predict,
    evaluate and plot; in Python, call it before ``model.predict`` (the estimator itself
    does not scale)."""
    return scale_with(getattr(model, "scaler_", None), X)


def scale_with(sc: dict | None, X):
    """``(X - offset) / scale`` with a scaler of :func:`fit_scaler` (``X`` when None)."""
    if sc is None:
        return X
    offset = np.asarray(sc["offset"], dtype=np.float64)
    scale = np.asarray(sc["scale"], dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != offset.shape[0]:
        raise DataError(
            f"the model's scaler expects {offset.shape[0]} features, the data has "
            f"{X.shape[1] if X.ndim == 2 else X.shape}"
        )
    return (X - offset) / scale


# ------------------------------------------------------------------------------- commands
def cmd_fit(args) -> None:
    from .som import SOM

    _check_device(args.device)
    X, _ = _data(args)
    som = SOM(
        args.grid,
        topology=args.topology,
        toroidal=args.toroidal,
        distance=args.distance,
        neighbourhood=args.neighbourhood,
        sigma=args.sigma,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        mode=args.mode,
        init=args.init,
        batch_size=args.batch_size,
        missing=args.missing,
        device=args.device,
        random_state=args.seed,
        verbose=not (args.quiet or args.json),
    )
    scaler = None
    if args.scale != "none":
        scaler = fit_scaler(args.scale, X)
        X = scale_with(scaler, X)
    som.fit(X)
    if scaler is not None:
        som.scaler_ = scaler  # stored in the model file; predict, evaluate and plot apply it
    som.save(args.output)
    payload = {
        "model": str(args.output),
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "grid": list(som.weights_.shape[:-1]),  # rows, cols (and layers of a 3-D grid)
        "quantization_error": som.quantization_error_,
        "topographic_error": som.topographic_error_,
        "scale": None if scaler is None else scaler["kind"],
    }
    _emit(
        args,
        payload,
        f"trained a {'x'.join(map(str, payload['grid']))} {args.topology} map on "
        f"{X.shape[0]} samples: QE {som.quantization_error_:.4f}, "
        f"TE {som.topographic_error_:.4f}; saved to {args.output}",
    )


def _load_model(path, device=None):
    from .persistence import load

    return load(path, device=_check_device(device))


def cmd_predict(args) -> None:
    from .persistence import atomic_write_text

    model = _load_model(args.model, args.device)
    X, _ = _data(args)
    X = apply_scaler(model, X)
    pred = model.predict(X)
    if pred.shape[-1] != X.shape[0]:  # pragma: no cover - a model bug, never a silent change
        raise SomlabError(f"{pred.shape[-1]} predictions for {X.shape[0]} rows")
    if args.output:
        rows = pred.T if pred.ndim == 2 else pred[:, None]  # one line per sample, maps across
        text = "\n".join(" ".join(map(str, r)) for r in rows.tolist()) + "\n"
        atomic_write_text(args.output, text, what="the predictions")
    payload = {"n_samples": int(X.shape[0]), "predictions": pred.tolist()}
    rows = pred.T if pred.ndim == 2 else pred[:, None]
    _emit(
        args,
        payload,
        "\n".join(" ".join(map(str, r)) for r in rows.tolist())
        if not args.output
        else f"wrote {X.shape[0]} predictions to {args.output}",
    )


def cmd_evaluate(args) -> None:
    from . import metrics

    model = _load_model(args.model, args.device)
    X, y = _data(args)
    X = apply_scaler(model, X)
    clusters = model.predict(X)
    lab = y >= 0 if y is not None else None

    def report(k=None):
        """The scores of the one map, or of map k of an ensemble."""
        out = {}
        if hasattr(model, "quantization_error"):
            qe, te = model.quantization_error(X), model.topographic_error(X)
            out["quantization_error"] = float(qe if k is None else qe[k])
            out["topographic_error"] = float(te if k is None else te[k])
        c = clusters if k is None else clusters[k]
        if lab is not None and lab.any():
            out.update(metrics.clustering_report(y[lab], c[lab]))
            out["n_labelled"] = int(lab.sum())
        return out

    def lines(res, indent=""):
        return [
            f"{indent}{k:>20}: {v:.4f}" if isinstance(v, float) else f"{indent}{k:>20}: {v}"
            for k, v in res.items()
        ]

    result = {"n_samples": int(X.shape[0])}
    if clusters.ndim == 2:  # an ensemble: K maps, each scored on its own
        maps = [report(k) for k in range(clusters.shape[0])]
        result.update(n_maps=len(maps), maps=maps)
        text = "\n".join(
            lines({"n_samples": result["n_samples"], "n_maps": len(maps)})
            + [ln for k, m in enumerate(maps) for ln in [f"map {k}:", *lines(m, "  ")]]
        )
    else:
        result.update(report())
        text = "\n".join(lines(result))
    if "ce" in result or any("ce" in m for m in result.get("maps", ())):
        text += (
            "\n(ce: accuracy under the best one-to-one matching of clusters to classes, higher is"
            " better; with more clusters than classes, only as many clusters as classes count)"
        )
    _emit(args, result, text)


PLOTS = (
    "umatrix",
    "expanded-umatrix",
    "hits",
    "components",
    "markers",
    "pies",
    "training",
    "prototypes",
)


def cmd_plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from . import plotting

    model = _load_model(args.model, args.device)
    needs_data = args.kind in ("hits", "markers", "pies")
    if needs_data and not args.data:
        raise SomlabError(f"plot {args.kind} needs --data")
    X = y = None
    if args.data:
        X, y = _data(args)
        X = apply_scaler(model, X)
    if args.kind in ("markers", "pies") and (y is None or not (y >= 0).any()):
        raise SomlabError(f"plot {args.kind} needs labelled data (use --label-column)")
    out = args.output or f"{args.kind}.png"
    if args.kind == "umatrix":
        plotting.plot_umatrix(model, path=out)
    elif args.kind == "expanded-umatrix":
        plotting.plot_expanded_umatrix(model, path=out)
    elif args.kind == "hits":
        plotting.plot_hits(model, X, path=out)
    elif args.kind == "components":
        plotting.plot_components(model, path=out)
    elif args.kind == "markers":
        plotting.plot_markers(model, X, y, path=out)
    elif args.kind == "pies":
        plotting.plot_class_pies(model, X, y, path=out)
    elif args.kind == "training":
        plotting.plot_training(model, path=out)
    else:
        shape = args.image_shape
        n_features = getattr(model, "n_features_in_", None)
        if n_features is not None and shape[0] * shape[1] != n_features:
            raise SomlabError(
                f"--image-shape {shape[0]}x{shape[1]} holds {shape[0] * shape[1]} pixels but "
                f"the model has {n_features} features"
            )
        plotting.plot_prototypes(model, image_shape=shape, path=out)
    _emit(args, {"plot": args.kind, "path": str(out)}, f"wrote {out}")


def cmd_datasets(args) -> None:
    from . import datasets

    rows = datasets.list_datasets()
    text = "\n".join(
        f"{r['name']:<12} {r['kind']:<6} {r['n_samples']!s:>7} samples {r['n_features']!s:>4} "
        f"features {r['n_classes']!s:>3} classes {'bundled' if r['bundled'] else 'download'}"
        for r in rows
    )
    _emit(args, {"datasets": rows}, text)


def cmd_demo(args) -> None:
    from .demo import run_demo

    summary = run_demo(Path(args.output), quiet=args.json, device=_check_device(args.device))
    _emit(args, summary, summary["text"])


def cmd_reproduce(args) -> None:
    _check_device(getattr(args, "device", None))
    if args.target == "dcsomrl":
        return cmd_reproduce_dcsomrl(args)
    from .experiments import table2

    if args.jobs == 0:
        raise SomlabError("--jobs must be a positive number of processes or -1 (all cores)")
    cfg = table2.config_from_args(args)
    table = table2.reproduce_table2(
        cfg,
        results=args.results,
        out_dir=args.out_dir,
        n_jobs=args.jobs,
        progress=not args.quiet,
        plot=not args.no_plot,
        backend=args.backend,
        scheduler=args.scheduler,
    )
    stem = table2.output_names(cfg.quick)[0]
    out = Path(args.out_dir)
    met = [t for t in table["targets"] if t["met"]]
    text = (
        f"{table['meta']['n_runs']} runs ({table['meta']['n_run_now']} new, "
        f"{table['meta']['n_failed']} failed); targets met {len(met)}/{len(table['targets'])}; "
        f"wrote {out / (stem + '.md')}, {out / (stem + '.json')}"
        + ("" if args.no_plot else f", {out / (stem + '.png')}")
    )
    _emit(args, table, text)


def cmd_reproduce_dcsomrl(args) -> None:
    from .experiments import dcsomrl

    cfg = dcsomrl.config_from_args(args)
    result = dcsomrl.reproduce_dcsomrl(cfg, out_dir=args.out_dir, progress=not args.quiet)
    d = result["summary"]["rows"]["dcsomrl"]
    stem = f"dcsomrl_{cfg.dataset}" + ("_quick" if cfg.quick else "")
    text = (
        f"DC-SOMRL on {cfg.dataset}: purity {d['purity']['mean']:.3f}, NMI "
        f"{d['nmi']['mean']:.3f}, {d['n_prototypes']['mean']:.1f} prototypes "
        f"({cfg.seeds} seed(s)); wrote {Path(args.out_dir) / (stem + '.md')}"
    )
    _emit(args, result, text)


# ------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit code for usage errors is already 2
        self.print_usage(sys.stderr)
        self.exit(2, f"somlab: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="somlab",
        description="Self-Organizing Maps on PyTorch: train, apply, evaluate and plot maps.",
        epilog="Run 'somlab COMMAND --help' for the options of a command. "
        "Example: somlab fit toy:iris -o iris.somlab --grid 10x10 --topology hexagonal",
    )
    from . import __version__

    p.add_argument("--version", action="version", version=f"somlab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def text_options(sp):
        hd = sp.add_mutually_exclusive_group()
        hd.add_argument(
            "--header",
            dest="header",
            action="store_const",
            const=True,
            default="auto",
            help="the first line of a text file holds column names (even numeric ones such as "
            "400,410,420); default: a first line whose every cell is text is a header",
        )
        hd.add_argument(
            "--no-header",
            dest="header",
            action="store_const",
            const=False,
            help="the first line of a text file is data",
        )
        sp.add_argument(
            "--comment",
            default=None,
            metavar="CHAR",
            help="skip what follows CHAR on a line of a text file (default: no comments, so "
            "a row starting with #N/A is data)",
        )

    def common(sp, data=True, labels=True):
        if data:
            sp.add_argument("data", help=DATA_HELP)
        if labels:
            sp.add_argument(
                "--label-column",
                default=None,
                help="label column of a CSV/TSV file: 'last', an index or a name",
            )
            text_options(sp)
        sp.add_argument("--json", action="store_true", help="print machine-readable JSON")

    f = sub.add_parser(
        "fit",
        help="train a SOM on a data file and save the model",
        description="Train a classic SOM and save it (safetensors + JSON).",
    )
    common(f)
    f.add_argument("-o", "--output", required=True, help="model file to write (.somlab)")
    f.add_argument(
        "--grid",
        default="10x10",
        help="map size ROWSxCOLS, or ROWSxCOLSxLAYERS for a 3-D rectangular grid (default 10x10)",
    )
    f.add_argument("--topology", choices=["rectangular", "hexagonal"], default="rectangular")
    f.add_argument("--toroidal", action="store_true", help="wrap the map around every axis")
    f.add_argument("--mode", choices=["batch", "minibatch", "online"], default="batch")
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="initial neighbourhood radius (default: half the larger map side)",
    )
    f.add_argument("--learning-rate", type=float, default=0.5)
    f.add_argument(
        "--neighbourhood",
        choices=["gaussian", "bubble", "mexican_hat", "triangle"],
        default="gaussian",
    )
    f.add_argument(
        "--distance",
        default="euclidean",
        choices=["euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine"],
    )
    f.add_argument("--init", choices=["pca", "random", "sample"], default="pca")
    f.add_argument("--batch-size", type=int, default=256)
    f.add_argument(
        "--missing",
        choices=["error", "ignore"],
        default="error",
        help="'ignore' leaves NaN features out of distances and updates",
    )
    f.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument(
        "--scale",
        choices=("none", *SCALES),
        default="none",
        help="scale each feature before training: minmax to [0, 1] or standard (mean 0, std "
        "1); the scaler is stored in the model and predict, evaluate and plot apply it "
        "(QE and TE are then in scaled units)",
    )
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_fit)

    pr = sub.add_parser("predict", help="best-matching unit (or class) of each sample")
    pr.add_argument("model", help="a model file written by 'somlab fit'")
    common(pr)
    pr.add_argument("--device", default=None, help=LOAD_DEVICE_HELP)
    pr.add_argument("-o", "--output", default=None, help="write predictions to this text file")
    pr.set_defaults(func=cmd_predict)

    ev = sub.add_parser("evaluate", help="QE, TE and, with labels, purity, NMI, ARI and CE")
    ev.add_argument("model", help="a model file written by 'somlab fit'")
    common(ev)
    ev.add_argument("--device", default=None, help=LOAD_DEVICE_HELP)
    ev.set_defaults(func=cmd_evaluate)

    pl = sub.add_parser("plot", help="draw a map plot to a PNG file")
    pl.add_argument("model", help="a model file written by 'somlab fit'")
    pl.add_argument("kind", choices=PLOTS)
    pl.add_argument("--data", default=None, help=DATA_HELP + " (needed by hits, markers, pies)")
    pl.add_argument("--label-column", default=None)
    text_options(pl)
    pl.add_argument(
        "--image-shape",
        default=(28, 28),
        type=_image_shape,
        help="prototype image shape ROWSxCOLS, e.g. 8x8 (default 28x28)",
    )
    pl.add_argument("-o", "--output", default=None, help="PNG to write (default KIND.png)")
    pl.add_argument("--device", default=None, help=LOAD_DEVICE_HELP)
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_plot)

    ds = sub.add_parser("datasets", help="list bundled and downloadable data sets")
    ds.add_argument("--json", action="store_true")
    ds.set_defaults(func=cmd_datasets)

    de = sub.add_parser("demo", help="train on bundled data; write PNGs and report.md")
    de.add_argument("-o", "--output", default="somlab-demo", help="output folder")
    de.add_argument("--device", default="cpu")
    de.add_argument("--json", action="store_true")
    de.set_defaults(func=cmd_demo)

    rp = sub.add_parser(
        "reproduce",
        help="reproduce the papers' tables (table2: UCI; table3: CNN features; dcsomrl)",
        description="Reproduce a table of the papers; runs are resumable.",
    )
    rsub = rp.add_subparsers(dest="target", required=True, parser_class=_Parser)
    t2 = rsub.add_parser(
        "table2",
        help="UCI clustering error of the Batch SS-SOM paper (Table II)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Table II of the Batch SS-SOM paper (SPEC.md section 9): every model x\n"
        "dataset x label fraction x fold x parameter setting is fitted on the train split\n"
        "and scored on the test split (CE with noise in no cluster and with every sample\n"
        "assigned, accuracy, nodes). Each finished run is appended to a JSONL file; a rerun\n"
        "skips what is done. Writes OUT_DIR/table2.md (our numbers beside the paper's, the\n"
        "quality targets), table2.json and table2.png.",
        epilog="examples:\n"
        "  somlab reproduce table2 --quick              # about 35 s on 2 cores\n"
        "  somlab reproduce table2                      # full protocol, 500 LHS settings\n"
        "  somlab reproduce table2 --settings authors --models batchsssom,sssom\n"
        "  somlab reproduce table2 --datasets glass --fractions 0,100 --jobs 2 --json\n"
        "  somlab reproduce table2 --backend dask --scheduler tcp://head:8786   # a cluster",
    )
    t2.add_argument(
        "--quick",
        action="store_true",
        help="small preset (breast, glass, shape; 0,10,100 %%; folds x1_k1,x2_k1,x3_k1; 8 LHS "
        "settings; epochs and age_wins capped at 5; about 35 s on 2 cores); options given "
        "explicitly override it; writes table2_quick.* and its own results file",
    )
    t2.add_argument(
        "--settings",
        default=None,
        help="N Latin-hypercube settings over the paper's Table I, or 'authors' for the "
        "authors' 500 (sssom_0.csv) (default 500)",
    )
    t2.add_argument("--lhs-seed", type=int, default=None, help="seed of the LHS draw (default 0)")
    t2.add_argument(
        "--models",
        "--model",
        default=None,
        help="comma list of larfdssom, sssom, batchsssom (default batchsssom); "
        "larfdssom runs at 0 %% only",
    )
    t2.add_argument(
        "--datasets",
        default=None,
        help="comma list (default breast,diabetes,glass,liver,shape,vowel)",
    )
    t2.add_argument("--with-pendigits", action="store_true", help="add pendigits (7494 samples)")
    t2.add_argument(
        "--fractions",
        default=None,
        help="comma list of label percents from 0,1,5,10,25,50,75,100 (default all)",
    )
    t2.add_argument(
        "--folds",
        default=None,
        help="comma list of x<r>_k<k> names or indices 0..8 (default all 9)",
    )
    t2.add_argument(
        "--max-epochs", type=int, default=None, help="cap every setting's epochs (default none)"
    )
    t2.add_argument(
        "--max-age-wins",
        type=int,
        default=None,
        help="cap every setting's age_wins (x N samples per window; default none)",
    )
    t2.add_argument(
        "--compat",
        default=None,
        help="a SPEC.md preset for every model: reference, cpp_sssom or cpp_larfdssom "
        "(e.g. the C++ LARFDSSOM's rules)",
    )
    t2.add_argument(
        "--param",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="fix an estimator parameter or flag for every run, e.g. --param count_unit=batch "
        "(repeatable; enters each run's key)",
    )
    t2.add_argument("--device", default=None, help="estimator device: cpu (default), cuda, cuda:N")
    t2.add_argument(
        "--jobs",
        type=int,
        default=-1,
        help="worker processes on this machine (default -1: one per core); with --backend dask "
        "and no --scheduler, the local Dask cluster's workers",
    )
    t2.add_argument(
        "--backend",
        choices=SWEEP_BACKENDS,
        default="joblib",
        help="where the runs go: joblib processes (default), a Dask cluster (needs "
        'pip install "somlab[cluster]"), "ensemble": the Batch SS-SOM settings of each '
        "split trained together as one tensor program in this process (for a GPU, with "
        '--device cuda), or "compiled": the relevance-map settings of each split trained '
        "together by the compiled CPU engine on threads in this process; this process "
        "alone writes the results file, so a sweep begun with one backend resumes with "
        "another and gives the same records",
    )
    t2.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="with --backend dask: a running Dask scheduler, e.g. tcp://host:8786, whose "
        "workers have somlab installed (start them with --nthreads 1); default: a local "
        "cluster of --jobs one-thread processes, closed at the end",
    )
    t2.add_argument(
        "--results",
        default=None,
        help="JSONL file of finished runs (default OUT_DIR/table2_runs.jsonl)",
    )
    t2.add_argument(
        "--out-dir", default="experiments/results", help="report folder (default %(default)s)"
    )
    t2.add_argument("--no-plot", action="store_true", help="do not draw table2.png")
    t2.add_argument("--quiet", action="store_true", help="no progress bar (stderr)")
    t2.add_argument("--json", action="store_true", help="print the table as JSON on stdout")
    t2.set_defaults(func=cmd_reproduce)

    dc = rsub.add_parser(
        "dcsomrl",
        help="DC-SOMRL deep clustering on MNIST / Fashion-MNIST (seeds 001, 002)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train DC-SOMRL (autoencoder + SOMRL layer) on the train set, cluster the\n"
        "test set; purity, NMI and prototypes beside the papers' numbers and beside k-means\n"
        "on the pixels and on the pretrained codes (same number of clusters), mean +- std\n"
        "over seeds. Writes OUT_DIR/dcsomrl_<dataset>[_quick].md and .json.",
        epilog="examples:\n"
        "  somlab reproduce dcsomrl --dataset mnist --quick      # 5,000 images, CPU\n"
        "  somlab reproduce dcsomrl --dataset fmnist --device cuda\n"
        "  somlab reproduce dcsomrl --quick --epochs 60 --param repel=0   # a variant\n"
        "data: MNIST/Fashion-MNIST files in --data-dir, $SOMLAB_DATA or ~/.cache/somlab,\n"
        "else downloaded (see somlab.datasets.load_mnist).",
    )
    dc.add_argument("--dataset", choices=["mnist", "fmnist"], default="mnist")
    dc.add_argument(
        "--quick",
        action="store_true",
        help="5,000 training images, 20 pretraining + 50 joint epochs (1,000 iterations), one seed",
    )
    dc.add_argument(
        "--preset",
        default=None,
        help="default, mnist, fmnist or mnist002 (default: default, the library's own preset)",
    )
    dc.add_argument("--n-train", type=int, default=None, help="train on a stratified subset")
    dc.add_argument("--pretrain-epochs", type=int, default=None, help="default 50")
    dc.add_argument("--epochs", type=int, default=None, help="joint epochs (default 30)")
    dc.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 10)")
    dc.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N")
    dc.add_argument("--data-dir", default=None, help="folder with mnist.npz / fashion_mnist.npz")
    dc.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a DCSOMRL parameter on top of the preset, e.g. --param repel=0 --param at=0.99 "
        "(repeatable; written in the report)",
    )
    dc.add_argument(
        "--out-dir", default="experiments/results", help="report folder (default %(default)s)"
    )
    dc.add_argument("--quiet", action="store_true", help="no progress bars")
    dc.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    dc.set_defaults(func=cmd_reproduce)

    from .experiments import table3 as _table3

    _table3.add_parser(rsub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except BrokenPipeError:  # `somlab ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (SomlabError, ValueError, OSError, KeyError, NotImplementedError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"somlab: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("somlab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
