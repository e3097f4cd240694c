"""Sweeps on a Dask cluster (issue 7): ``run_sweep(..., backend="dask")`` and
``somlab reproduce table2 --backend dask`` write the same results file as joblib, resume the same
way (the driver alone writes the file), and fail with one clear line when misused.

Real LARFDSSOM / Batch SS-SOM runs on one bundled glass fold, on local 2-worker clusters."""

from __future__ import annotations

import json
import os
import sys

import pytest

distributed = pytest.importorskip("distributed")

from somlab._errors import SomlabError  # noqa: E402
from somlab.cli import main  # noqa: E402
from somlab.experiments import runner  # noqa: E402
from somlab.experiments.lhs import authors_settings  # noqa: E402


def _relevance_available() -> bool:
    try:
        from somlab.relevance import BatchSSSOM  # noqa: F401
    except ImportError:
        return False
    return True


needs_maps = pytest.mark.skipif(
    not _relevance_available(), reason="somlab.relevance not importable yet"
)


def small_jobs() -> list[dict]:
    """12 quick jobs (2 models x 6 settings, one fold); (model, params) names each job."""
    settings = [dict(s, epochs=min(s["epochs"], 2), age_wins=min(s["age_wins"], 3))
                for s in authors_settings()[:6]]  # fmt: skip
    return [
        runner.make_job(model, "glass", frac, "x1_k1", i, p)
        for model, frac in (("larfdssom", 0.0), ("batchsssom", 0.1))
        for i, p in enumerate(settings)
    ]


def canonical(path) -> list[dict]:
    """The results file's records without timings, in key order (jobs finish in any order)."""
    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    recs = [{k: v for k, v in r.items() if k not in runner.TIMING_FIELDS} for r in lines]
    return sorted(recs, key=lambda r: r["key"])


def logging_factory(log):
    """The default factory, logging ``pid model|params-hash`` of each fit to ``log`` (a closure,
    so cloudpickle sends it by value to the workers)."""

    def factory(name, params):
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {name}|{runner.hash_params(params)}\n")
        return runner.default_model_factory(name, params)

    return factory


def fitted(log) -> list[tuple[int, str]]:
    if not os.path.exists(log):
        return []
    return [(int(p), ident) for p, ident in (line.split() for line in open(log))]


def ident(job) -> str:
    parts = job["key"].split("|")
    return f"{parts[0]}|{parts[-1]}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The joblib file of :func:`small_jobs` (in this process)."""
    path = tmp_path_factory.mktemp("joblib") / "runs.jsonl"
    res = runner.run_sweep(small_jobs(), path, n_jobs=1, progress=False)
    assert res.n_run == 12 and res.n_failed == 0
    return path


