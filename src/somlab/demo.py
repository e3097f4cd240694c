"""``somlab demo``: train maps on bundled data, write PNGs and a report.md, return a summary."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _classic_section(out: Path, device: str, quiet: bool):
    import matplotlib

    matplotlib.use("Agg")
    from . import metrics, plotting
    from .datasets import load_toy
    from .som import SOM

    X, y = load_toy("iris")
    rows = []
    figures = []
    results = {}
    for topology in ("rectangular", "hexagonal"):
        t0 = time.perf_counter()
        som = SOM(
            (10, 10), topology=topology, epochs=20, random_state=0, device=device, verbose=not quiet
        ).fit(X)
        secs = time.perf_counter() - t0
        clusters = som.predict(X)
        rep = metrics.clustering_report(y, clusters)
        results[f"iris_{topology}"] = {
            "quantization_error": som.quantization_error_,
            "topographic_error": som.topographic_error_,
            "purity": rep["purity"],
            "nmi": rep["nmi"],
            "nodes_hit": int(np.unique(clusters).size),
            "seconds": secs,
        }
        rows.append(
            f"| iris | 10x10 {topology} | {som.quantization_error_:.4f} | "
            f"{som.topographic_error_:.4f} | {rep['purity']:.3f} | {rep['nmi']:.3f} | {secs:.2f} |"
        )
        tag = topology[:4]
        for name, fn in (
            (f"umatrix_{tag}.png", lambda p, s=som: plotting.plot_umatrix(s, path=p)),
            (f"markers_{tag}.png", lambda p, s=som: plotting.plot_markers(s, X, y, path=p)),
            (f"hits_{tag}.png", lambda p, s=som: plotting.plot_hits(s, X, path=p)),
            (f"pies_{tag}.png", lambda p, s=som: plotting.plot_class_pies(s, X, y, path=p)),
        ):
            fn(out / name)
            figures.append(name)
        if topology == "rectangular":
            plotting.plot_expanded_umatrix(som, path=out / "expanded_umatrix.png")
            plotting.plot_components(
                som,
                names=["sepal length", "sepal width", "petal length", "petal width"],
                path=out / "components.png",
            )
            plotting.plot_training(som, path=out / "training.png")
            figures += ["expanded_umatrix.png", "components.png", "training.png"]
        _close_all()

    Xd, yd = load_toy("digits")
    t0 = time.perf_counter()
    som = SOM((12, 12), epochs=15, random_state=0, device=device, verbose=not quiet).fit(Xd)
    secs = time.perf_counter() - t0
    rep = metrics.clustering_report(yd, som.predict(Xd))
    results["digits_rectangular"] = {
        "quantization_error": som.quantization_error_,
        "topographic_error": som.topographic_error_,
        "purity": rep["purity"],
        "nmi": rep["nmi"],
        "seconds": secs,
    }
    rows.append(
        f"| digits | 12x12 rectangular | {som.quantization_error_:.4f} | "
        f"{som.topographic_error_:.4f} | {rep['purity']:.3f} | {rep['nmi']:.3f} | {secs:.2f} |"
    )
    plotting.plot_prototypes(som, image_shape=(8, 8), path=out / "prototypes_digits.png")
    figures.append("prototypes_digits.png")
    _close_all()

    md = [
        "## Classic SOM (batch mode, PCA init, gaussian neighbourhood)",
        "",
        "Purity and NMI score each map node as a cluster (labels are used only for scoring).",
        "",
        "| data | map | QE | TE | purity | NMI | seconds |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *[f"![{f}]({f})" for f in figures],
        "",
    ]
    return results, md


def _relevance_section(out: Path, device: str):
    """Batch SS-SOM on a bundled UCI split with 10 % of the training labels, beside 1-NN on the
    labelled rows, LabelSpreading and the majority class (same split)."""
    import warnings

    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.semi_supervised import LabelSpreading

    from . import metrics, plotting
    from .datasets import load_uci
    from .relevance import BatchSSSOM

    b = load_uci("diabetes", fold="x1_k1", labelled=0.10)
    lab = b.y_train >= 0
    t0 = time.perf_counter()
    model = BatchSSSOM(random_state=0, device=device).fit(b.X_train, b.y_train)
    secs = time.perf_counter() - t0
    acc = metrics.accuracy(b.y_test, model.predict(b.X_test))
    ce = metrics.clustering_error(b.y_test, model.predict_cluster(b.X_test))
    names = ["pregnant", "glucose", "pressure", "triceps", "insulin", "bmi", "pedigree", "age"]
    plotting.plot_relevances(model, feature_names=names, path=out / "relevances_diabetes.png")
    _close_all()
    baselines = {}
    t0 = time.perf_counter()
    nn = KNeighborsClassifier(1).fit(b.X_train[lab], b.y_train[lab])
    baselines["1-NN (labelled rows)"] = (
        metrics.accuracy(b.y_test, nn.predict(b.X_test)),
        time.perf_counter() - t0,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ls = LabelSpreading(kernel="knn", n_neighbors=7).fit(b.X_train, b.y_train)
    baselines["LabelSpreading (knn, 7)"] = (
        metrics.accuracy(b.y_test, ls.predict(b.X_test)),
        time.perf_counter() - t0,
    )
    values, counts = np.unique(b.y_train[lab], return_counts=True)
    majority = values[counts.argmax()]
    baselines["majority class"] = (float(np.mean(b.y_test == majority)), 0.0)
    n_lab = int(lab.sum())
    result = {
        "accuracy": acc,
        "ce": ce,
        "n_nodes": model.n_nodes_,
        "seconds": secs,
        "labelled": n_lab,
        "n_train": len(b.y_train),
        "decision": model.decision_,
        "baselines": {k: v[0] for k, v in baselines.items()},
    }
    md = [
        "## Batch SS-SOM (semi-supervised, relevance learning)",
        "",
        f"UCI diabetes, fold x1_k1: {n_lab} of {len(b.y_train)} training samples labelled "
        f"(10 %), default parameters (decision rule: {model.decision_!r}), "
        "evaluated on the test fold beside the simple baselines on the same split.",
        "",
        "| model | accuracy | CE | nodes | seconds |",
        "|---|---|---|---|---|",
        f"| BatchSSSOM() | {acc:.3f} | {ce:.3f} | {model.n_nodes_} | {secs:.2f} |",
        *[f"| {k} | {a:.3f} | – | – | {s:.2f} |" for k, (a, s) in baselines.items()],
        "",
        "![relevances](relevances_diabetes.png)",
        "",
    ]
    return {"diabetes_batch_sssom": result}, md


def _close_all():
    import matplotlib.pyplot as plt

    plt.close("all")


def run_demo(out: Path, quiet: bool = False, device: str = "cpu") -> dict:
    """Run every demo section, write ``out/report.md`` and return a summary dict."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, md = _classic_section(out, device, quiet)
    rel_results, rel_md = _relevance_section(out, device)
    md += rel_md
    report = ["# somlab demo report", "", "Made by `somlab demo`.", "", *md]
    (out / "report.md").write_text("\n".join(report))
    lines = [f"somlab demo: wrote {out / 'report.md'} and {len(list(out.glob('*.png')))} plots"]
    for key, r in results.items():
        lines.append(
            f"  {key:<22} QE {r['quantization_error']:.4f}  TE {r['topographic_error']:.4f}  "
            f"purity {r['purity']:.3f}  NMI {r['nmi']:.3f}"
        )
    for key, r in rel_results.items():
        lines.append(
            f"  {key:<22} accuracy {r['accuracy']:.3f}  CE {r['ce']:.3f}  nodes {r['n_nodes']}"
            f"  ({r['labelled']} of {r['n_train']} labels)"
        )
        for name, a in r["baselines"].items():
            lines.append(f"  {'  vs ' + name:<22} accuracy {a:.3f}")
    results.update(rel_results)
    return {"output": str(out), "results": results, "text": "\n".join(lines)}
