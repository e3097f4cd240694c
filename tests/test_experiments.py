"""somlab.experiments: LHS settings, the resumable sweep runner, Table II aggregation and the
``somlab reproduce table2`` command. The runner is tested with a small fake estimator (a seeded
k-means with the relevance maps' interface), never with the real maps, except for one
integration test that is skipped while ``somlab.relevance`` cannot be imported."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics
import zlib
from importlib import resources

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from somlab.cli import main
from somlab.experiments import lhs, runner, table2
from somlab.experiments.lhs import TABLE_I_RANGES, authors_settings, draw_settings, lhs_unit

# --------------------------------------------------------------------------- fake estimator

CALLS: list[str] = []  # keys of fitted settings (in this process: n_jobs=1)


class FakeMap(BaseEstimator):
    """Seeded k-means with the relevance maps' interface: ``age_wins % 4 + 1`` clusters,
    noise = farther from the centre than the ``at`` quantile of the training distances."""

    def __init__(
        self,
        at=0.9,
        lp=0.01,
        beta=0.1,
        age_wins=3,
        eb=0.1,
        en=0.1,
        s=0.05,
        minwd=0.1,
        epochs=1,
        epush=0.1,
        random_state=0,
        filter_noise=False,
    ):
        self.at = at
        self.lp = lp
        self.beta = beta
        self.age_wins = age_wins
        self.eb = eb
        self.en = en
        self.s = s
        self.minwd = minwd
        self.epochs = epochs
        self.epush = epush
        self.random_state = random_state
        self.filter_noise = filter_noise

    def fit(self, X, y=None):
        CALLS.append(f"{self.age_wins}-{self.random_state}")
        X = np.asarray(X, dtype=np.float64)
        y = np.full(len(X), -1) if y is None else np.asarray(y)
        k = min(int(self.age_wins) % 4 + 1, len(X))
        rng = np.random.default_rng(int(self.random_state))
        C = X[rng.choice(len(X), k, replace=False)]
        for _ in range(int(self.epochs) + 2):
            lab = ((X[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
            C = np.stack([X[lab == j].mean(0) if (lab == j).any() else C[j] for j in range(k)])
        d = np.sqrt(((X[:, None, :] - C[None]) ** 2).sum(-1))
        lab = d.argmin(1)
        self.centres_ = C
        self.radius_ = float(np.quantile(d.min(1), float(self.at)))
        self.supervised_ = bool((y >= 0).any())
        self.node_classes_ = np.array(
            [
                np.bincount(y[(lab == j) & (y >= 0)]).argmax()
                if ((lab == j) & (y >= 0)).any()
                else -1
                for j in range(k)
            ]
        )
        self.n_nodes_ = k
        return self

    def predict_cluster(self, X):
        d = np.sqrt(((np.asarray(X, np.float64)[:, None, :] - self.centres_[None]) ** 2).sum(-1))
        c = d.argmin(1)
        if self.filter_noise:
            c = np.where(d.min(1) > self.radius_, -1, c)
        return c

    def predict(self, X):
        c = self.predict_cluster(X)
        if not self.supervised_:
            return c
        return np.where(c >= 0, self.node_classes_[np.maximum(c, 0)], -1)


def fake_factory(name, params):
    return FakeMap(**params)


def synthetic_loader(dataset, fold, fraction):
    """Three Gaussian blobs in [0,1]^4, seeded by (dataset, fold); ``fraction`` labelled."""
    rng = np.random.default_rng(zlib.crc32(f"{dataset}/{fold}".encode()))
    centres = rng.uniform(0.2, 0.8, size=(3, 4))
    y = rng.integers(0, 3, size=90)
    X = np.clip(centres[y] + rng.normal(0, 0.08, size=(90, 4)), 0, 1).astype(np.float32)
    y_train = y[:60].copy()
    keep = np.random.default_rng(7).random(60) < fraction
    y_train[~keep] = -1
    return X[:60], y_train, X[60:], y[60:]


def small_jobs():
    settings = draw_settings(3, seed=1)
    for s in settings:
        s["epochs"] = min(s["epochs"], 3)
    jobs = []
    for dataset in ("a", "b"):
        for fold in ("x1_k1", "x2_k1"):
            for frac in (0.0, 0.5):
                for i, p in enumerate(settings):
                    jobs.append(runner.make_job("batchsssom", dataset, frac, fold, i, p))
    return jobs


def strip_timing(rec):
    return {k: v for k, v in rec.items() if k not in runner.TIMING_FIELDS}


# --------------------------------------------------------------------------- LHS


@pytest.mark.parametrize("n", [1, 7, 50])
def test_lhs_unit_one_point_per_stratum(n):
    u = lhs_unit(n, 11, seed=3)
    assert u.shape == (n, 11)
    assert ((u >= 0) & (u < 1)).all()
    for j in range(11):
        assert sorted(np.floor(u[:, j] * n).astype(int).tolist()) == list(range(n))


def test_draw_settings_stratified_ranges_and_integers():
    n = 200
    settings = draw_settings(n, seed=5)
    assert len(settings) == n
    assert all(list(s) == list(TABLE_I_RANGES) for s in settings)
    unit = lhs_unit(n, len(TABLE_I_RANGES), seed=5)
    for j, (name, (lo, hi, is_int)) in enumerate(TABLE_I_RANGES.items()):
        col = np.array([s[name] for s in settings], dtype=np.float64)
        assert (col >= lo).all() and (col <= hi).all(), name
        if is_int:
            assert all(type(s[name]) is int for s in settings)
            # rounded half away from zero from the scaled coordinate
            assert (col == np.floor(lo + unit[:, j] * (hi - lo) + 0.5)).all()
        else:
            assert all(type(s[name]) is float for s in settings)
            strata = np.floor((col - lo) / (hi - lo) * n).astype(int)
            assert sorted(strata.tolist()) == list(range(n)), name
    assert {s["random_state"] for s in settings} <= set(range(1, 10001))
    assert TABLE_I_RANGES["at"][:2] == (0.90, 0.999)
    assert TABLE_I_RANGES["random_state"][:2] == (1, 10000)


def test_round_half_away_from_zero():
    assert lhs.round_half_away([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999]).tolist() == [
        1,
        2,
        3,
        -1,
        -3,
        2,
    ]


def test_draw_settings_same_seed_same_settings():
    assert draw_settings(20, seed=11) == draw_settings(20, seed=11)
    assert draw_settings(20, seed=11) != draw_settings(20, seed=12)
    with pytest.raises(ValueError):
        draw_settings(0)


def test_authors_settings_map_the_bundled_csv():
    settings = authors_settings()
    assert len(settings) == 500
    text = resources.files("somlab.datasets").joinpath("data", "sssom_0.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    header, first = rows[0], rows[1]
    assert header == "at,lp,beta,age_wins,e_b,e_n,s,minwd,epochs,push,seed".split(",")
    names = ["at", "lp", "beta", "age_wins", "eb", "en", "s", "minwd", "epochs", "epush"]
    expected = {k: float(v) for k, v in zip(names + ["random_state"], first)}
    assert settings[0] == pytest.approx(expected)
    assert list(settings[0]) == names + ["random_state"]
    assert all(type(settings[0][k]) is int for k in ("age_wins", "epochs", "random_state"))
    assert settings[0]["random_state"] == int(first[10])


# --------------------------------------------------------------------------- runner


def test_job_key_is_stable_and_names_the_parameters():
    a = runner.make_job("batchsssom", "glass", 0.05, "x1_k2", 4, {"at": 0.95, "epochs": 3})
    b = runner.make_job("batchsssom", "glass", 0.05, "x1_k2", 4, {"epochs": 3, "at": 0.95})
    c = runner.make_job("batchsssom", "glass", 0.05, "x1_k2", 4, {"epochs": 4, "at": 0.95})
    assert a["key"] == b["key"] != c["key"]
    assert a["key"].startswith("batchsssom|glass|5%|x1_k2|4|")


def test_sweep_resumes_after_a_kill_mid_line(tmp_path):
    jobs = small_jobs()
    path = tmp_path / "runs.jsonl"
    CALLS.clear()
    first = runner.run_sweep(jobs, path, fake_factory, synthetic_loader, n_jobs=1, progress=False)
    assert len(CALLS) == len(jobs) == first.n_run == 24 and first.n_reused == 0
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 24
    # a kill while writing line 11: ten whole lines and half of the next
    path.write_bytes(b"".join(lines[:10]) + lines[10][: len(lines[10]) // 2])
    CALLS.clear()
    second = runner.run_sweep(jobs, path, fake_factory, synthetic_loader, n_jobs=1, progress=False)
    assert len(CALLS) == 14 == second.n_run and second.n_reused == 10
    text = path.read_text()
    assert text.endswith("\n")
    keys = [json.loads(line)["key"] for line in text.splitlines()]  # every line parses
    assert sorted(keys) == sorted(j["key"] for j in jobs)  # each key exactly once
    assert [strip_timing(r) for r in second.records] == [strip_timing(r) for r in first.records]
    # a third run does nothing
    CALLS.clear()
    third = runner.run_sweep(jobs, path, fake_factory, synthetic_loader, progress=False)
    assert CALLS == [] and third.n_run == 0 and third.n_reused == 24
    rec = third.records[0]
    for field in ("ce", "ce_all", "acc", "acc_all", "noise", "n_nodes", "fit_s", "predict_s"):
        assert field in rec
    assert rec["params"] == jobs[0]["params"]


def test_sweep_results_do_not_depend_on_order_or_processes(tmp_path):
    jobs = small_jobs()
    one = runner.run_sweep(
        jobs, tmp_path / "one.jsonl", fake_factory, synthetic_loader, n_jobs=1, progress=False
    )
    shuffled = list(jobs)
    random.Random(0).shuffle(shuffled)
    two = runner.run_sweep(
        shuffled, tmp_path / "two.jsonl", fake_factory, synthetic_loader, n_jobs=2, progress=False
    )
    a = {r["key"]: strip_timing(r) for r in one.records}
    b = {r["key"]: strip_timing(r) for r in two.records}
    assert a == b and len(a) == 24
    # the noise-aware and all-assigned scorings differ somewhere, and unsupervised runs have
    # no accuracy
    assert any(r["ce"] != r["ce_all"] for r in a.values())
    assert all(r["acc"] is None for r in a.values() if r["fraction"] == 0)
    assert all(r["acc"] is not None for r in a.values() if r["fraction"] == 0.5)


def test_failed_runs_are_recorded_and_retried(tmp_path):
    jobs = small_jobs()[:4]

    def flaky(name, params):
        if params["random_state"] == jobs[1]["params"]["random_state"]:
            raise RuntimeError("boom\nsecond line")
        return FakeMap(**params)

    path = tmp_path / "runs.jsonl"
    res = runner.run_sweep(jobs, path, flaky, synthetic_loader, n_jobs=1, progress=False)
    assert res.n_failed == 1
    bad = [r for r in res.records if "error" in r]
    assert bad[0]["error"] == "RuntimeError: boom"
    res = runner.run_sweep(jobs, path, fake_factory, synthetic_loader, n_jobs=1, progress=False)
    assert res.n_run == 1 and res.n_failed == 0
    assert all("error" not in r for r in res.records)


def test_score_model_restores_filter_noise():
    X_tr, y_tr, X_te, y_te = synthetic_loader("a", "x1_k1", 1.0)
    m = FakeMap(at=0.5, age_wins=2, filter_noise=False).fit(X_tr, y_tr)
    out = runner.score_model(m, X_te, y_te, supervised=True)
    assert m.filter_noise is False
    assert out["noise"] > 0 and out["ce"] <= out["ce_all"]
    from somlab.metrics import accuracy, clustering_error

    m.set_params(filter_noise=True)
    assert out["ce"] == clustering_error(y_te, m.predict_cluster(X_te))
    assert out["acc"] == accuracy(y_te, m.predict(X_te))


# --------------------------------------------------------------------------- aggregation


def hand_records():
    """CE per (setting, fold): s0 = .5 .7 .6, s1 = .6 .45 .8; ce_all = ce + .1 except s0 f1."""
    ce = {0: [0.5, 0.7, 0.6], 1: [0.6, 0.45, 0.8]}
    nodes = {0: [10, 20, 30], 1: [1, 2, 3]}
    acc = {0: [0.1, 0.2, 0.3], 1: [0.4, 0.5, 0.6]}
    recs = []
    for s in (0, 1):
        for i, fold in enumerate(("x1_k1", "x1_k2", "x1_k3")):
            recs.append(
                {
                    "key": f"m|d|{s}|{fold}",
                    "model": "batchsssom",
                    "dataset": "glass",
                    "fraction": 0.1,
                    "fold": fold,
                    "setting": s,
                    "params": {},
                    "ce": ce[s][i],
                    "ce_all": ce[s][i] + (0.3 if (s, i) == (0, 0) else 0.1),
                    "acc": acc[s][i],
                    "acc_all": acc[s][i] / 2,
                    "n_nodes": nodes[s][i],
                    "cpu_s": 1.0,
                    "fit_s": 0.5,
                }
            )
    recs.append({**recs[0], "key": "m|d|err", "setting": 2, "error": "ValueError: x"})
    return recs


def test_aggregation_on_a_hand_made_jsonl(tmp_path):
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in hand_records()) + '{"key": "trunc')
    rows = table2.aggregate(list(runner.read_results(path).values()))
    assert len(rows) == 6  # 2 scorings x (reference, honest, accuracy): the model saw labels
    get = {(r["scoring"], r["selection"]): r for r in rows}
    ref = get[("noise", "reference")]
    # per fold max: .6 (s1), .7 (s0), .8 (s1)
    assert ref["fold_ce"] == {"x1_k1": 0.6, "x1_k2": 0.7, "x1_k3": 0.8}
    assert ref["settings"] == [1, 0, 1]
    assert ref["ce_mean"] == pytest.approx(0.7)
    assert ref["ce_std"] == pytest.approx(0.1)  # sample std of .6 .7 .8
    assert ref["acc_mean"] == pytest.approx((0.4 + 0.2 + 0.6) / 3)
    assert ref["nodes_mean"] == pytest.approx((1 + 20 + 3) / 3)
    assert ref["n_folds"] == 3 and ref["n_settings"] == 2 and ref["n_failed"] == 1
    assert ref["fraction"] == 10
    by_acc = get[("noise", "accuracy")]  # mean accuracy: s0 .2, s1 .5 -> s1
    assert by_acc["settings"] == [1] and by_acc["acc_mean"] == pytest.approx(0.5)
    assert by_acc["ce_mean"] == pytest.approx((0.6 + 0.45 + 0.8) / 3)
    honest = get[("noise", "honest")]
    # means: s0 .6, s1 .6167 -> s1 for every fold
    assert honest["settings"] == [1]
    assert honest["ce_mean"] == pytest.approx((0.6 + 0.45 + 0.8) / 3)
    assert honest["ce_std"] == pytest.approx(statistics.stdev([0.6, 0.45, 0.8]))
    assert honest["nodes_mean"] == pytest.approx(2)
    # every-sample-assigned scoring selects on ce_all: s0 = .8 .8 .7, s1 = .7 .55 .9
    ref_all = get[("all", "reference")]
    assert ref_all["settings"] == [0, 0, 1]
    assert ref_all["ce_mean"] == pytest.approx((0.8 + 0.8 + 0.9) / 3)
    assert ref_all["acc_mean"] == pytest.approx((0.05 + 0.1 + 0.3) / 3)
    honest_all = get[("all", "honest")]
    assert honest_all["settings"] == [0]  # .7667 > .7167
    assert honest_all["ce_std"] == pytest.approx(statistics.stdev([0.8, 0.8, 0.7]))


def test_aggregation_ties_and_single_fold():
    recs = [r for r in hand_records() if r["fold"] == "x1_k1" and "error" not in r]
    recs[1] = {**recs[1], "ce": recs[0]["ce"]}  # tie at .5: the lower setting index wins
    rows = table2.aggregate(recs)
    ref = next(r for r in rows if r["scoring"] == "noise" and r["selection"] == "reference")
    assert ref["settings"] == [0] and ref["ce_std"] is None and ref["n_folds"] == 1


def test_markdown_has_paper_numbers_command_and_targets():
    cfg = table2.Table2Config(datasets=("glass",), fractions=(0, 10), folds=("x1_k1",))
    recs = hand_records()
    recs += [{**r, "key": r["key"] + "0", "fraction": 0.0, "acc": None} for r in recs]
    meta = {"command": table2.command_line(cfg), "date": "2025-01-01", "machine": {}}
    table = table2.build_table(recs, cfg, meta)
    md = table2.render_markdown(table)
    assert "somlab reproduce table2 --settings 500 --lhs-seed 0 --models batchsssom" in md
    for paper in (".763", ".723", ".537", ".580", ".693", ".301", ".727", ".575", ".719", ".738"):
        assert paper in md
    assert "| Glass | .537 |" in md
    assert "target met on 1/1" in md  # .7 >= .537
    (t,) = table["targets"]
    assert t["met"] is True and t["stretch_met"] is True and t["ce"] == pytest.approx(0.7)
    assert ".700 ± .100 / — / 8.0" in md  # CE ± std / accuracy (none at 0 %) / nodes
    assert ".700 ± .100 / .400 / 8.0" in md  # at 10 %


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def fake_models(monkeypatch):
    monkeypatch.setattr(runner, "default_model_factory", fake_factory)


def test_cli_json_equals_the_table_and_reruns_nothing(tmp_path, capsys, fake_models):
    argv = [
        "reproduce",
        "table2",
        "--datasets",
        "breast,liver",
        "--fractions",
        "0,100",
        "--folds",
        "0,x2_k2",
        "--settings",
        "3",
        "--max-epochs",
        "2",
        "--jobs",
        "1",
        "--out-dir",
        str(tmp_path),
        "--json",
    ]
    assert main(argv) == 0
    out = capsys.readouterr()
    table = json.loads(out.out)
    assert table == json.loads((tmp_path / "table2.json").read_text())
    assert (tmp_path / "table2.png").stat().st_size > 0
    recs = list(runner.read_results(tmp_path / "table2_runs.jsonl").values())
    assert len(recs) == 2 * 2 * 2 * 3 == table["meta"]["n_runs"] == table["meta"]["n_run_now"]
    assert table["rows"] == json.loads(json.dumps(table2.aggregate(recs)))
    assert {t["dataset"] for t in table["targets"]} == {"breast", "liver"}
    assert all(r["params"]["epochs"] <= 2 for r in recs)
    md = (tmp_path / "table2.md").read_text()
    assert table["meta"]["command"] in md and "--folds x1_k1,x2_k2" in md
    assert ".763" in md and ".580" in md and ".603" in md
    # a rerun reads everything back and prints the same rows
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["meta"]["n_run_now"] == 0 and again["meta"]["n_reused"] == 24
    assert again["rows"] == table["rows"]


def test_cli_quick_preset_and_overrides(tmp_path):
    from somlab.cli import build_parser

    args = build_parser().parse_args(["reproduce", "table2", "--quick", "--datasets", "vowel"])
    cfg = table2.config_from_args(args)
    assert cfg.quick and cfg.datasets == ("vowel",)
    assert cfg.fractions == table2.QUICK["fractions"]
    assert cfg.settings == table2.QUICK["settings"]
    assert cfg.max_epochs == table2.QUICK["max_epochs"]
    assert cfg.max_age_wins == table2.QUICK["max_age_wins"]
    assert all(s["age_wins"] <= cfg.max_age_wins for s in table2.settings_for(cfg))
    assert "--max-age-wins 5" in table2.command_line(cfg)
    args = build_parser().parse_args(
        ["reproduce", "table2", "--with-pendigits", "--settings", "authors", "--model", "sssom"]
    )
    cfg = table2.config_from_args(args)
    assert cfg.datasets == (*table2.PAPER_DATASETS, "pendigits")
    assert cfg.settings == "authors" and cfg.models == ("sssom",)
    assert len(table2.settings_for(cfg)) == 500
    assert len(table2.build_jobs(cfg)) == 7 * 8 * 9 * 500


def test_cli_compat_and_params_enter_settings_keys_and_command():
    from somlab.cli import build_parser

    argv = ["reproduce", "table2", "--settings", "3", "--models", "larfdssom,sssom"]
    extra = ["--compat", "cpp_larfdssom", "--param", "max_nodes=50", "--param", "lp=0.5"]
    cfg = table2.config_from_args(build_parser().parse_args(argv + extra))
    assert cfg.extra == {"compat": "cpp_larfdssom", "max_nodes": 50, "lp": 0.5}
    assert all(s["max_nodes"] == 50 and s["lp"] == 0.5 for s in table2.settings_for(cfg))
    cmd = table2.command_line(cfg)
    assert "--compat cpp_larfdssom --param max_nodes=50 --param lp=0.5" in cmd
    # the printed command re-creates the same configuration
    again = table2.config_from_args(build_parser().parse_args(cmd.split()[1:]))
    assert again == cfg
    plain = table2.config_from_args(build_parser().parse_args(argv))
    keys = {j["key"] for j in table2.build_jobs(cfg)}
    assert keys.isdisjoint(j["key"] for j in table2.build_jobs(plain))
    # SS-SOM without labels would repeat LARFDSSOM's runs: skipped when both are asked for
    jobs = table2.build_jobs(plain)
    assert {j["fraction"] for j in jobs if j["model"] == "larfdssom"} == {0.0}
    assert 0.0 not in {j["fraction"] for j in jobs if j["model"] == "sssom"}
    only = table2.config_from_args(build_parser().parse_args([*argv[:-1], "sssom"]))
    assert 0.0 in {j["fraction"] for j in table2.build_jobs(only)}


@pytest.mark.parametrize(
    "bad",
    [
        ["--settings", "lots"],
        ["--datasets", "iris"],
        ["--fractions", "3"],
        ["--folds", "x4_k1"],
        ["--models", "som"],
        ["--models", "larfdssom", "--fractions", "10"],
        ["--jobs", "0"],
        ["--param", "count_unit"],
        ["--param", "count_unit=weird"],
        ["--param", "no_such_param=1"],
        ["--compat", "cpp"],
    ],
)
def test_cli_bad_options_one_line_exit_2(bad, tmp_path, capsys):
    code = main(["reproduce", "table2", *bad, "--out-dir", str(tmp_path), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("somlab: error:")


# --------------------------------------------------------------------------- real models


def _relevance_available() -> bool:
    try:
        from somlab.relevance import BatchSSSOM  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _relevance_available(), reason="somlab.relevance not importable yet")
def test_real_quick_preset_on_one_dataset_fold_setting(tmp_path):
    narrow = dict(datasets=("breast",), folds=("x1_k1",), fractions=(10,), settings=1)
    cfg = table2.Table2Config(**{**table2.QUICK, **narrow}, quick=True)
    table = table2.reproduce_table2(cfg, out_dir=tmp_path, n_jobs=1, progress=False, plot=False)
    (rec,) = runner.read_results(tmp_path / "table2_quick_runs.jsonl").values()
    assert "error" not in rec, rec.get("error")
    assert 0 <= rec["ce"] <= 1 and 0 <= rec["ce_all"] <= 1
    assert 0 <= rec["acc"] <= 1 and rec["n_nodes"] >= 1
    assert rec["params"]["epochs"] <= table2.QUICK["max_epochs"]
    assert rec["params"]["age_wins"] <= table2.QUICK["max_age_wins"]
    assert table["meta"]["n_runs"] == 1
    assert math.isfinite(table["rows"][0]["ce_mean"])
    assert (tmp_path / "table2_quick.md").exists()


@pytest.mark.skipif(not _relevance_available(), reason="somlab.relevance not importable yet")
def test_real_maps_sweep_is_deterministic_whatever_the_order(tmp_path):
    """Issue 9: same data, parameters and seed give the same result on the CPU whatever ran
    before in the process and in whatever order the settings run (C++ orders nodes by memory
    address; we must not)."""
    import torch

    settings = [dict(s, epochs=min(s["epochs"], 3), age_wins=min(s["age_wins"], 3))
                for s in authors_settings()[:4]]  # fmt: skip
    jobs = [
        runner.make_job(model, "glass", frac, fold, i, p)
        for model, frac in (("larfdssom", 0.0), ("sssom", 0.1), ("batchsssom", 0.1))
        for fold in ("x1_k1", "x2_k2")
        for i, p in enumerate(settings)
    ]
    one = runner.run_sweep(jobs, tmp_path / "one.jsonl", n_jobs=1, progress=False)
    # disturb global state (torch's and numpy's default generators), then run reversed
    torch.manual_seed(123)
    torch.rand(1000)
    np.random.seed(5)
    two = runner.run_sweep(jobs[::-1], tmp_path / "two.jsonl", n_jobs=1, progress=False)
    a = {r["key"]: strip_timing(r) for r in one.records}
    b = {r["key"]: strip_timing(r) for r in two.records}
    assert len(a) == len(jobs) and a == b
    assert all("error" not in r for r in a.values())
    # the settings differ, so a leak of state between runs would show
    assert len({(r["ce"], r["n_nodes"]) for r in a.values()}) > 3


def test_three_map_summary_targets_and_sssom_uses_larfdssom_runs_at_0():
    recs = []
    for model, frac, ce in (("larfdssom", 0.0, 0.75), ("sssom", 1.0, 0.9)):
        for fold in ("x1_k1", "x1_k2"):
            for s, bump in ((0, 0.0), (1, 0.02)):
                recs.append(
                    {
                        "key": f"{model}|{fold}|{s}",
                        "model": model,
                        "dataset": "shape",
                        "fraction": frac,
                        "fold": fold,
                        "setting": s,
                        "params": {},
                        "ce": ce + bump,
                        "ce_all": ce,
                        "acc": None if frac == 0 else 0.8 - bump,
                        "acc_all": None if frac == 0 else 0.8,
                        "n_nodes": 4,
                    }
                )
    cfg = table2.Table2Config(
        models=("larfdssom", "sssom"), datasets=("shape",), fractions=(0, 100),
        folds=("x1_k1", "x1_k2"), settings=2,
    )  # fmt: skip
    table = table2.build_table(recs, cfg, {"command": "somlab reproduce table2 ..."})
    tg = {t["model"]: t for t in table["targets"]}
    # LARFDSSOM against the C++ figure, SS-SOM (no 0 % runs of its own) against the paper's row
    assert tg["larfdssom"]["target"] == table2.CPP_LARFDSSOM_CE["shape"] == 0.752
    assert tg["larfdssom"]["ce"] == pytest.approx(0.77) and tg["larfdssom"]["met"]
    assert tg["sssom"]["source"] == "larfdssom" and tg["sssom"]["ce"] == pytest.approx(0.77)
    assert tg["sssom"]["target"] == 0.719 and tg["sssom"]["met"]
    md = table2.render_markdown(table)
    assert "## Summary: the three maps" in md
    assert "| somlab LARFDSSOM | 0 % | .770 / 4.0 |" in md
    assert "| somlab SS-SOM | 100 % | .920 / 4.0 |" in md
    # the accuracy rule picks setting 0 (mean accuracy .8) for SS-SOM at 100 %
    assert "| somlab SS-SOM accuracy, same rule | 100 % | .800 / 4.0 |" in md
    assert "SS-SOM (= LARFDSSOM's runs)" in md