@pytest.fixture(scope="module")
def scheduler():
    """The address of a local cluster of 2 one-thread worker processes."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


# --------------------------------------------------------------------------- errors


def test_unknown_backend_and_stray_scheduler_are_clear_errors(tmp_path):
    path = tmp_path / "runs.jsonl"
    with pytest.raises(SomlabError, match=r"unknown backend 'ray'; choose from joblib, dask"):
        runner.run_sweep(small_jobs(), path, backend="ray", progress=False)
    with pytest.raises(SomlabError, match=r"needs backend 'dask'"):
        runner.run_sweep(small_jobs(), path, scheduler="tcp://127.0.0.1:8786", progress=False)
    assert not path.exists()


def test_missing_dask_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    path = tmp_path / "runs.jsonl"
    with pytest.raises(SomlabError, match=r'pip install "somlab\[cluster\]"'):
        runner.run_sweep(small_jobs(), path, backend="dask", progress=False)
    assert not path.exists()
    argv = ["reproduce", "table2", "--settings", "1", "--backend", "dask", "--quiet"]
    assert main([*argv, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "somlab[cluster]"' in err[0]


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    import socket

    import dask

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(SomlabError, match=r"cannot reach the dask scheduler tcp://127"):
            runner.run_sweep(
                small_jobs()[:1],
                tmp_path / "runs.jsonl",
                backend="dask",
                scheduler=f"tcp://127.0.0.1:{port}",
                progress=False,
            )


# --------------------------------------------------------------------------- same file


@needs_maps
def test_own_local_cluster_writes_the_joblib_file(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_DASK_WINDOW", 1)  # 8 jobs at a time (4 per worker): refills
    jobs = small_jobs()
    path, log = tmp_path / "runs.jsonl", tmp_path / "fits.log"
    res = runner.run_sweep(
        jobs, path, logging_factory(log), n_jobs=2, progress=False, backend="dask"
    )
    assert res.n_run == 12 and res.n_reused == 0 and res.n_failed == 0
    assert canonical(path) == canonical(reference)
    assert [r["key"] for r in res.records] == [j["key"] for j in jobs]
    fits = fitted(log)
    assert sorted(i for _, i in fits) == sorted(map(ident, jobs))  # each job once
    assert os.getpid() not in {pid for pid, _ in fits}  # on the workers, not here


@needs_maps
def test_dask_sweep_resumes_after_a_kill_and_runs_only_the_missing_jobs(
    reference, scheduler, tmp_path
):
    jobs = small_jobs()
    path, log = tmp_path / "runs.jsonl", tmp_path / "fits.log"
    first = runner.run_sweep(
        jobs[:5], path, logging_factory(log), progress=False, backend="dask", scheduler=scheduler
    )
    assert first.n_run == 5 and len(fitted(log)) == 5
    # a kill while writing the fifth line: four whole lines and half of the next
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    kept = {json.loads(line)["key"] for line in lines[:4]}
    os.remove(log)
    second = runner.run_sweep(
        jobs, path, logging_factory(log), progress=False, backend="dask", scheduler=scheduler
    )
    assert second.n_reused == 4 and second.n_run == 8
    missing = sorted(ident(j) for j in jobs if j["key"] not in kept)
    assert sorted(i for _, i in fitted(log)) == missing
    assert path.read_bytes().startswith(b"".join(lines[:4]))
    assert canonical(path) == canonical(reference)
    # the file is finished whatever the backend: joblib reruns nothing
    third = runner.run_sweep(jobs, path, n_jobs=1, progress=False)
    assert third.n_run == 0 and third.n_reused == 12


@needs_maps
def test_cli_reproduce_table2_backend_dask(scheduler, tmp_path, capsys):
    argv = ["reproduce", "table2", "--models", "larfdssom", "--datasets", "glass"]
    argv += ["--fractions", "0", "--folds", "0", "--settings", "2", "--max-epochs", "1"]
    argv += ["--no-plot", "--quiet", "--json"]
    dask_dir, joblib_dir = tmp_path / "dask", tmp_path / "joblib"
    assert (
        main([*argv, "--backend", "dask", "--scheduler", scheduler, "--out-dir", str(dask_dir)])
        == 0
    )
    table = json.loads(capsys.readouterr().out)
    assert table["meta"]["n_run_now"] == 2 and table["meta"]["n_failed"] == 0
    assert "--backend" not in table["meta"]["command"]  # where runs go is not in the report
    assert main([*argv, "--backend", "joblib", "--jobs", "1", "--out-dir", str(joblib_dir)]) == 0
    capsys.readouterr()
    assert canonical(dask_dir / "table2_runs.jsonl") == canonical(joblib_dir / "table2_runs.jsonl")
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main([*argv, "--backend", "ray", "--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "invalid choice: 'ray'" in capsys.readouterr().err


# --------------------------------------------------------------------------- backend "compiled"
def test_compiled_backend_writes_the_joblib_records(tmp_path):
    """``backend="compiled"``: the relevance jobs of a split train together on threads of this
    process (fit_many); the records equal joblib's (timings aside), an invalid setting is its
    own error record, and a rerun resumes."""
    import json

    from somlab.experiments.lhs import authors_settings

    settings = [dict(s, epochs=min(s["epochs"], 2), age_wins=min(s["age_wins"], 3))
                for s in authors_settings()[:4]]  # fmt: skip
    settings[1]["at"] = 1.5  # out of range
    jobs = [
        runner.make_job(model, "glass", frac, "x1_k1", i, p)
        for model, frac in (("batchsssom", 0.1), ("sssom", 1.0), ("larfdssom", 0.0))
        for i, p in enumerate(settings)
    ]

    def canonical(path):
        recs = [json.loads(line) for line in open(path, encoding="utf-8")]
        return sorted(
            ({k: v for k, v in r.items() if k not in runner.TIMING_FIELDS} for r in recs),
            key=lambda r: r["key"],
        )

    ref = runner.run_sweep(jobs, tmp_path / "joblib.jsonl", n_jobs=1, progress=False)
    got = runner.run_sweep(jobs, tmp_path / "c.jsonl", backend="compiled", n_jobs=2, progress=False)
    assert ref.n_failed == got.n_failed == 3 and got.n_run == len(jobs)
    assert canonical(tmp_path / "c.jsonl") == canonical(tmp_path / "joblib.jsonl")
    again = runner.run_sweep(jobs, tmp_path / "c.jsonl", backend="compiled", progress=False)
    assert again.n_reused == len(jobs) - 3 and again.n_run == 3  # errors run again
