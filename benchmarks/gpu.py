"""Classic SOM on a GPU: torchsom's JMLR workload, big maps, scaling, and many maps at once.

Sections (``--sections a,b,c,d``; the fp32 matrix-multiply roofline is always measured first):

(a) torchsom's JMLR-MLOSS benchmark workload: make_blobs 20,000 x 300 (3 centres, std 1, seed
    42), 80 % (16,000 x 300) for training, a 25x15 map, sigma 1.45, learning rate 0.95,
    asymptotic decays, PCA init, 100 epochs, one batch of the whole training set per epoch (the
    paper's configuration).  torchsom 1.3.1 (if importable) beside somlab's exact batch SOM and
    somlab's mini-batch SOM with torchsom's rule and settings; QE and TE of every result from
    the same function (somlab.metrics, float64) on the same data.
(b) 50x50, 100x100 and 200x200 maps on 1,000,000 x 64 uniform random samples: seconds per
    epoch, samples per second and peak GPU memory (torch.cuda.max_memory_allocated).
(c) Seconds per epoch against samples, features and nodes, with the achieved rate of the
    distance matrix product (2 n m k flops per epoch) against the fp32 roofline measured here.
(d) Many maps: SOMEnsemble with K = 1, 8, 32, 128 settings (radius, final radius and decay
    schedule) on workload (a) against K separate SOM fits: settings per second.

In (b) and (c) seconds per epoch come from two fits of 1 and 3 epochs (their difference over
2), so the initialisation (from random samples: a PCA would add float64 copies of the data to
the peak memory) and the final evaluation cancel; "SOMEnsemble K=1" is the ensemble's engine
with one map (larger blocks on a GPU than SOM's).  Timings synchronise the device around
each fit and follow warm-up fits.  The whole script keeps to ``--budget`` seconds (default 330;
sections skip what no longer fits and say so) and writes a JSON file and a markdown file beside
it.  It needs no GPU to import.

    PYTHONPATH=src python3 benchmarks/gpu.py --out gpu_results.json     # CUDA, about 5-6 min
    python benchmarks/gpu.py --small --threads 1 --out /tmp/gpu.json   # tiny CPU smoke run

torchsom 1.3.1 is in the ``bench`` extra; on a machine without a package index, carry its wheel
and those of pydantic, pydantic-core, annotated-types, typing-inspection, typing-extensions and
hdbscan (``pip download --no-deps --only-binary=:all: --python-version 3.12 ...``) and install
them with ``pip install --no-index --no-deps --target DIR``.  Without torchsom, section (a)
still times somlab and says torchsom was skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

FULL = {
    "roof": {"n": 8192, "reps": 10, "copy_mib": 1024},
    "a": {"n_total": 20000, "m": 300, "grid": (25, 15), "epochs": 100, "reps": 3},
    "b": {"n": 1_000_000, "m": 64, "grids": [(50, 50), (100, 100), (200, 200)]},
    "c": {
        "n": 200_000,
        "m": 64,
        "grid": (32, 32),
        "ns": [50_000, 100_000, 200_000, 400_000],
        "ms": [16, 64, 256],
        "grids": [(16, 16), (32, 32), (64, 64), (128, 128)],
    },
    "d": {"epochs": 30, "ks": [1, 8, 32, 128]},
}
SMALL = {
    "roof": {"n": 512, "reps": 5, "copy_mib": 64},
    "a": {"n_total": 1250, "m": 20, "grid": (10, 8), "epochs": 10, "reps": 1},
    "b": {"n": 20_000, "m": 16, "grids": [(8, 8), (16, 16), (32, 32)]},
    "c": {
        "n": 4000,
        "m": 16,
        "grid": (8, 8),
        "ns": [2000, 4000, 8000],
        "ms": [8, 16, 32],
        "grids": [(4, 4), (8, 8), (16, 16)],
    },
    "d": {"epochs": 10, "ks": [1, 8, 32]},
}
ENGINES = ("SOM", "SOMEnsemble K=1")


class Bench:
    def __init__(self, dev, cfg, budget, small):
        self.dev, self.cfg, self.budget, self.small = dev, cfg, budget, small
        self.t0 = time.perf_counter()
        self.res = {"sections": {}, "skipped": [], "errors": {}}
        self.md = []
        self._blobs = None

    # ------------------------------------------------------------------ helpers
    def sync(self):
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def timed(self, fn):
        self.sync()
        t = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t, out

    def elapsed(self):
        return time.perf_counter() - self.t0

    def left(self):
        return self.budget - self.elapsed()

    def fits(self, what, need):
        """True when ``need`` seconds are left; else note ``what`` as skipped."""
        if self.left() >= need:
            return True
        self.res["skipped"].append(f"{what} (time budget: {self.left():.0f} s left)")
        print(f"  skipped {what}: {self.left():.0f} s left of the budget", flush=True)
        return False

    def reset_peak(self):
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.dev)

    def peak_mib(self):
        if self.dev.type != "cuda":
            return float("nan")
        return torch.cuda.max_memory_allocated(self.dev) / 2**20

    def table(self, title, header, rows):
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        text = "\n".join(lines) + "\n"
        print("\n" + text, flush=True)
        self.md.append(text)

    def blobs(self):
        """torchsom's benchmark data: make_blobs, shuffled, the first 80 % for training."""
        if self._blobs is None:
            from sklearn.datasets import make_blobs

            a = self.cfg["a"]
            X, _ = make_blobs(n_samples=a["n_total"], n_features=a["m"], centers=3, random_state=42)
            X = X[np.random.default_rng(42).permutation(len(X))].astype(np.float32)
            self._blobs = np.ascontiguousarray(X[: int(0.8 * len(X))])
        return self._blobs

    def per_epoch(self, make, X, e1=1, e2=3):
        """Seconds per epoch from fits of ``e1`` and ``e2`` epochs; peak MiB of the first."""
        self.reset_peak()
        t1, _ = self.timed(lambda: make(e1).fit(X))
        peak = self.peak_mib()
        t2, est = self.timed(lambda: make(e2).fit(X))
        return (t2 - t1) / (e2 - e1) if t2 > t1 else float("nan"), t1, t2, peak, est

    def make(self, engine, grid, epochs, **kw):
        from somlab import SOM
        from somlab.som._multi import SOMEnsemble

        cls = SOM if engine == "SOM" else SOMEnsemble
        kw = {"mode": "batch", "init": "sample", "random_state": 0, **kw}
        return cls(grid, epochs=epochs, device=str(self.dev), **kw)

    # ------------------------------------------------------------------ environment, roofline
    def environment(self):
        env = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "device": str(self.dev),
            "threads": torch.get_num_threads(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        }
        try:
            env["commit"] = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
        if self.dev.type == "cuda":
            p = torch.cuda.get_device_properties(self.dev)
            env.update(
                gpu=p.name,
                gpu_memory_gib=round(p.total_memory / 2**30, 1),
                multiprocessors=p.multi_processor_count,
                cuda=torch.version.cuda,
                allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                float32_matmul_precision=torch.get_float32_matmul_precision(),
            )
        else:
            env["cpu"] = platform.processor() or platform.machine()
        self.res["env"] = env
        print("environment:", json.dumps(env), flush=True)

    def rate(self, op, reps):
        """Seconds per call of ``op`` after one untimed call."""
        op()
        dt, _ = self.timed(lambda: [op() for _ in range(reps)])
        return dt / reps

    def roofline(self):
        r = self.cfg["roof"]
        n, reps = r["n"], r["reps"]
        A, B = torch.randn(2, n, n, device=self.dev).unbind(0)
        C = torch.empty(n, n, device=self.dev)
        fp32 = 2 * n**3 / self.rate(lambda: torch.mm(A, B, out=C), reps) / 1e12
        out = {"matmul_n": n, "fp32_tflops": fp32}
        if self.dev.type == "cuda":  # for context only: somlab runs in full fp32
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                t = self.rate(lambda: torch.mm(A, B, out=C), reps)
                out["tf32_tflops_not_used"] = 2 * n**3 / t / 1e12
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
        x = torch.empty(r["copy_mib"] * 2**18, device=self.dev)
        y = torch.empty_like(x)
        out["copy_gb_s"] = 2 * x.numel() * 4 / self.rate(lambda: y.copy_(x), reps) / 1e9
        self.res["roofline"] = out
        self.roof = fp32
        self.table(
            "Roofline measured in this run",
            ["fp32 matmul (TFLOP/s)", "tf32 matmul, not used (TFLOP/s)", "copy (GB/s, read+write)"],
            [
                [
                    f"{fp32:.2f}",
                    f"{out.get('tf32_tflops_not_used', float('nan')):.1f}",
                    f"{out['copy_gb_s']:.0f}",
                ]
            ],
        )

    # ------------------------------------------------------------------ (a) torchsom workload
    def section_a(self):
        from somlab import SOM
        from somlab.metrics import quantization_error, topographic_error

        a = self.cfg["a"]
        X = self.blobs()
        rows, cols = a["grid"]
        epochs = a["epochs"]
        n = len(X)
        common = dict(
            sigma=1.45, sigma_decay="asymptotic", init="pca", device=str(self.dev), random_state=42
        )
        methods = {
            "somlab SOM, exact batch": dict(mode="batch"),
            f"somlab SOM, minibatch (batch {n}, lr 0.95: torchsom's rule)": dict(
                mode="minibatch",
                batch_size=n,
                learning_rate=0.95,
                learning_rate_decay="asymptotic",
            ),
        }
        rows_out, data = [], {}
        for name, kw in methods.items():
            SOM((rows, cols), epochs=2, **common, **kw).fit(X)  # warm-up
            times, som = [], None
            for _ in range(a["reps"]):
                t, som = self.timed(
                    lambda kw=kw: SOM((rows, cols), epochs=epochs, **common, **kw).fit(X)
                )
                times.append(t)
            data[name] = {"fit_s": statistics.median(times), "times": times, "W": som.weights_}
        ts = self.torchsom_fit(X, rows, cols, epochs)
        if ts is not None:
            data["torchsom 1.3.1, batch = whole training set"] = ts
        ref = data.get("torchsom 1.3.1, batch = whole training set")
        out = []
        for name, d in data.items():
            qe, te = quantization_error(X, d["W"]), topographic_error(X, d["W"])
            speed = ref["fit_s"] / d["fit_s"] if ref else float("nan")
            out.append(
                {
                    "method": name,
                    "fit_s": d["fit_s"],
                    "s_per_epoch": d["fit_s"] / epochs,
                    "qe": qe,
                    "te": te,
                    "speedup_vs_torchsom": speed,
                    "times": d["times"],
                }
            )
            rows_out.append(
                [
                    name,
                    f"{d['fit_s']:.3f}",
                    f"{1e3 * d['fit_s'] / epochs:.2f}",
                    f"{qe:.4f}",
                    f"{te:.4f}",
                    f"{speed:.1f}x" if ref else "-",
                ]
            )
        self.res["sections"]["a"] = {"config": {**a, "n_train": n}, "rows": out}
        self.table(
            f"(a) torchsom JMLR workload: {n} x {X.shape[1]}, {rows}x{cols} map, {epochs} epochs",
            ["method", "fit (s, init included)", "ms/epoch", "QE", "TE", "speed-up vs torchsom"],
            rows_out,
        )
        if ref:
            best = out[0]
            ok = best["speedup_vs_torchsom"] >= 10 and best["qe"] <= out[-1]["qe"] * 1.01
            print(
                f"target >= 10x at equal QE: {best['speedup_vs_torchsom']:.1f}x, QE "
                f"{best['qe']:.4f} vs {out[-1]['qe']:.4f}: {'met' if ok else 'NOT met'}"
            )

    def torchsom_fit(self, X, rows, cols, epochs):
        try:
            from torchsom import SOM as TSOM
        except ImportError as exc:
            self.res["skipped"].append(f"torchsom (not importable: {exc})")
            print(f"  torchsom not importable ({exc}); pip install torchsom==1.3.1", flush=True)
            return None
        Xt = torch.from_numpy(X).to(self.dev)

        def build(ep):
            return TSOM(
                rows,
                cols,
                X.shape[1],
                epochs=ep,
                batch_size=len(X),
                sigma=1.45,
                learning_rate=0.95,
                lr_decay_function="asymptotic_decay",
                sigma_decay_function="asymptotic_decay",
                neighborhood_function="gaussian",
                topology="rectangular",
                distance_function="euclidean",
                initialization_mode="pca",
                neighborhood_order=3,
                search_backend="torch",
                device=str(self.dev),
                random_seed=42,
            )

        warm = build(2)  # CUDA and cuSOLVER initialisation stay out of the timing
        warm.initialize_weights(Xt)
        warm.fit(Xt, verbose=False)
        som = build(epochs)

        def run():
            som.initialize_weights(Xt)
            som.fit(Xt, verbose=False)

        t, _ = self.timed(run)
        return {"fit_s": t, "times": [t], "W": som.weights.detach().cpu().numpy()}

    # ------------------------------------------------------------------ (b) big maps
    def section_b(self):
        b = self.cfg["b"]
        n, m = b["n"], b["m"]
        X = np.random.default_rng(0).random((n, m), dtype=np.float32)
        data_mib = X.nbytes / 2**20
        for engine in ENGINES:  # warm-up
            self.make(engine, b["grids"][0], 1).fit(X[: min(n, 20000)])
        rows_out, out = [], []
        for grid in b["grids"]:
            nodes = grid[0] * grid[1]
            for engine in ENGINES:
                need = (
                    5 + 3e-10 * n * nodes
                )  # six passes over [n, nodes], about 12 memory sweeps each
                if not self.fits(f"(b) {engine} {grid[0]}x{grid[1]}", need):
                    continue
                s, t1, t3, peak, _ = self.per_epoch(
                    lambda e, g=grid, en=engine: self.make(en, g, e), X
                )
                r = {
                    "grid": grid,
                    "nodes": nodes,
                    "engine": engine,
                    "s_per_epoch": s,
                    "samples_per_s": n / s if s > 0 else float("nan"),
                    "fit1_s": t1,
                    "fit3_s": t3,
                    "peak_mib": peak,
                    "peak_minus_data_mib": peak - data_mib,
                    "weights_mib": nodes * m * 4 / 2**20,
                }
                out.append(r)
                rows_out.append(
                    [
                        f"{grid[0]}x{grid[1]}",
                        nodes,
                        engine,
                        f"{s:.3f}",
                        f"{r['samples_per_s']:.3g}",
                        f"{peak:.0f}",
                        f"{peak - data_mib:.0f}",
                        f"{r['weights_mib']:.1f}",
                    ]
                )
                print(f"  (b) {rows_out[-1]}", flush=True)
        self.res["sections"]["b"] = {"config": {"n": n, "m": m, "data_mib": data_mib}, "rows": out}
        self.table(
            f"(b) big maps on {n:,} x {m} samples (data {data_mib:.0f} MiB on the device)",
            [
                "map",
                "nodes",
                "engine",
                "s/epoch",
                "samples/s",
                "peak MiB",
                "peak - data MiB",
                "prototypes MiB",
            ],
            rows_out,
        )

    # ------------------------------------------------------------------ (c) scaling
    def section_c(self):
        c = self.cfg["c"]
        rng = np.random.default_rng(1)
        Xbig = rng.random((max(c["ns"]), max(c["ms"])), dtype=np.float32)
        configs = [("samples", n, c["m"], c["grid"]) for n in c["ns"]]
        configs += [("features", c["n"], m, c["grid"]) for m in c["ms"] if m != c["m"]]
        configs += [("nodes", c["n"], c["m"], g) for g in c["grids"] if g != c["grid"]]
        for engine in ENGINES:  # warm-up
            self.make(engine, c["grid"], 1).fit(np.ascontiguousarray(Xbig[:5000, : c["m"]]))
        rows_out, out = [], []
        for vary, n, m, grid in configs:
            X = np.ascontiguousarray(Xbig[:n, :m])
            nodes = grid[0] * grid[1]
            flops = 2.0 * n * m * nodes
            for engine in ENGINES:
                if not self.fits(f"(c) {engine} n={n} m={m} {grid}", 3 + 3e-10 * n * nodes):
                    continue
                s, *_ = self.per_epoch(lambda e, g=grid, en=engine: self.make(en, g, e), X)
                tf = flops / s / 1e12 if s > 0 else float("nan")
                r = {
                    "vary": vary,
                    "n": n,
                    "m": m,
                    "nodes": nodes,
                    "engine": engine,
                    "s_per_epoch": s,
                    "distance_gflop": flops / 1e9,
                    "tflops": tf,
                    "roofline_share": tf / self.roof,
                }
                out.append(r)
                rows_out.append(
                    [
                        vary,
                        n,
                        m,
                        nodes,
                        engine,
                        f"{1e3 * s:.1f}",
                        f"{flops / 1e9:.3g}",
                        f"{tf:.3g}",
                        f"{100 * tf / self.roof:.0f} %",
                    ]
                )
                print(f"  (c) {rows_out[-1]}", flush=True)
        self.res["sections"]["c"] = {"config": c, "roofline_fp32_tflops": self.roof, "rows": out}
        self.table(
            f"(c) time per epoch against samples, features and nodes (fp32 roofline "
            f"{self.roof:.1f} TFLOP/s)",
            [
                "varied",
                "samples",
                "features",
                "nodes",
                "engine",
                "ms/epoch",
                "distance GFLOP/epoch",
                "TFLOP/s",
                "of roofline",
            ],
            rows_out,
        )

    # ------------------------------------------------------------------ (d) many maps
    def settings(self, k_max, grid):
        s_max = max(grid) / 2.0
        sigmas = np.geomspace(1.0, s_max, 8)
        grid_ = [
            {"sigma": float(s), "sigma_end": e, "sigma_decay": d}
            for s in sigmas
            for e in (0.1, 0.3, 0.6, 1.0)
            for d in ("linear", "exponential", "inverse_time", "asymptotic")
        ]
        order = np.random.default_rng(0).permutation(len(grid_))
        return [grid_[i] for i in order[:k_max]]

    def section_d(self):
        from somlab import SOM
        from somlab.som._multi import SOMEnsemble

        d, a = self.cfg["d"], self.cfg["a"]
        X = self.blobs()
        grid, epochs = a["grid"], d["epochs"]
        ks = d["ks"]
        settings = self.settings(max(ks), grid)
        shared = dict(grid_shape=grid, epochs=epochs, device=str(self.dev), random_state=0)
        SOMEnsemble.from_settings(settings[:2], **{**shared, "epochs": 1}).fit(X)  # warm-up
        SOM(grid, epochs=1, device=str(self.dev), random_state=0).fit(X)
        params = SOMEnsemble.from_settings(settings, **shared).get_map_params()
        sep_t, sep_w, sep_qe = [], [], []
        for p in params:  # K separate fits: the first K of these
            if not self.fits(f"(d) separate fit {len(sep_t)}", 5):
                break
            t, som = self.timed(lambda p=p: SOM(**p).fit(X))
            sep_t.append(t)
            sep_w.append(som.weights_)
            sep_qe.append(som.quantization_error_)
        rows_out, out = [], []
        for K in ks:
            if not self.fits(f"(d) ensemble K={K}", 5):
                continue
            ens = SOMEnsemble.from_settings(settings[:K], **shared)
            t, ens = self.timed(lambda ens=ens: ens.fit(X))
            measured = min(K, len(sep_t))
            sep = sum(sep_t[:K]) if measured == K else statistics.mean(sep_t) * K
            dW = max(float(np.abs(ens.weights_[k] - sep_w[k]).max()) for k in range(measured))
            dq = max(abs(float(ens.quantization_error_[k]) - sep_qe[k]) for k in range(measured))
            r = {
                "K": K,
                "ensemble_s": t,
                "separate_s": sep,
                "separate_extrapolated": measured < K,
                "ensemble_settings_per_s": K / t,
                "separate_settings_per_s": K / sep,
                "speedup": sep / t,
                "max_abs_weight_diff": dW,
                "max_abs_qe_diff": dq,
            }
            out.append(r)
            rows_out.append(
                [
                    K,
                    f"{t:.3f}",
                    f"{sep:.3f}" + (" (extrapolated)" if measured < K else ""),
                    f"{K / t:.1f}",
                    f"{K / sep:.1f}",
                    f"{sep / t:.1f}x",
                    f"{dW:.1e}",
                    f"{dq:.1e}",
                ]
            )
            print(f"  (d) {rows_out[-1]}", flush=True)
        self.res["sections"]["d"] = {
            "config": {
                "n": len(X),
                "m": X.shape[1],
                "grid": grid,
                "epochs": epochs,
                "settings": settings,
            },
            "separate_fit_s": sep_t,
            "rows": out,
        }
        self.table(
            f"(d) many maps: K settings on {len(X)} x {X.shape[1]}, {grid[0]}x{grid[1]} map, "
            f"{epochs} epochs, batch mode",
            [
                "K",
                "SOMEnsemble (s)",
                "K separate SOM fits (s)",
                "settings/s, ensemble",
                "settings/s, separate",
                "speed-up",
                "max |W diff|",
                "max |QE diff|",
            ],
            rows_out,
        )

    # ------------------------------------------------------------------ output
    def write(self, out_path):
        self.res["elapsed_s"] = self.elapsed()
        self.res["budget_s"] = self.budget
        self.res["small"] = self.small
        path = Path(out_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.res, indent=2, default=_jsonable))
        head = f"Environment: `{json.dumps(self.res.get('env', {}))}`\n\n"
        tail = f"\nElapsed: {self.elapsed():.0f} s. Skipped: {self.res['skipped'] or 'nothing'}.\n"
        path.with_suffix(".md").write_text(head + "\n".join(self.md) + tail)


