"""A resumable parameter sweep: fit one model per job, score it, append one JSON line per job.

A *job* is a dict::

    {"key", "model", "dataset", "fraction", "fold", "setting", "params"}

``key`` (see :func:`job_key`) names the model, dataset, label fraction, fold, setting index and a
hash of the parameters, so a results file can hold several sweeps (other settings, an epoch cap)
without mixing them up. :func:`run_sweep` skips every job whose key already has a finished
record in the results file and appends the others as they finish (one writer at a time; each
line flushed and fsync'ed, so a kill loses at most the runs in flight; a truncated last line is
cut off on the next run). Runs go through joblib (one process per core by default) or a Dask
cluster (``backend="dask"``: a local one or a running scheduler), with a tqdm progress bar on
stderr. Only this process writes the results file, whatever the backend, so resuming works the
same way and a file begun with one backend can be finished with the other.

A run depends on its job only: the model is built by ``model_factory(model, params)`` from the
job's parameters (its seed included), the data by ``data_loader(dataset, fold, fraction)``, and
torch runs on one thread inside each job, so order, ``n_jobs`` and the other jobs never change a
result (timings aside).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import SomlabError

__all__ = [
    "BACKENDS",
    "MODEL_CLASSES",
    "TIMING_FIELDS",
    "SweepResult",
    "default_model_factory",
    "hash_params",
    "job_key",
    "load_split",
    "make_job",
    "read_results",
    "run_job",
    "run_sweep",
    "score_model",
    "write_report",
]

#: ``--models`` name -> class in :mod:`somlab.relevance`.
MODEL_CLASSES = {"larfdssom": "LARFDSSOM", "sssom": "SSSOM", "batchsssom": "BatchSSSOM"}

#: Fields of a record that are measurements of time (they differ between identical runs).
TIMING_FIELDS = ("fit_s", "predict_s", "cpu_s")

#: Where :func:`run_sweep` runs its jobs: joblib processes on this machine, a Dask cluster,
#: one BatchSSSOMEnsemble per data split in this process, or "compiled": the relevance-map jobs
#: of each split trained together by the compiled engine on threads of this process.
BACKENDS = ("joblib", "dask", "ensemble", "compiled")
#: most jobs one call of the compiled engine trains at once (backend "compiled")
COMPILED_MAX_JOBS = 256
#: most maps one BatchSSSOMEnsemble trains at once (backend "ensemble")
ENSEMBLE_MAX_MAPS = 512

#: Most jobs handed to a Dask cluster at once (refilled as they finish): 4 per worker thread,
#: at least this many, so that a large sweep does not put every job on the scheduler.
_DASK_WINDOW = 256


# ------------------------------------------------------------------------------ jobs


def hash_params(params: dict) -> str:
    text = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


@functools.lru_cache(maxsize=64)
def _fraction_text(fraction: float) -> str:
    return f"{round(float(fraction) * 100, 6):g}%"


def _plain(params) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in dict(params).items()}


def job_key(
    model: str, dataset: str, fraction: float, fold: str, setting: int, params, params_hash=None
) -> str:
    """Stable key ``model|dataset|fraction%|fold|setting|params-hash`` of a job (the hash: the
    first 12 hex digits of the SHA-1 of the parameters as sorted compact JSON)."""
    return "|".join(
        [
            str(model),
            str(dataset),
            _fraction_text(fraction),
            str(fold),
            str(int(setting)),
            params_hash or hash_params(_plain(params)),
        ]
    )


def make_job(
    model: str, dataset: str, fraction: float, fold: str, setting: int, params, params_hash=None
) -> dict:
    """A job dict with its key; ``params`` are the estimator's keyword arguments
    (``params_hash``: their precomputed hash; then ``params`` must hold plain python values
    and is shared, not copied, so that many jobs of one setting are built quickly)."""
    if params_hash is None:
        params = _plain(params)
    return {
        "key": job_key(model, dataset, fraction, fold, setting, params, params_hash),
        "model": str(model),
        "dataset": str(dataset),
        "fraction": float(fraction),
        "fold": str(fold),
        "setting": int(setting),
        "params": params,
    }


# ------------------------------------------------------------------------------ one job


def load_split(dataset: str, fold: str, fraction: float):
    """``(X_train, y_train, X_test, y_test)`` of a bundled UCI fold, ``fraction`` of the train
    labels kept (the rest -1), via :func:`somlab.datasets.load_uci`."""
    from ..datasets import load_uci

    b = load_uci(dataset, fold=fold, labelled=fraction)
    return b.X_train, b.y_train, b.X_test, b.y_test


def default_model_factory(name: str, params: dict):
    """``somlab.relevance.<LARFDSSOM|SSSOM|BatchSSSOM>(**params)``."""
    if name not in MODEL_CLASSES:
        raise SomlabError(f"unknown model {name!r}; choose from {', '.join(MODEL_CLASSES)}")
    try:
        from .. import relevance
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SomlabError(f"somlab.relevance cannot be imported: {exc}") from None
    cls = getattr(relevance, MODEL_CLASSES[name], None)
    if cls is None:
        raise SomlabError(f"somlab.relevance has no {MODEL_CLASSES[name]} (not built yet?)")
    return cls(**params)


@contextlib.contextmanager
def _one_torch_thread():
    """Run torch on one thread (results must not depend on the thread count); restore after."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def score_model(model, X_test, y_test, supervised: bool) -> dict:
    """CE and accuracy on the test split, noise scored both ways (SPEC.md §8).

    ``ce``/``acc``: noise samples in no cluster and wrong (``predict_cluster`` with
    ``filter_noise=True``: -1 counts in N, never in Dmax), as the authors' scripts.
    ``ce_all``/``acc_all``: every sample assigned to its winner's cluster
    (``filter_noise=False``; ``predict`` does not refit). ``noise``: the share of test samples
    left as noise in the first way. Accuracies are ``None`` for a model that saw no label (its
    ``predict`` gives cluster ids). The model's own ``filter_noise`` is restored afterwards.
    """
    from ..metrics import accuracy, clustering_error

    y_test = np.asarray(y_test)
    params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    has_flag = "filter_noise" in params
    out = {}
    try:
        for suffix, flag in (("", True), ("_all", False)):
            if has_flag:
                model.set_params(filter_noise=flag)
            clusters = np.asarray(model.predict_cluster(X_test))
            out["ce" + suffix] = float(clustering_error(y_test, clusters, noise=-1))
            if suffix == "":
                out["noise"] = float(np.mean(clusters == -1))
            if supervised:
                out["acc" + suffix] = float(accuracy(y_test, np.asarray(model.predict(X_test))))
            else:
                out["acc" + suffix] = None
    finally:
        if has_flag:
            model.set_params(filter_noise=params["filter_noise"])
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def run_job(job: dict, model_factory=None, data_loader=None) -> dict:
    """Fit and score one job; returns its record (the job's fields plus the results).

    Record fields: ``ce``, ``ce_all``, ``acc``, ``acc_all``, ``noise`` (see
    :func:`score_model`), ``n_nodes`` (the model's ``n_nodes_``), ``n_train``, ``n_labelled``,
    ``n_test``, ``fit_s``, ``predict_s`` (wall seconds), ``cpu_s`` (process CPU seconds of fit
    and scoring). A job whose model raises gets ``error`` (one line) instead of the results.
    """
    factory = model_factory if model_factory is not None else default_model_factory
    loader = data_loader if data_loader is not None else load_split
    rec = {k: job[k] for k in ("key", "model", "dataset", "fraction", "fold", "setting", "params")}
    X_train, y_train, X_test, y_test = loader(job["dataset"], job["fold"], job["fraction"])
    y_train = np.asarray(y_train)
    n_labelled = int((y_train >= 0).sum())
    rec.update(n_train=int(len(y_train)), n_labelled=n_labelled, n_test=int(len(y_test)))
    with _one_torch_thread():
        cpu0 = time.process_time()
        try:
            model = factory(job["model"], dict(job["params"]))
            t0 = time.perf_counter()
            model.fit(X_train, y_train)
            t1 = time.perf_counter()
            scores = score_model(model, X_test, y_test, supervised=n_labelled > 0)
            t2 = time.perf_counter()
        except Exception as exc:  # a failed setting must not end a day-long sweep
            rec["error"] = _one_line(exc)
            rec["cpu_s"] = time.process_time() - cpu0
            return rec
        cpu = time.process_time() - cpu0
    n_nodes = getattr(model, "n_nodes_", None)
    rec.update(scores)
    rec.update(
        n_nodes=None if n_nodes is None else int(n_nodes),
        fit_s=t1 - t0,
        predict_s=t2 - t1,
        cpu_s=cpu,
    )
    return rec


