"""Small helpers shared by estimators: devices, dtypes, seeding, input checks, progress bars."""

from __future__ import annotations

import math
import os
import threading
import time
import warnings

import numpy as np
import torch
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from ._errors import DataError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
_BLOCK_ROWS = 1 << 16  # rows per block where a check needs a temporary the size of X


def resolve_device(device) -> torch.device:
    """``"auto"`` picks CUDA when available; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (a torch device), got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available (a model saved on a "
            "GPU: somlab.load(path, device='cpu') or model.set_params(device='cpu'))"
        )
    return dev


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype)]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}") from None


def check_finite_tensor(
    X: torch.Tensor,
    allow_nan: bool = False,
    what: str = "X",
    *,
    columns: bool = False,
    max_abs: float | None = None,
    hint: str | None = None,
) -> None:
    """Raise DataError on inf (and NaN unless allowed) with a message that names the problem.

    With ``allow_nan`` a row that is NaN in every feature is refused, and with ``columns`` also
    a feature column that is NaN in every row (leave it off for one chunk of larger data, where
    such a column is legal).  ``max_abs``: refuse values of larger magnitude (e.g. ones whose
    squared distances overflow the dtype).  ``hint`` replaces the advice given for NaN.
    One reduction over ``X`` when it holds no NaN (``aminmax`` finds NaN, inf and magnitude).
    """
    if X.numel() == 0:
        return
    if allow_nan:
        nan = torch.isnan(X)
        if columns:
            empty = torch.nonzero(nan.all(dim=0)).flatten().tolist()
            if empty:
                names = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
                raise DataError(
                    f"feature column{'s' if len(empty) > 1 else ''} {names} of {what} "
                    f"{'are' if len(empty) > 1 else 'is'} NaN in every sample; drop "
                    f"{'them' if len(empty) > 1 else 'it'} (missing='ignore' needs at least "
                    "one observed value per feature)"
                )
        if nan.all(dim=1).any():
            raise DataError(f"{what} has a row where every feature is NaN")
        if max_abs is None:
            if torch.isinf(X).any():
                raise DataError(f"{what} contains inf; only NaN is accepted as a missing value")
            return
        # NaN read as 0, a block of rows at a time (no copy of the whole data)
        zero = torch.zeros((), dtype=X.dtype, device=X.device)
        parts = [
            torch.stack(torch.aminmax(torch.where(n, zero, x)))
            for x, n in zip(X.split(_BLOCK_ROWS), nan.split(_BLOCK_ROWS))
        ]
        lo, hi = torch.stack(parts).aminmax(dim=0)
        lo, hi = float(lo[0]), float(hi[1])
    else:  # NaN propagates, so one reduction finds NaN, inf and magnitude
        lo, hi = torch.stack(torch.aminmax(X)).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        if allow_nan:
            raise DataError(f"{what} contains inf; only NaN is accepted as a missing value")
        bad = "NaN" if math.isnan(lo) or math.isnan(hi) else "inf"
        advice = "clean the data or pass missing='ignore' to skip NaN features"
        raise DataError(f"{what} contains {bad}; {hint or advice}")
    big = max(-lo, hi)
    if max_abs is not None and big > max_abs:
        dt = str(X.dtype).replace("torch.", "")
        raise DataError(
            f"{what} has values up to {big:.3g} in magnitude, beyond {max_abs:.3g}, where "
            f"squared distances overflow {dt}; scale the data (e.g. StandardScaler)"
            + (" or pass dtype='float64'" if X.dtype != torch.float64 else "")
        )


def input_array(X, what: str):
    """``X`` as numpy can read it: a tensor detached and on the CPU (numpy() refuses one that
    requires grad); a file path refused by name (numpy would try to parse the string)."""
    if isinstance(X, (str, os.PathLike)):
        raise DataError(
            f"{what}: X must be an array, not the path {str(X)!r}; load it first, e.g. "
            "np.load(path, mmap_mode='r') (SOM.fit alone streams .npy files from a path)"
        )
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        _check_frame_columns(X, what)
    return X.detach().cpu() if isinstance(X, torch.Tensor) else X


def _check_frame_columns(frame, what: str) -> None:
    """A data frame's columns must be numbers: a timestamp column is refused by name (a silent
    conversion would pick an origin and a unit for the user, and seconds since 1970 lose all
    but minutes in float32); a text column is refused by name with its first bad value."""
    for name, dt in frame.dtypes.items():
        kind = getattr(dt, "kind", "O")
        if kind in "biuf":
            continue
        if kind in "mM":
            raise DataError(
                f"{what}: column {name!r} holds {'durations' if kind == 'm' else 'timestamps'} "
                f"({dt}); convert it to numbers first, e.g. seconds since the first: "
                f"(df[{name!r}] - df[{name!r}].min()).dt.total_seconds(), or drop it"
            )
        col = frame[name]
        try:
            np.asarray(col, dtype=np.float64)
        except (TypeError, ValueError):
            bad = next((v for v in col if not _is_float(v)), None)
            raise DataError(
                f"{what}: column {name!r} is not numeric (dtype {dt}, e.g. {bad!r})"
            ) from None


def _is_float(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def validate_X(estimator, X, reset: bool, what: str, dtype=(np.float64, np.float32)):
    """scikit-learn's ``validate_data`` (shape, dtype, feature count and names) for ``X`` given
    as an array, a list or a tensor (one that requires grad too), its errors as DataError.
    Finiteness is left to :func:`check_finite_tensor`, whose messages say what to do."""
    from sklearn.utils.validation import validate_data

    X = input_array(X, what)
    try:
        return validate_data(estimator, X, reset=reset, dtype=list(dtype), ensure_all_finite=False)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def as_tensor(X, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A tensor view of ``X`` where possible (read-only arrays and memmaps are never written)."""
    if isinstance(X, torch.Tensor):
        return X.detach().to(device=device, dtype=dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.asarray(X), dtype=dtype, device=device)


