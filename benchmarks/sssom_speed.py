"""Speed of one train + predict run of the relevance maps on the UCI folds (CPU, one thread).

Per model and dataset, over the first ``--settings`` of the authors' parameter file, the
``--folds`` folds and the label fractions ``--fractions`` (the protocol of issue 9's C++ anchor:
settings 0-9, 9 folds, 1/10/100 % labels): median milliseconds of ``fit`` (the whole schedule:
organisation, then convergence), median microseconds per presented sample, median milliseconds
of ``predict`` on the test fold, and the median of fit + predict; the authors' C++ medians and the
issues' targets beside them. LARFDSSOM is unsupervised: it sees the same training rows without
labels, once per fold and setting.

    python benchmarks/sssom_speed.py [--models larfdssom,larfdssom_cpp,sssom,batchsssom]
        [--settings 10] [--folds 9] [--fractions 0.01,0.1,1] [--torch-engine]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from somlab import LARFDSSOM, SSSOM, BatchSSSOM
from somlab.datasets import load_uci, uci_folds
from somlab.experiments.lhs import authors_settings

#: name -> (estimator, fixed parameters); larfdssom_cpp runs the C++ LARFDSSOM's rules
#: (max 70 nodes, squared distance, ... SPEC §4.2), the program behind issue 9's C++ figures
MODELS = {
    "larfdssom": (LARFDSSOM, {}),
    "larfdssom_cpp": (LARFDSSOM, {"compat": "cpp_larfdssom"}),
    "sssom": (SSSOM, {}),
    "batchsssom": (BatchSSSOM, {}),
}
ENGINE = ["auto"]  # --torch-engine: "torch"
DATASETS = ("breast", "diabetes", "glass", "liver", "shape", "vowel")
# median train time per run of the authors' C++ (issue 9: settings 0-9, 9 folds, 1/10/100 %),
# milliseconds; the range is over the label fractions
CPP_MS = {
    "breast": "11",
    "diabetes": "24-33",
    "glass": "5-8",
    "liver": "7-10",
    "shape": "6-9",
    "vowel": "42-64",
}


def cpp_max(ds: str) -> float:
    return float(CPP_MS[ds].split("-")[-1])


def target(model: str, ds: str) -> tuple[str, float]:
    """(label, milliseconds) of the issue's target for one run."""
    if model == "batchsssom":  # issue 4: <= 0.05 s per train + predict run
        return "<= 50 ms fit+predict", 50.0
    return f"<= 2x C++ = {2 * cpp_max(ds):g} ms fit", 2 * cpp_max(ds)  # issue 9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="larfdssom,larfdssom_cpp,sssom,batchsssom")
    ap.add_argument("--settings", type=int, default=10, help="first N of the authors' settings")
    ap.add_argument("--folds", type=int, default=9)
    ap.add_argument("--fractions", default="0.01,0.1,1")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument(
        "--torch-engine", action="store_true", help="use the tensorized torch engine throughout"
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.torch_engine:
        ENGINE[0] = "torch"
    settings = authors_settings()[: args.settings]
    folds = uci_folds()[: args.folds]
    fractions = [float(f) for f in args.fractions.split(",")]
    datasets = args.datasets.split(",")
    print(
        f"torch {torch.__version__}, 1 thread, engine {ENGINE[0]}; "
        f"{len(settings)} authors' settings x {len(folds)} folds x fractions {fractions}"
    )
    # warm-up outside the timings
    b = load_uci("glass", fold=folds[0], labelled=0.1)
    for cls, extra in MODELS.values():
        cls(**settings[0], **extra, engine=ENGINE[0]).fit(b.X_train, b.y_train).predict(b.X_test)

    for name in args.models.split(","):
        cls, extra = MODELS[name]
        unsupervised = name.startswith("larfdssom")
        fracs = [0.0] if unsupervised else fractions
        print(f"\n{cls.__name__} {extra or ''} (label fractions {fracs})")
        print(
            f"{'dataset':<9} {'fit ms':>8} {'us/sample':>9} {'predict ms':>10} "
            f"{'fit+pred ms':>11} {'C++ fit ms':>10}  {'target':<24} met"
        )
        for ds in datasets:
            fit_ms, pred_ms, tot_ms, per_sample = [], [], [], []
            for frac in fracs:
                for fold in folds:
                    b = load_uci(ds, fold=fold, labelled=max(frac, 0.01))
                    y = None if unsupervised else b.y_train
                    for p in settings:
                        t0 = time.perf_counter()
                        m = cls(**p, **extra, engine=ENGINE[0]).fit(b.X_train, y)
                        t1 = time.perf_counter()
                        m.predict(b.X_test)
                        t2 = time.perf_counter()
                        fit_ms.append((t1 - t0) * 1e3)
                        pred_ms.append((t2 - t1) * 1e3)
                        tot_ms.append((t2 - t0) * 1e3)
                        per_sample.append((t1 - t0) * 1e6 / m.history_["presented"])
            label, ms = target(name, ds)
            measured = statistics.median(tot_ms if name == "batchsssom" else fit_ms)
            print(
                f"{ds:<9} {statistics.median(fit_ms):8.1f} {statistics.median(per_sample):9.2f} "
                f"{statistics.median(pred_ms):10.2f} {statistics.median(tot_ms):11.1f} "
                f"{CPP_MS[ds]:>10}  {label:<24} {'yes' if measured <= ms else 'NO'}"
            )


if __name__ == "__main__":
    main()