# ------------------------------------------------------------------------------ results file


def write_report(out_dir, stem: str, table: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``OUT_DIR/STEM.json`` (strict JSON: NaN as null) and ``STEM.md``, each atomically
    (:func:`somlab.persistence.atomic_write_text`): a kill or a full disk leaves the previous
    report or the new one, never half of either."""
    from ..cli import json_safe
    from ..persistence import atomic_write_text

    out_dir = Path(out_dir)
    text = json.dumps(json_safe(table), indent=2, allow_nan=False) + "\n"
    js = atomic_write_text(out_dir / f"{stem}.json", text, what="the report")
    md = atomic_write_text(out_dir / f"{stem}.md", markdown, what="the report")
    return js, md


def read_results(path) -> dict[str, dict]:
    """``key -> record`` of a JSONL results file (missing file: empty).

    Lines that do not parse as a JSON object with a ``key`` (a line cut short by a kill) are
    ignored; when a key occurs twice the later line wins.
    """
    path = Path(path)
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                out[rec["key"]] = rec
    return out


class _Appender:
    """Append-only JSONL writer: exclusive lock, torn tail cut off, flush + fsync per line."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+b")  # closed in close()
        try:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        except OSError:
            self.fh.close()
            raise SomlabError(f"another sweep is writing to {self.path}") from None
        self._cut_torn_tail()

    def _cut_torn_tail(self) -> None:
        fh = self.fh
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                fh.truncate(start + i + 1)
                break
            pos = start
        else:
            fh.truncate(0)
        fh.flush()
        os.fsync(fh.fileno())

    def append(self, rec: dict) -> None:
        line = json.dumps(rec, sort_keys=True, allow_nan=False) + "\n"
        self.fh.write(line.encode("utf-8"))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