def _jsonable(v):
    if isinstance(v, (np.generic,)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return str(v)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", default="gpu_results.json", help="JSON file; a .md file goes beside it"
    )
    ap.add_argument("--small", action="store_true", help="tiny sizes: a smoke run on CPU")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--sections", default="a,b,c,d")
    ap.add_argument("--budget", type=float, default=330.0, help="seconds for the whole run")
    ap.add_argument("--many-epochs", type=int, default=None, help="epochs of section (d)")
    ap.add_argument("--many-k", default=None, help="comma-separated K values of section (d)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type != "cuda" and not args.small:
        ap.error("no CUDA device: the full sizes are for a GPU; pass --small for a CPU smoke run")
    cfg = json.loads(json.dumps(SMALL if args.small else FULL))
    for key in ("grid",):
        cfg["a"][key] = tuple(cfg["a"][key])
    cfg["c"]["grid"] = tuple(cfg["c"]["grid"])
    cfg["c"]["grids"] = [tuple(g) for g in cfg["c"]["grids"]]
    cfg["b"]["grids"] = [tuple(g) for g in cfg["b"]["grids"]]
    if args.many_epochs:
        cfg["d"]["epochs"] = args.many_epochs
    if args.many_k:
        cfg["d"]["ks"] = [int(k) for k in args.many_k.split(",")]
    bench = Bench(dev, cfg, args.budget, args.small)
    bench.environment()
    bench.roof = float("nan")
    try:
        bench.roofline()
    except Exception as exc:
        traceback.print_exc()
        bench.res["errors"]["roofline"] = f"{type(exc).__name__}: {exc}"
    for name in args.sections.split(","):
        name = name.strip()
        print(f"\n== section ({name}), {bench.elapsed():.0f} s elapsed", flush=True)
        try:
            getattr(bench, f"section_{name}")()
        except Exception as exc:  # one section's failure must not lose the others
            traceback.print_exc()
            bench.res["errors"][name] = f"{type(exc).__name__}: {exc}"
        bench.write(args.out)
    bench.write(args.out)
    print(
        f"\nwrote {args.out} and {Path(args.out).with_suffix('.md')}; "
        f"elapsed {bench.elapsed():.0f} s"
    )
    return 1 if bench.res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