def progress(iterable, enabled: bool, **kw):
    """A tqdm progress bar when ``enabled``, else the iterable unchanged."""
    return tqdm(iterable, **kw) if enabled else iterable


def seeded_generator(random_state) -> torch.Generator:
    """The one seeding rule of every somlab estimator (SPEC.md's randomness rule): a CPU
    ``torch.Generator``; an int seeds it directly (``manual_seed(seed)``), so a setting's seed
    column reproduces; None or a numpy RandomState draws a seed in ``[0, 2**31 - 1)`` from
    ``sklearn.utils.check_random_state(random_state)``."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        return torch.Generator().manual_seed(int(random_state))
    seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
    return torch.Generator().manual_seed(seed)


#: The former name of :func:`seeded_generator` (it once drew an int's seed through a
#: RandomState, a second rule; now the same function).
make_generator = seeded_generator


class FitMemoryError(DataError, MemoryError):
    """A fit that would need more memory than the device has, estimated from the shapes
    before anything large is allocated (a DataError and a MemoryError)."""


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a fit on ``device``: MemAvailable on Linux CPUs (the cgroup limit when it
    is lower), the free memory of a CUDA device; None when unknown (no check is made)."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # pragma: no cover - no driver or another process holds it
            return None
    if device.type != "cpu":
        return None
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    except OSError:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            free = min(free, int(limit) - used) if free is not None else int(limit) - used
    except (OSError, ValueError):
        pass
    return free


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


# Below this many floating-point operations per step (step_work: about half a millisecond on
# one core) a second thread costs as much in hand-offs as it saves; above it, threads pay off
# unless another process is using the cores (a descheduled thread stalls every operation it
# shares).  Measured on the 2-core development machine (AMD EPYC, torch 2.13 with MKL), 36
# mini-batch settings (16/64/784 features, 5x5 to 40x40 nodes, batches of 8/32/256,
# benchmarks/RESULTS.md): two threads were 0-16 % slower below 1.2e6 and 2-44 % faster from
# 2.8e6 on, except two cells within noise; the old 2e7, which counted the distances only,
# left fits 1.2-1.8x slower than on two threads (a 40x40 map, batches of 256 rows of 16-d).
PARALLEL_WORK = 2e6


def step_work(rows: float, n_nodes: int, n_features: int, maps: int = 1) -> float:
    """Floating-point operations of one SOM step over ``rows`` rows: the distances
    (``2 rows n m``), the neighbourhood spread of the winners (``2 min(rows, n) n (m + 1)``) and
    the prototype update (``4 n m``), for each of ``maps`` maps of ``n`` nodes."""
    hit = min(rows, n_nodes)
    per_map = 2.0 * rows * n_nodes * n_features + 2.0 * hit * n_nodes * (n_features + 1)
    return maps * (per_map + 4.0 * n_nodes * n_features)


def _own_runnable() -> int:
    """Threads of this process that are running or ready to run (``/proc/self/task``)."""
    n = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as f:
                n += f.read().rsplit(b")", 1)[1].split()[0] == b"R"
        except OSError:  # the thread ended meanwhile
            pass
    return n


def _runnable_others(reads: int = 3) -> int:
    """Threads of other processes that are running or ready to run now: the machine's
    runnable count (``/proc/loadavg``) less this process's own runnable threads (the median
    of ``reads`` reads, ~0.1 ms each).  Subtracting our own threads matters: torch's OpenMP
    workers spin for a while after each parallel region and count as runnable, and the load
    average lags a minute behind the load this process caused itself, so neither can tell an
    idle machine from a busy one.  A CPU-bound process of someone else is always runnable and
    counts.  Without ``/proc``: the 1-minute load average less one."""
    try:
        out = []
        for _ in range(reads):
            with open("/proc/loadavg", "rb") as f:
                total = int(f.read().split()[3].split(b"/")[0])
            # the reading thread is one of them: a count of 1 needs no look at our threads
            out.append(0 if total <= 1 else total - _own_runnable())
        return max(0, sorted(out)[len(out) // 2])
    except (OSError, ValueError, IndexError):
        try:
            return max(0, int(os.getloadavg()[0] + 0.5) - 1)
        except (OSError, AttributeError):
            return 0


def choose_threads(work_per_step: float, device) -> int | None:
    """CPU threads for a fit whose steps cost ``work_per_step`` operations, by size and load.

    Small steps run on one thread; larger ones on the cores that no other runnable thread is
    using (at least one; at most ``torch.get_num_threads()``, or inside a
    :class:`thread_governor` the count the outermost one found on entry, so a user's own
    limit stands).
    None off the CPU.  Measured on the 2-core development machine: a 20x20 batch fit of
    5,000 MNIST digits took 9-11 s on 2 threads and 1.9 s on 1 while another process spun
    on a core.
    """
    if getattr(device, "type", device) != "cpu":
        return None
    limit = _user_limit()
    if limit <= 1 or work_per_step < PARALLEL_WORK:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(limit, cores - _others_seen()))


_LAST_OTHERS = [-math.inf, 0]  # [when, value] of the last load read (choose_threads)


def _others_seen() -> int:
    """:func:`_runnable_others`, and where the read before it was taken less than
    _RECHECK_EVERY s ago (a fit's early second look, or fits started back to back), the
    smaller of the two: there a busy read is believed only if the one before was busy too.
    A task that keeps a core busy is seen at both; a transient one is not: on the development
    machine a fit's first look read one other runnable task in 6 of 12 fits started back to
    back (for 1-10 ms; none of this process's threads, and no later look saw it)."""
    now, seen = time.monotonic(), _runnable_others()
    when, before = _LAST_OTHERS
    _LAST_OTHERS[:] = [now, seen]
    return min(seen, before) if now - when < _RECHECK_EVERY else seen


#: When a fit looks at the load again (poll_threads, at its step and epoch boundaries): this
#: many seconds after its start, then every _RECHECK_EVERY seconds.
_RECHECK_FIRST = 0.005
_RECHECK_EVERY = 0.5
_GOVERNOR = threading.local()  # .current: this thread's innermost thread_governor
_ACTIVE_LOCK = threading.Lock()
_ACTIVE = [0]  # outermost governors in effect, over all threads of the process


def _user_limit() -> int:
    """The thread count the user set: torch's, or what the outermost governor found."""
    g = getattr(_GOVERNOR, "current", None)
    return torch.get_num_threads() if g is None else g.limit


class thread_governor:
    """Context manager for a fit: torch threads from ``pick()`` (its :func:`choose_threads`
    call) on entry and again at the fit's step and epoch boundaries (:func:`poll_threads`),
    first :data:`_RECHECK_FIRST` s after the start (where the first look left a core out),
    then every :data:`_RECHECK_EVERY` s; the caller's setting comes back on exit.  ``pick()``
    returning None leaves torch alone.

    Each look keeps the larger of its count and the previous look's.  A process that keeps a
    core busy is seen at both; a transient one is not: on the development machine 10-20 % of
    fit starts saw another runnable task for 1-10 ms (none of this process's), which pinned the
    whole fit on one core (1.2-1.5x slower where two threads are the better count).  A
    machine that gets idle during a fit is followed at the next look, one that gets busy at
    the second; looks are taken at step and epoch boundaries, so a fit of few long epochs
    follows within two epochs.  ``prior`` (:attr:`outcome` of the same fit's training, for
    its final pass) is the count to start from: taken as it is, with no look, where it had
    every core or was confirmed by a second look less than _RECHECK_EVERY s ago.

    torch's thread count is one setting for the whole process: while one thread's governor is
    in effect, a governor entered in another thread leaves the setting alone (passive).
    """

    def __init__(self, pick, prior: tuple | None = None):
        self.pick, self.prior = pick, prior
        self.looks, self.looked = 0, -math.inf

    @property
    def outcome(self) -> tuple | None:
        """``(count in effect, when its last look was confirmed by another, or None)``."""
        if self.n is None:
            return None
        return self.n, (self.looked if self.looks >= 2 else None)

    def _look(self):
        pick = self.pick()
        if pick is not None:  # (a failed look confirms nothing)
            self.looks, self.looked = self.looks + 1, time.monotonic()
        return pick

    def __enter__(self):
        self.entry = torch.get_num_threads()
        self.outer = getattr(_GOVERNOR, "current", None)
        self.n = self.last = None
        self.polling = self.registered = False
        if self.outer is None:
            with _ACTIVE_LOCK:
                if _ACTIVE[0]:  # another thread's fit holds the setting
                    return self
                _ACTIVE[0] += 1
        self.registered = True
        try:
            self.limit = self.entry if self.outer is None else self.outer.limit
            n0, confirmed = self.prior if self.prior is not None else (None, None)
            settled = n0 is not None and (
                n0 >= self.limit
                or (confirmed is not None and time.monotonic() - confirmed < _RECHECK_EVERY)
            )
            if settled:  # the training's count, with every core or freshly confirmed
                pick = min(n0, self.limit)
            else:
                pick = self._look()  # (choose_threads reads the limit as _user_limit gives)
                if pick is not None and n0 is not None:
                    pick = max(pick, min(n0, self.limit))
            self.n = self.last = pick
            if pick is not None and pick != self.entry:
                torch.set_num_threads(pick)
        except BaseException:
            self._release()
            raise
        _GOVERNOR.current = self
        self.polling = self.n is not None and self.limit > 1
        # the early second look corrects a transient busy read; a first look that found
        # every core free has nothing to correct
        full = self.n is not None and self.n >= self.limit
        self.due = time.monotonic() + (_RECHECK_EVERY if full or settled else _RECHECK_FIRST)
        return self

    def poll(self) -> None:
        if not self.polling or time.monotonic() < self.due:
            return
        self.due = time.monotonic() + _RECHECK_EVERY
        pick = self._look()
        if pick is None:  # (a look that failed: the count stays)
            return
        n, self.last = max(pick, self.last), pick
        if n != self.n:
            torch.set_num_threads(n)
            self.n = n

    def _release(self) -> None:
        if self.outer is None:
            with _ACTIVE_LOCK:
                _ACTIVE[0] -= 1

    def __exit__(self, *exc):
        if not self.registered:
            return False
        _GOVERNOR.current = self.outer
        if torch.get_num_threads() != self.entry:
            torch.set_num_threads(self.entry)
        self._release()
        return False


def governed() -> bool:
    """Whether this thread runs inside a :class:`thread_governor` that set torch's threads (a
    fit's threads, chosen by its load looks)."""
    g = getattr(_GOVERNOR, "current", None)
    return g is not None and g.n is not None


def poll_threads() -> None:
    """Let this thread's :class:`thread_governor`, if any, look at the load again when due
    (a clock read otherwise)."""
    g = getattr(_GOVERNOR, "current", None)
    if g is not None:
        g.poll()