# ------------------------------------------------------------------------------ sweep


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: the records of all requested jobs, in job order."""

    records: list = field(default_factory=list)
    n_run: int = 0
    n_reused: int = 0
    n_failed: int = 0
    wall_s: float = 0.0


def _check_unique(jobs) -> None:
    seen = set()
    for job in jobs:
        if job["key"] in seen:
            raise SomlabError(f"duplicate job key {job['key']}")
        seen.add(job["key"])


def run_sweep(
    jobs,
    results_path,
    model_factory=None,
    data_loader=None,
    n_jobs: int = -1,
    progress: bool = True,
    desc: str = "runs",
    backend: str = "joblib",
    scheduler: str | None = None,
) -> SweepResult:
    """Run every job not yet finished in ``results_path``; append each record as it finishes.

    Parameters
    ----------
    jobs : list of dict
        From :func:`make_job`; keys must be unique.
    results_path : path
        JSONL file (created with its folder when missing). Jobs whose key has a record without
        ``error`` are skipped; failed ones are tried again.
    model_factory : callable ``(model, params) -> estimator``, optional
        Default :func:`default_model_factory`. Must be picklable for ``n_jobs != 1`` or
        ``backend="dask"`` (joblib's loky backend and Dask use cloudpickle, so closures and
        test-local classes work; a Dask worker on another machine must be able to import the
        modules that a function defined in a module refers to, somlab included).
    data_loader : callable ``(dataset, fold, fraction) -> (X_train, y_train, X_test, y_test)``
        Default :func:`load_split` (on a remote worker: the worker's own bundled data).
    n_jobs : int, default -1
        Worker processes on this machine (joblib's convention: -1 = all cores, 1 = in this
        process with joblib; with ``backend="dask"`` and no ``scheduler``: the local cluster's
        workers, never more than the pending jobs). Ignored with a ``scheduler``.
    progress : bool
        tqdm bar with ETA on stderr.
    desc : str
        The bar's label.
    backend : {"joblib", "dask", "ensemble"}, default "joblib"
        ``"dask"`` needs ``dask.distributed`` (``pip install "somlab[cluster]"``). Without a
        ``scheduler`` it starts a ``distributed.LocalCluster`` of ``n_jobs`` worker processes
        with one thread each (no dashboard, on 127.0.0.1) and closes it at the end. Records are
        the same as with joblib (timings aside): each job runs :func:`run_job` with torch on one
        thread, and this process appends the records as the jobs finish.  ``"ensemble"``
        trains the Batch SS-SOM jobs of one split and one set of shared parameters together as
        a :class:`~somlab.relevance.BatchSSSOMEnsemble` in this process (for a GPU: put
        ``device="cuda"`` in the parameters); other models go to joblib.  Its maps equal the
        single fits to float rounding (the compiled CPU engine and the batched torch program
        differ in the last bits), so the records are joblib's (timings aside: ``fit_s`` is the
        ensemble's time over its maps) unless a test sample sits on a tie or on ``at``.
    scheduler : str, optional
        Address of a running Dask scheduler, e.g. ``"tcp://host:8786"`` (only with
        ``backend="dask"``). Its workers must have somlab (same version) installed; start them
        with one thread each (``dask worker tcp://host:8786 --nthreads 1 --nworkers N``), as a
        job's torch thread setting is per process. The jobs still waiting are cancelled when
        the sweep stops early (an error, Ctrl-C); the finished ones are in the file.

    Raises
    ------
    SomlabError
        Duplicate keys, an unknown ``backend``, a ``scheduler`` without ``backend="dask"``,
        dask missing, an unreachable scheduler, another sweep writing to ``results_path``.

    Examples
    --------
    Resume a sweep on a cluster (the same file as a local run, which it can continue)::

        run_sweep(jobs, "runs.jsonl", backend="dask", scheduler="tcp://10.0.0.5:8786")

    Returns
    -------
    SweepResult
    """
    t_start = time.perf_counter()
    _check_backend(backend, scheduler)
    jobs = list(jobs)
    _check_unique(jobs)
    writer = _Appender(results_path)
    try:
        done = {k: r for k, r in read_results(results_path).items() if "error" not in r}
        pending = [j for j in jobs if j["key"] not in done]
        result = SweepResult(n_reused=len(jobs) - len(pending))
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(jobs),
            initial=result.n_reused,
            desc=desc,
            unit="run",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
            smoothing=0.05,
        )
        new = {}
        try:
            if pending:
                records = _execute(pending, model_factory, data_loader, n_jobs, backend, scheduler)
                for rec in records:
                    writer.append(rec)
                    new[rec["key"]] = rec
                    result.n_run += 1
                    result.n_failed += "error" in rec
                    bar.update(1)
                    if result.n_failed:
                        bar.set_postfix(failed=result.n_failed, refresh=False)
        finally:
            bar.close()
    finally:
        writer.close()
    done.update(new)
    result.records = [done[j["key"]] for j in jobs if j["key"] in done]
    result.wall_s = time.perf_counter() - t_start
    return result


def _check_backend(backend, scheduler) -> None:
    if backend not in BACKENDS:
        raise SomlabError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if scheduler is not None and backend != "dask":
        raise SomlabError(f"a scheduler ({scheduler}) needs backend 'dask', not {backend!r}")
    if backend == "dask":
        _import_distributed()


def _import_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise SomlabError(
            f"backend 'dask' needs dask.distributed ({exc}); install it with "
            'pip install "somlab[cluster]" (or "somlab[dev]")'
        ) from None
    return distributed


def _execute(pending, model_factory, data_loader, n_jobs, backend="joblib", scheduler=None):
    """Yield records as jobs finish (any order)."""
    if backend == "ensemble":
        yield from _execute_ensemble(pending, model_factory, data_loader, n_jobs)
        return
    if backend == "dask":
        yield from _execute_dask(pending, model_factory, data_loader, n_jobs, scheduler)
        return
    if backend == "compiled":
        yield from _execute_compiled(pending, model_factory, data_loader, n_jobs)
        return
    if n_jobs == 1 or len(pending) == 1:
        for job in pending:
            yield run_job(job, model_factory, data_loader)
        return
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="2*n_jobs")
    parent = os.getpid()
    run = delayed(_run_job_watching_parent)
    yield from par(run(job, model_factory, data_loader, parent) for job in pending)


#: How often a joblib worker checks that the sweep process is still there (seconds).
PARENT_POLL_S = 0.5
_watched_parent: int | None = None


def _watch_parent(parent: int, poll: float = PARENT_POLL_S) -> None:
    """In a worker process: a daemon thread that ends this process when ``parent`` (the sweep)
    is gone, e.g. after a ``kill -9``; loky would keep an idle worker for minutes (its idle
    timeout) and a busy one until its job ends.  Once per process."""
    global _watched_parent
    if _watched_parent == parent or os.getpid() == parent:
        return
    _watched_parent = parent
    import threading

    ppid = os.getppid()

    def gone() -> bool:
        if os.getppid() != ppid:  # re-parented: the process that started us has died
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # pragma: no cover - alive, another user's
            return False
        return False

    def watch():
        while not gone():
            time.sleep(poll)
        os._exit(1)  # the sweep is gone: nobody will read this job's record

    threading.Thread(target=watch, name="somlab-parent-watch", daemon=True).start()


def _run_job_watching_parent(job, model_factory, data_loader, parent: int) -> dict:
    """:func:`run_job` in a joblib worker that ends itself when the sweep process dies."""
    _watch_parent(parent)
    return run_job(job, model_factory, data_loader)


def _ensemble_groups(pending, model_factory):
    """``(groups, rest)``: Batch SS-SOM jobs of the default factory grouped by data split and
    shared parameters, and every other job."""
    from ..relevance.ensemble import PER_MAP

    groups: dict = {}
    rest = []
    for job in pending:
        if job["model"] != "batchsssom" or model_factory is not None:
            rest.append(job)
            continue
        shared = {k: v for k, v in job["params"].items() if k not in PER_MAP}
        key = (job["dataset"], job["fold"], job["fraction"], json.dumps(shared, sort_keys=True))
        groups.setdefault(key, []).append(job)
    return list(groups.values()), rest


def _ensemble_chunks(jobs, n_samples: int):
    """``(chunks, invalid)``: the valid jobs of one group cut into ensembles small enough for
    the batched engine (maps x capacity and maps x batch below its key range, at most
    :data:`ENSEMBLE_MAX_MAPS`), and the jobs whose parameters are invalid (run alone, so that
    their records carry their own error)."""
    from ..relevance import BatchSSSOM
    from ..relevance._multi_engine import _KEY

    valid, invalid, caps = [], [], []
    for job in jobs:
        try:
            model = BatchSSSOM(**job["params"])
            model._validate_params()
            p = model._effective(n_samples)
            caps.append(max(int(p["max_nodes"]), int(p["batch_size"])))
            valid.append(job)
        except Exception:
            invalid.append(job)
    chunks, start = [], 0
    while start < len(valid):
        size, widest = 0, 1
        while start + size < len(valid) and size < ENSEMBLE_MAX_MAPS:
            w = max(widest, caps[start + size])
            if (size + 1) * w >= _KEY:
                break
            size, widest = size + 1, w
        size = max(size, 1)
        chunks.append(valid[start : start + size])
        start += size
    return chunks, invalid


def _execute_ensemble(pending, model_factory, data_loader, n_jobs=1):
    """Backend "ensemble": the Batch SS-SOM runs of one split and one set of shared
    parameters train as one :class:`~somlab.relevance.BatchSSSOMEnsemble` (one tensor program;
    on a GPU with ``device="cuda"`` in the parameters), each map scored as :func:`run_job`
    scores a single fit.  ``fit_s`` and ``cpu_s`` are the ensemble's shares per map.  Jobs of
    other models run with joblib on ``n_jobs`` processes; a job with invalid parameters, and
    every job of an ensemble whose fit fails, runs on its own (its record names its error).
    Records are written per ensemble, when its maps are scored."""

    groups, rest = _ensemble_groups(pending, model_factory)
    loader = data_loader if data_loader is not None else load_split
    for group in groups:
        first = group[0]
        X_train, y_train, X_test, y_test = loader(
            first["dataset"], first["fold"], first["fraction"]
        )
        y_train = np.asarray(y_train)
        chunks, invalid = _ensemble_chunks(group, len(y_train))
        for job in invalid:
            yield run_job(job, None, data_loader)
        for jobs in chunks:
            yield from _run_ensemble(jobs, data_loader, (X_train, y_train, X_test, y_test))
    if rest:
        yield from _execute(rest, model_factory, data_loader, n_jobs)


def _run_ensemble(jobs, data_loader, split):
    """Records of the jobs of one ensemble (see :func:`_execute_ensemble`)."""
    from ..relevance.ensemble import PER_MAP, BatchSSSOMEnsemble

    X_train, y_train, X_test, y_test = split
    shared = {k: v for k, v in jobs[0]["params"].items() if k not in PER_MAP}
    settings = [{k: v for k, v in j["params"].items() if k in PER_MAP} for j in jobs]
    with _one_torch_thread():
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        try:
            ens = BatchSSSOMEnsemble.from_settings(settings, **shared).fit(X_train, y_train)
        except Exception:  # each job again on its own: its error names its setting
            for job in jobs:
                yield run_job(job, None, data_loader)
            return
        fit_s = (time.perf_counter() - t0) / len(jobs)
        fit_cpu = (time.process_time() - cpu0) / len(jobs)
        yield from _trained_records(jobs, ens.models_, split, fit_s, fit_cpu)


def _trained_records(jobs, models, split, fit_s: float, fit_cpu: float):
    """The records of ``jobs`` whose ``models`` were trained together on ``split``, each scored
    as :func:`run_job` scores a single fit; ``fit_s`` / ``fit_cpu`` are each job's share."""
    _, y_train, X_test, y_test = split
    n_labelled = int((y_train >= 0).sum())
    for job, model in zip(jobs, models):
        rec = {k: job[k] for k in ("key", "model", "dataset", "fraction", "fold")}
        rec.update(setting=job["setting"], params=job["params"])
        rec.update(n_train=int(len(y_train)), n_labelled=n_labelled, n_test=int(len(y_test)))
        c0, t1 = time.process_time(), time.perf_counter()
        try:
            scores = score_model(model, X_test, y_test, supervised=n_labelled > 0)
        except Exception as exc:  # as run_job: one failed run must not end the sweep
            rec["error"] = _one_line(exc)
            rec["cpu_s"] = fit_cpu + time.process_time() - c0
            yield rec
            continue
        rec.update(scores)
        rec.update(
            n_nodes=int(model.n_nodes_),
            fit_s=fit_s,
            predict_s=time.perf_counter() - t1,
            cpu_s=fit_cpu + time.process_time() - c0,
        )
        yield rec


def _execute_compiled(pending, model_factory, data_loader, n_jobs=-1):
    """Backend "compiled": the LARFDSSOM / SS-SOM / Batch SS-SOM jobs of one data split train
    together (:func:`somlab.relevance._fit.fit_many`: the compiled engine on ``n_jobs`` threads
    with the GIL released, -1 = every core), each scored as :func:`run_job` scores a single
    fit (same records; ``fit_s`` and ``cpu_s`` are the call's shares per job).  Jobs of other
    models or of a custom factory run with joblib; a job whose parameters are invalid, and every
    job of a call that fails, runs on its own (its record names its error)."""
    from ..relevance._fit import fit_many

    groups: dict = {}
    rest = []
    for job in pending:
        if job["model"] not in MODEL_CLASSES or model_factory is not None:
            rest.append(job)
            continue
        groups.setdefault((job["dataset"], job["fold"], job["fraction"]), []).append(job)
    threads = None if n_jobs in (None, -1) else max(1, int(n_jobs))
    loader = data_loader if data_loader is not None else load_split
    for (dataset, fold, fraction), group in groups.items():
        X_train, y_train, X_test, y_test = loader(dataset, fold, fraction)
        y_train = np.asarray(y_train)
        for start in range(0, len(group), COMPILED_MAX_JOBS):
            jobs, models = [], []
            for job in group[start : start + COMPILED_MAX_JOBS]:
                try:
                    model = default_model_factory(job["model"], dict(job["params"]))
                    model._validate_params()
                except Exception:
                    yield run_job(job, None, data_loader)
                    continue
                jobs.append(job)
                models.append(model)
            if not jobs:
                continue
            with _one_torch_thread():
                cpu0, t0 = time.process_time(), time.perf_counter()
                try:
                    fit_many(models, X_train, y_train, n_threads=threads)
                except Exception:  # each job again on its own: its error names its setting
                    for job in jobs:
                        yield run_job(job, None, data_loader)
                    continue
                fit_s = (time.perf_counter() - t0) / len(jobs)
                fit_cpu = (time.process_time() - cpu0) / len(jobs)
                split = (X_train, y_train, X_test, y_test)
                yield from _trained_records(jobs, models, split, fit_s, fit_cpu)
    if rest:
        yield from _execute(rest, model_factory, data_loader, n_jobs)


def _run_job_on_worker(job, model_factory=None, data_loader=None) -> dict:
    """:func:`run_job` on a Dask worker. torch's thread count is per process, so it is set to
    one for good (not restored): two jobs in threads of one worker cannot undo each other's."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        pass
    else:
        torch.set_num_threads(1)
    return run_job(job, model_factory, data_loader)


@contextlib.contextmanager
def _dask_client(distributed, n_workers: int, scheduler):
    """A ``distributed.Client`` of ``scheduler``, or of a local cluster of ``n_workers``
    one-thread processes that is closed on exit."""
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(distributed.Client(cluster))
        else:
            try:
                client = stack.enter_context(distributed.Client(scheduler))
            except (OSError, TimeoutError, ValueError) as exc:
                raise SomlabError(f"cannot reach the dask scheduler {scheduler}: {exc}") from None
        yield client


def _execute_dask(pending, model_factory, data_loader, n_jobs, scheduler):
    """Yield records as the jobs finish on a Dask cluster; at most ``_DASK_WINDOW`` (or 4 per
    worker thread) jobs are on the scheduler at once."""
    distributed = _import_distributed()
    from joblib import effective_n_jobs

    n_workers = max(1, min(effective_n_jobs(n_jobs), len(pending)))
    run = functools.partial(
        _run_job_on_worker, model_factory=model_factory, data_loader=data_loader
    )
    token = uuid.uuid4().hex[:8]  # a rerun or another driver never shares a task key

    with _dask_client(distributed, n_workers, scheduler) as client:
        threads = sum(client.nthreads().values())
        window = max(_DASK_WINDOW, 4 * threads)
        todo = iter(pending)

        def submit(job):
            return client.submit(run, job, key=f"somlab-run-{token}-{job['key']}", pure=False)

        first = [submit(job) for job in itertools.islice(todo, window)]
        running = distributed.as_completed(first, loop=client.loop)
        try:
            for future in running:
                rec = future.result()
                future.release()
                nxt = next(todo, None)
                if nxt is not None:
                    running.add(submit(nxt))
                yield rec
        finally:
            left = list(running.futures)
            if left:  # stopped early: do not leave jobs on a shared cluster
                client.cancel(left)
