"""BatchSSSOMEnsemble: K Batch SS-SOM settings trained as one tensor program equal K single
fits node for node (prototypes, relevances, classes, edges, wins, history); errors."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

import somlab.relevance._fit as fit_module
from somlab import BatchSSSOM, BatchSSSOMEnsemble
from somlab.datasets import load_uci

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# five maps that differ in every per-map parameter: thresholds, rates, window, capacity, seed
SETTINGS = [
    dict(at=0.95, lp=0.01, beta=0.3, age_wins=1.5, eb=0.05, en=0.3, s=0.05, minwd=0.2,
         epochs=2, epush=0.5, max_nodes=30, random_state=0),
    dict(at=0.90, lp=0.05, beta=0.1, age_wins=0.4, eb=0.2, en=0.8, s=0.02, minwd=0.05,
         epochs=3, epush=0.1, max_nodes=12, random_state=1),
    dict(at=0.985, lp=0.002, beta=0.45, age_wins=2.5, eb=0.01, en=0.05, s=0.09, minwd=0.4,
         epochs=1, epush=0.9, max_nodes=40, random_state=2),
    dict(at=0.97, lp=0.08, beta=0.02, age_wins=0.2, eb=0.4, en=0.5, s=0.07, minwd=0.01,
         epochs=2, epush=0.3, max_nodes=6, random_state=3),
    dict(at=0.93, lp=0.03, beta=0.2, age_wins=0.9, eb=0.1, en=0.2, s=0.03, minwd=0.1,
         epochs=1, epush=0.0, max_nodes=25, random_state=4),
]  # fmt: skip

FLAG_SETS = {
    "defaults": {},
    "clone_per_sample": dict(
        labelled_conflict="clone", conflict_update="per_sample", unsup_insert="per_sample"
    ),
    "per_sample_pushes": dict(conflict_update="per_sample", unsup_insert="per_sample"),
    "cpp_rules": dict(distance="weighted_sq", sampling="replacement", init="random"),
    "reference_rules": dict(
        distance="reference", conn_metric="sq", count_unit="batch", connection_refresh="always",
        convergence="reference", clone_wins="copy", labelled_conflict="clone",
    ),
    "mean_threshold": dict(unsup_threshold="mean", count_all_wins=True, convergence="none"),
    "compat_reference": dict(compat="reference"),  # capacity="all_or_nothing" among them
    "all_or_nothing_clones": dict(capacity="all_or_nothing", labelled_conflict="clone"),
}  # fmt: skip


@pytest.fixture(scope="module")
def vowel():
    b = load_uci("vowel", labelled=0.25)
    return b.X_train[:300], b.y_train[:300], b.X_test


def _assert_same_map(got: BatchSSSOM, ref: BatchSSSOM):
    """The same nodes (count, classes, wins, edges, history); floats to rounding: a row
    updated in a batch of another size can meet the vectorized exp of the logistic relevance in
    a SIMD lane instead of a scalar tail (last-bit differences, which a steep logistic (small
    ``s``) can magnify to about 1e-5 relative in a relevance)."""
    assert got.n_nodes_ == ref.n_nodes_
    for name in ("node_class_index_", "node_wins_", "adjacency_"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    for name in ("prototypes_", "relevances_", "distance_averages_"):
        np.testing.assert_allclose(
            getattr(got, name), getattr(ref, name), rtol=1e-4, atol=1e-6, err_msg=name
        )
    assert got.history_ == ref.history_


@pytest.mark.parametrize("engine", ["torch", "auto"])
@pytest.mark.parametrize("flags", list(FLAG_SETS), ids=list(FLAG_SETS))
def test_maps_equal_single_fits(vowel, flags, engine):
    """The reference for each map is a single BatchSSSOM fit with the tensorized engine (SPEC
    §3, checked against the plain oracles elsewhere) and, where it applies, the compiled one."""
    X, y, X_test = vowel
    ens = BatchSSSOMEnsemble.from_settings(
        SETTINGS, batch_size=16, engine=engine, **FLAG_SETS[flags]
    )
    ens.fit(X, y)
    preds = ens.predict(X_test)
    assert preds.shape == (len(SETTINGS), X_test.shape[0])
    for k, params in enumerate(ens.get_map_params()):
        with warnings.catch_warnings():  # "auto": the named fallback for torch-only flags
            warnings.simplefilter("ignore", fit_module.EngineFallbackWarning)
            ref = BatchSSSOM(**params).fit(X, y)  # params hold the ensemble's engine
        _assert_same_map(ens.models_[k], ref)
        np.testing.assert_array_equal(preds[k], ref.predict(X_test))
    # the maps really differ (a broken per-map parameter would make them alike)
    assert len({m.n_nodes_ for m in ens.models_}) > 2


def test_unsupervised_and_fully_labelled(vowel):
    X, y, _ = vowel
    for labels in (None, np.where(y < 0, np.arange(len(y)) % 11, y)):
        ens = BatchSSSOMEnsemble.from_settings(SETTINGS[:3], batch_size=8).fit(X, labels)
        for k, params in enumerate(ens.get_map_params()):
            _assert_same_map(ens.models_[k], BatchSSSOM(**params).fit(X, labels))


def test_one_map_and_scalar_parameters(vowel):
    X, y, X_test = vowel
    ens = BatchSSSOMEnsemble(epochs=1, random_state=5).fit(X, y)
    assert ens.n_maps_ == 1
    _assert_same_map(ens.models_[0], BatchSSSOM(epochs=1, random_state=5).fit(X, y))
    # score: one accuracy per map, as each map's own score
    b = load_uci("vowel", labelled=1.0)
    assert ens.score(b.X_test, b.y_test) == pytest.approx(
        [ens.models_[0].score(b.X_test, b.y_test)]
    )


def test_to_models_are_independent_copies(vowel):
    X, y, _ = vowel
    ens = BatchSSSOMEnsemble.from_settings(SETTINGS[:2], batch_size=16).fit(X, y)
    models = ens.to_models()
    before = ens.models_[0].prototypes_.copy()
    models[0].prototypes_ += 1.0
    np.testing.assert_array_equal(ens.models_[0].prototypes_, before)
    assert models[1].get_params() == BatchSSSOM(**ens.get_map_params()[1]).get_params()


def test_save_load_predicts_exactly(vowel, tmp_path):
    from somlab import load

    X, y, X_test = vowel
    ens = BatchSSSOMEnsemble.from_settings(SETTINGS[:3], batch_size=16).fit(X, y)
    back = load(ens.save(tmp_path / "ens.somlab"))
    assert type(back) is BatchSSSOMEnsemble and back.n_maps_ == 3
    np.testing.assert_array_equal(back.predict(X_test), ens.predict(X_test))
    np.testing.assert_array_equal(back.n_nodes_, ens.n_nodes_)
    for got, ref in zip(back.models_, ens.models_):
        _assert_same_map(got, ref)
        assert got.get_params() == ref.get_params()


def test_errors(vowel):
    X, y, _ = vowel
    with pytest.raises(ValueError, match="per-map parameters"):
        BatchSSSOMEnsemble.from_settings([{"batch_size": 4}])
    with pytest.raises(ValueError, match="same length"):
        BatchSSSOMEnsemble(at=[0.9, 0.95], lp=[0.01, 0.02, 0.03]).fit(X, y)
    with pytest.raises(ValueError, match="at least one"):
        BatchSSSOMEnsemble.from_settings([])
    with pytest.raises(InvalidParameterError, match="'at'"):
        BatchSSSOMEnsemble(at=[0.9, 1.5]).fit(X, y)
    with pytest.raises(ValueError, match="fewer maps"):  # node ids would collide in sort keys
        BatchSSSOMEnsemble(at=[0.9] * 400, max_nodes=3000, engine="torch").fit(X, y)
    with pytest.raises(ValueError, match="engine='compiled' cannot run"):
        BatchSSSOMEnsemble(at=[0.9, 0.95], labelled_conflict="clone", engine="compiled").fit(X, y)
    with pytest.raises(NotFittedError):
        BatchSSSOMEnsemble().predict(X)
    with pytest.raises(ValueError, match="batch_size is shared by all maps"):
        BatchSSSOMEnsemble(at=[0.9, 0.95], batch_size=[8, 16]).fit(X, y)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        BatchSSSOMEnsemble(at=[0.9, 0.95]).fit(bad, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_maps_agree_with_single_cuda_fits(vowel):
    """On CUDA, sums by atomics (index_add_) may round differently from run to run, even for
    one map alone, and a last bit can flip a threshold: the maps agree with single CUDA fits in
    size and predictions, not bit for bit."""
    X, y, X_test = vowel
    ens = BatchSSSOMEnsemble.from_settings(SETTINGS, batch_size=16, device="cuda").fit(X, y)
    for k, params in enumerate(ens.get_map_params()):
        ref = BatchSSSOM(**params).fit(X, y)
        assert abs(ens.models_[k].n_nodes_ - ref.n_nodes_) <= max(1, ref.n_nodes_ // 10)
        agree = np.mean(ens.models_[k].predict(X_test) == ref.predict(X_test))
        assert agree >= 0.9


def test_sweep_backend_ensemble_writes_the_joblib_records(tmp_path, capsys):
    """``run_sweep(backend="ensemble")`` (and the CLI's ``--backend ensemble``): Batch SS-SOM
    jobs of one split train as one ensemble, other models one at a time; the records equal
    joblib's (timings aside), and a rerun resumes (nothing left to run)."""
    import json

    from somlab.cli import main
    from somlab.experiments import runner
    from somlab.experiments.lhs import authors_settings

    settings = [dict(s, epochs=min(s["epochs"], 2), age_wins=min(s["age_wins"], 3))
                for s in authors_settings()[:5]]  # fmt: skip
    jobs = [
        runner.make_job(model, "glass", frac, "x1_k1", i, p)
        for model, frac in (("batchsssom", 0.1), ("batchsssom", 1.0), ("larfdssom", 0.0))
        for i, p in enumerate(settings)
    ]

    def canonical(path):
        recs = [json.loads(line) for line in open(path, encoding="utf-8")]
        return sorted(
            ({k: v for k, v in r.items() if k not in runner.TIMING_FIELDS} for r in recs),
            key=lambda r: r["key"],
        )

    ref = runner.run_sweep(jobs, tmp_path / "joblib.jsonl", n_jobs=1, progress=False)
    got = runner.run_sweep(jobs, tmp_path / "ens.jsonl", backend="ensemble", progress=False)
    assert ref.n_failed == got.n_failed == 0 and got.n_run == len(jobs)
    assert canonical(tmp_path / "ens.jsonl") == canonical(tmp_path / "joblib.jsonl")
    again = runner.run_sweep(jobs, tmp_path / "ens.jsonl", backend="ensemble", progress=False)
    assert again.n_run == 0 and again.n_reused == len(jobs)
    # the CLI passes the backend through
    code = main(["reproduce", "table2", "--models", "batchsssom", "--datasets", "glass",
                 "--folds", "1", "--fractions", "10", "--settings", "3", "--max-epochs", "2",
                 "--max-age-wins", "3", "--backend", "ensemble", "--quiet", "--json",
                 "--out-dir", str(tmp_path / "cli")])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows and all(r["n_settings"] == 3 and r["n_failed"] == 0 for r in rows)
    cli_recs = canonical(tmp_path / "cli" / "table2_runs.jsonl")
    assert len(cli_recs) == 3 and all(r["n_nodes"] >= 1 for r in cli_recs)


def test_sweep_backend_ensemble_failures_are_records(tmp_path, monkeypatch):
    """An invalid setting and a scoring error give error records for their own jobs only; the
    groups are cut into several ensembles without changing any record."""
    from somlab.experiments import runner
    from somlab.experiments.lhs import authors_settings

    settings = [dict(s, epochs=1, age_wins=min(s["age_wins"], 2)) for s in authors_settings()[:5]]
    settings[2]["at"] = 1.5  # out of range
    jobs = [runner.make_job("batchsssom", "glass", 0.25, "x1_k1", i, p)
            for i, p in enumerate(settings)]  # fmt: skip
    ref = runner.run_sweep(jobs, tmp_path / "joblib.jsonl", n_jobs=1, progress=False)
    monkeypatch.setattr(runner, "ENSEMBLE_MAX_MAPS", 2)  # 4 valid jobs -> 2 ensembles
    score = runner.score_model

    def flaky(model, *args, **kwargs):
        if abs(model.at - settings[3]["at"]) < 1e-12:
            raise RuntimeError("scoring failed")
        return score(model, *args, **kwargs)

    monkeypatch.setattr(runner, "score_model", flaky)
    got = runner.run_sweep(jobs, tmp_path / "ens.jsonl", backend="ensemble", progress=False)
    assert ref.n_failed == 1 and got.n_failed == 2 and got.n_run == 5
    by_key = {r["key"]: r for r in got.records}
    ref_by_key = {r["key"]: r for r in ref.records}
    assert "at" in by_key[jobs[2]["key"]]["error"]
    assert by_key[jobs[3]["key"]]["error"] == "RuntimeError: scoring failed"
    for i in (0, 1, 4):
        k = jobs[i]["key"]
        assert {f: by_key[k][f] for f in ("ce", "acc", "n_nodes", "noise")} == {
            f: ref_by_key[k][f] for f in ("ce", "acc", "n_nodes", "noise")
        }
