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
        [--sweep glass] [--sweep-settings 500] [--sweep-threads 2] [--skip-runs]

Also printed: the first fit of each map in a fresh process (the compiled engine is built at
install time: nothing compiles at first use) and, with ``--sweep DATASET``, a
``--sweep-settings`` x 9-fold sweep of one dataset per map trained by the compiled engine many
settings per call (``somlab.relevance._fit.fit_many`` on ``--sweep-threads`` threads) against
the C++ bound: its median per run x runs / 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
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


FIRST_FIT = """
import time
t0 = time.perf_counter()
import somlab
t1 = time.perf_counter()
from somlab import LARFDSSOM, SSSOM, BatchSSSOM
from somlab.datasets import load_uci
b = load_uci("glass", labelled=0.1)
out = [f"import somlab {t1 - t0:.3f} s"]
for cls in (LARFDSSOM, SSSOM, BatchSSSOM):
    t = time.perf_counter()
    cls(random_state=0).fit(b.X_train, b.y_train)
    out.append(f"first {cls.__name__}.fit {time.perf_counter() - t:.3f} s")
print("; ".join(out))
"""


def first_fit() -> str:
    """Import and the first fit of each map (glass, 10 %) in a fresh process."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", FIRST_FIT], capture_output=True, text=True)
    total = time.perf_counter() - t
    return (r.stdout.strip() or r.stderr.strip()[-300:]) + f" (process {total:.1f} s)"


def sweep(ds: str, n_settings: int, threads: int, models) -> None:
    """A n_settings x 9-fold sweep of ``ds`` per map, many settings per compiled call."""
    from somlab.relevance._fit import fit_many

    settings = authors_settings()[:n_settings]
    folds = uci_folds()[:9]
    print(
        f"\nsweep: {ds}, {len(settings)} settings x {len(folds)} folds per map, fit_many on "
        f"{threads} threads (10 % labels for the supervised maps)"
    )
    print(
        f"{'model':<22} {'wall s':>8} {'cpu s':>8} {'runs':>5} {'C++ bound s':>11} "
        f"{'wall/bound':>10} {'(cpu/2)/bound':>13}"
    )
    for name in models:
        cls, extra = MODELS[name]
        unsupervised = name.startswith("larfdssom")
        t, c = time.perf_counter(), time.process_time()
        for fold in folds:
            b = load_uci(ds, fold=fold, labelled=0.1)
            y = None if unsupervised else b.y_train
            fit_many([cls(**p, **extra) for p in settings], b.X_train, y, n_threads=threads)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        runs = len(settings) * len(folds)
        bound = cpp_max(ds) * runs / 2 / 1e3  # the C++ median (upper end) x runs / 2 cores
        print(
            f"{name:<22} {wall:8.1f} {cpu:8.1f} {runs:5d} {bound:11.1f} {wall / bound:10.2f} "
            f"{cpu / 2 / bound:13.2f}"
        )


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
    ap.add_argument("--sweep", default=None, metavar="DATASET")
    ap.add_argument("--sweep-settings", type=int, default=500)
    ap.add_argument("--sweep-threads", type=int, default=2)
    ap.add_argument("--skip-runs", action="store_true", help="only first fit and sweep")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("fresh process:", first_fit())
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

    for name in [] if args.skip_runs else args.models.split(","):
        cls, extra = MODELS[name]
        unsupervised = name.startswith("larfdssom")
        fracs = [0.0] if unsupervised else fractions
        print(f"\n{cls.__name__} {extra or ''} (label fractions {fracs})")
        print(
            f"{'dataset':<9} {'fit ms':>8} {'us/sample':>9} {'predict ms':>10} "
            f"{'fit+pred ms':>11} {'C++ fit ms':>10} {'fit/C++':>7}  {'target':<24} met"
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
                f"{CPP_MS[ds]:>10} {statistics.median(fit_ms) / cpp_max(ds):7.2f}  "
                f"{label:<24} {'yes' if measured <= ms else 'NO'}"
            )

    if args.sweep:
        sweep(args.sweep, args.sweep_settings, args.sweep_threads, args.models.split(","))


if __name__ == "__main__":
    main()
