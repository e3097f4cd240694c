"""Speed of one train + predict run of the relevance maps on the UCI folds (CPU, one thread).

Per model and dataset, over the first ``--settings`` of the authors' parameter file, the
``--folds`` folds and the label fractions ``--fractions`` (the protocol of issue 9's C++ anchor:
settings 0-9, 9 folds, 1/10/100 % labels): the median ``fit`` (the whole schedule: organisation,
then convergence) in CPU milliseconds (``time.thread_time``: what a shared machine distorts
least) and in wall milliseconds, its ratio to the authors' C++ median (the upper end of its range
over the label fractions), median microseconds per presented sample (CPU), median ``predict`` ms
on the test fold and the issue 16 target (fit <= the C++ median; met when the CPU median is).
LARFDSSOM is unsupervised: it sees the same training rows without labels, once per fold and
setting.

    python benchmarks/sssom_speed.py [--models larfdssom,larfdssom_cpp,sssom,batchsssom]
        [--settings 10] [--folds 9] [--fractions 0.01,0.1,1] [--torch-engine]
        [--sweep glass] [--sweep-settings 500] [--sweep-folds 9] [--sweep-threads 2]
        [--skip-runs]

Also printed: the first fit of each map in a fresh process (the compiled engine is built at
install time: nothing compiles at first use) and, with ``--sweep DATASET``, a
``--sweep-settings`` x ``--sweep-folds`` sweep of one dataset per map trained by the compiled
engine many settings per call (``somlab.relevance._fit.fit_many`` on ``--sweep-threads``
threads) against the C++ bound (its median per run x runs / 2 cores), with its extrapolation
to the issue's 500 settings x 9 folds (time per run x 4,500) when fewer were run.
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
    """(label, milliseconds) of issue 16's target for one fit: at most the C++ median."""
    return f"<= C++ = {cpp_max(ds):g} ms fit", cpp_max(ds)


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


FULL_SWEEP_RUNS = 500 * 9  # issue 16: a 500-setting x 9-fold sweep


def sweep(ds: str, n_settings: int, n_folds: int, threads: int, models) -> None:
    """A n_settings x n_folds sweep of ``ds`` per map, many settings per compiled call; the
    times per run are extrapolated to 500 x 9 runs when fewer ran."""
    from somlab.relevance._fit import fit_many

    settings = authors_settings()[:n_settings]
    folds = uci_folds()[:n_folds]
    runs = len(settings) * len(folds)
    print(
        f"\nsweep: {ds}, {len(settings)} settings x {len(folds)} folds per map, fit_many on "
        f"{threads} threads (10 % labels for the supervised maps); the C++ bound = its median "
        f"{cpp_max(ds):g} ms x runs / 2 cores; 'x4500': extrapolated to 500 x 9 runs"
    )
    print(
        f"{'model':<14} {'runs':>5} {'wall s':>8} {'cpu s':>8} {'C++ bound s':>11} "
        f"{'wall/bound':>10} {'(cpu/2)/bound':>13} {'wall s x4500':>12} {'bound x4500':>11}"
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
        bound = cpp_max(ds) * runs / 2 / 1e3
        print(
            f"{name:<14} {runs:5d} {wall:8.1f} {cpu:8.1f} {bound:11.2f} {wall / bound:10.2f} "
            f"{cpu / 2 / bound:13.2f} {wall / runs * FULL_SWEEP_RUNS:12.1f} "
            f"{cpp_max(ds) * FULL_SWEEP_RUNS / 2 / 1e3:11.1f}"
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
    ap.add_argument("--sweep-folds", type=int, default=9)
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
            f"{'dataset':<9} {'cpu ms':>7} {'wall ms':>7} {'C++ ms':>6} {'cpu/C++':>7} "
            f"{'wall/C++':>8} {'us/sample':>9} {'predict':>7}  {'target':<22} met"
        )
        for ds in datasets:
            cpu_ms, wall_ms, pred_ms, per_sample = [], [], [], []
            for frac in fracs:
                for fold in folds:
                    b = load_uci(ds, fold=fold, labelled=max(frac, 0.01))
                    y = None if unsupervised else b.y_train
                    for p in settings:
                        c0, t0 = time.thread_time(), time.perf_counter()
                        m = cls(**p, **extra, engine=ENGINE[0]).fit(b.X_train, y)
                        c1, t1 = time.thread_time(), time.perf_counter()
                        m.predict(b.X_test)
                        t2 = time.perf_counter()
                        cpu_ms.append((c1 - c0) * 1e3)
                        wall_ms.append((t1 - t0) * 1e3)
                        pred_ms.append((t2 - t1) * 1e3)
                        per_sample.append((c1 - c0) * 1e6 / m.history_["presented"])
            label, ms = target(name, ds)
            cpu, wall = statistics.median(cpu_ms), statistics.median(wall_ms)
            print(
                f"{ds:<9} {cpu:7.1f} {wall:7.1f} {CPP_MS[ds]:>6} {cpu / cpp_max(ds):7.2f} "
                f"{wall / cpp_max(ds):8.2f} {statistics.median(per_sample):9.2f} "
                f"{statistics.median(pred_ms):7.2f}  {label:<22} {'yes' if cpu <= ms else 'NO'}",
                flush=True,
            )

    if args.sweep:
        sweep(
            args.sweep,
            args.sweep_settings,
            args.sweep_folds,
            args.sweep_threads,
            args.models.split(","),
        )


if __name__ == "__main__":
    main()
