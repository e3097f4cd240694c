"""DC-SOMRL (autoencoder + SOMRL layer) as an estimator, and ``somlab reproduce dcsomrl``.

Small synthetic "images" (four well separated prototypes plus noise, in [0, 1]) and small
hidden layers keep each fit to about a second; the full-size network and MNIST are exercised by
the slow test and the reproduction command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from somlab import DCSOMRL, DataError, load
from somlab.cli import main
from somlab.experiments import dcsomrl as exp
from somlab.metrics import purity

SMALL = dict(
    hidden=(32, 32),
    n_latent=4,
    pretrain_epochs=40,
    epochs=8,
    batch_size=32,
    at=0.95,
    n_max=12,
    standardize=(0.5, 0.5),
)


def blobs(n=240, d=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.random((k, d)) > 0.5  # binary "images"
    y = rng.integers(0, k, n)
    X = np.clip(centres[y] * 0.8 + 0.1 + rng.normal(0, 0.05, (n, d)), 0, 1).astype(np.float32)
    return X, y


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def fitted(one_torch_thread):
    X, y = blobs()
    # the mechanics on the seed-001 preset (the default's repel=0 merges two of the 4 toy groups)
    return DCSOMRL("mnist", **SMALL, random_state=0, keep_pretrained=True).fit(X), X, y


def test_clusters_separated_data_and_reports_its_state(fitted):
    model, X, y = fitted
    assert 2 <= model.n_prototypes_ <= SMALL["n_max"]
    assert purity(y, model.labels_) >= 0.95
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    Z = model.transform(X)
    assert Z.shape == (len(X), 4) and (Z > 0).all() and (Z < 1).all()  # sigmoid codes
    assert model.prototypes_.shape == (model.n_prototypes_, 4)
    assert ((model.relevances_ >= 0) & (model.relevances_ <= 1)).all()
    A = model.topology()
    assert A.shape == (model.n_prototypes_,) * 2 and not A.diagonal().any() and (A == A.T).all()
    h = model.history_
    assert len(h["pretrain_loss"]) == 40 and len(h["loss"]) == 8
    assert h["pretrain_loss"][-1] < h["pretrain_loss"][0]  # pretraining learns
    assert model.score(X, y) == pytest.approx(purity(y, model.predict(X)))
    partly = np.where(np.arange(len(y)) % 2 == 0, -1, y)  # -1 = unlabelled: left out
    odd = np.arange(len(y)) % 2 == 1
    assert model.score(X, partly) == pytest.approx(purity(y[odd], model.predict(X)[odd]))
    with pytest.raises(DataError, match="no labelled sample"):
        model.score(X, np.full(len(y), -1))
    with pytest.raises(DataError, match="one label per sample"):
        model.score(X, y[:-1])


def test_same_seed_same_model_other_seed_differs():
    X, _ = blobs(n=120)
    kw = dict(SMALL, pretrain_epochs=3, epochs=2)
    a = DCSOMRL(**kw, random_state=1).fit(X)
    b = DCSOMRL(**kw, random_state=1).fit(X)
    c = DCSOMRL(**kw, random_state=2).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    assert not np.array_equal(a.transform(X), c.transform(X))


def test_presets_and_explicit_parameters():
    m = DCSOMRL("mnist002")
    p = m._resolved()
    assert (p["n_latent"], p["n_max"], p["max_iter"], p["alpha"]) == (10, 64, 1000, 0.001)
    assert DCSOMRL("fmnist", at=0.9)._resolved()["at"] == 0.9  # explicit beats the preset
    assert DCSOMRL("fmnist")._resolved()["standardize"] == (0.5, 0.5)
    c = clone(DCSOMRL("fmnist", n_max=50))
    assert c.get_params()["n_max"] == 50 and c.preset == "fmnist"


def test_max_iter_stops_joint_training():
    X, _ = blobs(n=128)
    m = DCSOMRL(**{**SMALL, "pretrain_epochs": 0, "epochs": 5}, max_iter=6).fit(X)
    # 4 batches of 32 per epoch: 6 iterations end in the second epoch
    assert len(m.history_["loss"]) == 2


def test_save_load_same_clusters_and_codes(fitted, tmp_path):
    model, X, _ = fitted
    path = model.save(tmp_path / "dc.somlab")
    back = load(path)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    np.testing.assert_array_equal(back.transform(X), model.transform(X))
    np.testing.assert_array_equal(back.labels_, model.labels_)
    assert back.n_prototypes_ == model.n_prototypes_
    assert back.history_ == json.loads(json.dumps(model.history_))


def test_bad_input_clear_errors(fitted):
    model, X, _ = fitted
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        DCSOMRL(**SMALL).fit(X * 255)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        DCSOMRL(**SMALL).fit(bad)
    with pytest.raises(DataError, match="features"):
        model.predict(X[:, :5])
    with pytest.raises(DataError, match="no samples"):
        DCSOMRL(**SMALL).fit(X[:0])
    with pytest.raises(ValueError, match="keep_pretrained"):
        DCSOMRL(**{**SMALL, "pretrain_epochs": 1, "epochs": 1}).fit(X).transform(X, pretrained=True)
    with pytest.raises(ValueError, match="preset"):
        DCSOMRL("cifar").fit(X)
    with pytest.raises(ValueError, match="standardize"):
        DCSOMRL(**{**SMALL, "standardize": (0.5, 0.0)}).fit(X)
    with pytest.raises(ValueError, match="standardize must be two numbers"):
        DCSOMRL(**{**SMALL, "standardize": (0, 1, 2)}).fit(X)
    for hidden in [(0,), (-3,), ("a",)]:
        with pytest.raises(ValueError, match="hidden must be a sequence of positive ints"):
            DCSOMRL(**{**SMALL, "hidden": hidden}).fit(X)
    with pytest.raises(ValueError, match="epochs"):  # no joint epoch: no prototype at all
        DCSOMRL(**{**SMALL, "epochs": 0}).fit(X)
    import torch

    t = torch.tensor(X, requires_grad=True)  # a network's output: used, not refused
    np.testing.assert_array_equal(model.predict(t), model.predict(X))


def test_reproduce_dcsomrl_writes_table_beside_papers_and_baselines(tmp_path, capsys, monkeypatch):
    X, y = blobs(n=200)
    data = (X[:150], y[:150], X[150:], y[150:])
    monkeypatch.setattr(exp, "load_data", lambda cfg: data)
    import somlab.deep

    full = somlab.deep.DCSOMRL  # the real estimator with a small network (run_seed imports it)
    monkeypatch.setattr(
        somlab.deep, "DCSOMRL", lambda preset, **kw: full(preset, **{**SMALL, **kw})
    )
    seen = []
    monkeypatch.setattr(
        somlab.deep,
        "DCSOMRL",
        lambda preset, **kw: seen.append(kw) or full(preset, **{**SMALL, **kw}),
    )
    argv = ["reproduce", "dcsomrl", "--dataset", "mnist", "--seeds", "2", "--epochs", "3",
            "--pretrain-epochs", "5", "--out-dir", str(tmp_path), "--quiet", "--json",
            "--param", "repel=0", "--param", "at=0.98"]  # fmt: skip
    assert main(argv) == 0
    assert all(kw["repel"] == 0 and kw["at"] == 0.98 for kw in seen) and len(seen) == 2
    result = json.loads(capsys.readouterr().out)
    rows = result["summary"]["rows"]
    assert set(rows) == {"dcsomrl", "kmeans_pixels", "kmeans_pretrained_codes"}
    assert len(result["runs"]) == 2 and rows["dcsomrl"]["purity"]["std"] is not None
    # every baseline has as many clusters as DC-SOMRL has prototypes: scores are comparable
    assert all(0 <= rows[k]["purity"]["mean"] <= 1 for k in rows)
    md = (tmp_path / "dcsomrl_mnist.md").read_text()
    assert "somlab reproduce dcsomrl --dataset mnist" in md
    assert "--param at=0.98 --param repel=0" in md and "at=0.98, repel=0" in md
    assert "0.921" in md and "0.615" in md and "0.939" in md  # papers' numbers
    assert "k-means on the pixels" in md and "Targets (issue 5)" in md


@pytest.mark.parametrize(
    "argv",
    [["--dataset", "cifar"], ["--seeds", "0"], ["--preset", "svhn"], ["--n-train", "3"],
     ["--param", "repel"], ["--param", "nonsense=1"], ["--param", "epochs=3"]],
)  # fmt: skip
def test_reproduce_dcsomrl_bad_options_exit_2(argv, tmp_path, capsys):
    try:
        code = main(["reproduce", "dcsomrl", *argv, "--out-dir", str(tmp_path), "--quiet"])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("somlab: error:")


# ------------------------------------------------------------------ presets (issue 15)
def test_default_preset_is_the_default_and_paper_presets_keep_their_values():
    from somlab.deep.dcsomrl import DEFAULT_PRESET, PAPER_PRESETS, PRESETS

    assert DCSOMRL().preset == "default" and PRESETS["default"] is DEFAULT_PRESET
    p = DCSOMRL()._resolved()
    assert p == dict(
        n_latent=10, alpha=0.01, at=0.97, lr=0.1426, repel=0.0, life_decay=0.36, beta=0.067,
        gamma=1.382, s=0.426, n_max=64, max_iter=1000, standardize=None, refine_iter=100,
        refine_metric="euclidean",
    )  # fmt: skip
    assert p["n_max"] <= 64  # issue 15: at most 64 prototypes
    # the papers' presets as published (seed 001's Table 2, seed 002), under their names
    assert PAPER_PRESETS == {
        "mnist": dict(n_latent=22, alpha=0.1145, at=0.99425, lr=0.1426, repel=1.0,
                      life_decay=0.36, beta=0.067, gamma=1.382, s=0.426, n_max=200,
                      max_iter=None, standardize=(0.1307, 0.3081),
                      refine_iter=0, refine_metric="relevance"),
        "fmnist": dict(n_latent=22, alpha=0.024, at=0.99885, lr=0.1383, repel=0.575,
                       life_decay=0.46, beta=0.0195, gamma=4.916, s=0.658, n_max=200,
                       max_iter=None, standardize=(0.5, 0.5),
                       refine_iter=0, refine_metric="relevance"),
        "mnist002": dict(n_latent=10, alpha=0.001, at=0.99425, lr=0.1426, repel=1.0,
                         life_decay=0.36, beta=0.067, gamma=1.382, s=0.426, n_max=64,
                         max_iter=1000, standardize=(0.1307, 0.3081),
                         refine_iter=0, refine_metric="relevance"),
    }  # fmt: skip
    assert set(PRESETS) == {"default", *PAPER_PRESETS}
    assert all(PRESETS[k] is PAPER_PRESETS[k] for k in PAPER_PRESETS)
    # the reproduction's paper row uses them; --quick runs the default beside it
    assert exp.PAPER_PRESET == {"mnist": "mnist002", "fmnist": "fmnist"}
    cfg = exp.DCSOMRLConfig(dataset="fmnist", quick=True, **exp.QUICK).validated()
    assert cfg.preset_name == "default" and cfg.paper_preset_too
    assert not exp.DCSOMRLConfig(dataset="fmnist", quick=True, preset="fmnist").paper_preset_too


def test_default_standardizes_with_the_training_data():
    X, _ = blobs(n=64)
    kw = {k: v for k, v in SMALL.items() if k != "standardize"}
    m = DCSOMRL(**{**kw, "pretrain_epochs": 1, "epochs": 1}).fit(X)
    assert m.standardize_ == pytest.approx((X.mean(), X.std()), rel=1e-6)
    flat = np.full((32, 20), 0.5, dtype=np.float32)  # no spread: std 1, no division by 0
    m = DCSOMRL(**{**kw, "pretrain_epochs": 1, "epochs": 1}).fit(flat)
    assert m.standardize_ == pytest.approx((0.5, 1.0))
    assert DCSOMRL("mnist002", **{**kw, "pretrain_epochs": 1, "epochs": 1}).fit(X).standardize_ == (
        0.1307,
        0.3081,
    )


def _image_bunch(seed=0, n_train=300, n_test=100):
    from sklearn.utils import Bunch

    rng = np.random.default_rng(seed)
    centres = rng.random((4, 20)) > 0.5

    def draw(n):
        y = np.arange(n) % 4
        X = np.clip(centres[y] * 200 + 30 + rng.normal(0, 10, (n, 20)), 0, 255).astype(np.uint8)
        return X.reshape(n, 4, 5), y

    X_train, y_train = draw(n_train)
    X_test, y_test = draw(n_test)
    return Bunch(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)


def test_validation_split_is_training_images_only_and_disjoint_from_the_quick_subset(monkeypatch):
    import somlab.datasets as D

    b = _image_bunch()
    b.X_train[:, 0, 0] = np.arange(300) % 256  # make rows distinguishable
    b.X_train[:, 0, 1] = np.arange(300) // 256
    monkeypatch.setattr(D, "load_mnist", lambda data_dir=None: b)
    X_fit, X_val, y_val = exp.validation_data("mnist", n_train=100, n_val=80)
    X_tr, _, _, _ = exp.load_data(exp.DCSOMRLConfig(n_train=100))
    np.testing.assert_array_equal(X_fit, X_tr)  # the --quick training subset itself
    key = lambda A: {tuple(r[:2]) for r in A}  # noqa: E731
    assert not key(X_fit) & key(X_val) and len(X_val) == 80
    assert np.bincount(y_val).tolist() == [20] * 4  # stratified
    train_rows = key(D.pixel_rows(b.X_train))
    assert key(X_val) <= train_rows  # never a test image


def test_selection_never_sees_the_test_labels(monkeypatch):
    """Permuting (and scrambling) the test set leaves the chosen rule and every score alike."""
    import somlab.datasets as D
    import somlab.deep

    full = somlab.deep.DCSOMRL
    monkeypatch.setattr(
        somlab.deep, "DCSOMRL", lambda preset, **kw: full(preset, **{**SMALL, **kw})
    )
    cands = {"a": {}, "b": {"n_max": 2}}
    kw = dict(n_train=200, n_val=80, pretrain_epochs=40, epochs=8, seed=0)
    results = []
    for perm_seed in (0, 1):
        b = _image_bunch()
        rng = np.random.default_rng(perm_seed)
        b.y_test = rng.permutation(b.y_test)
        b.X_test = rng.integers(0, 256, b.X_test.shape).astype(np.uint8)
        monkeypatch.setattr(D, "load_mnist", lambda data_dir=None, b=b: b)
        results.append(exp.select_default(datasets=("mnist",), candidates=cands, **kw))
    a, b = results
    assert a["chosen"] == b["chosen"] and a["table"] == b["table"]
    strip = lambda r: {k: v for k, v in r.items() if k != "fit_s"}  # noqa: E731
    assert [strip(r) for r in a["records"]] == [strip(r) for r in b["records"]]
    # the separated data: the candidate that can hold the 4 groups wins on validation
    assert a["chosen"] == "a"
    assert a["table"]["a"]["purity_plus_nmi"] > a["table"]["b"]["purity_plus_nmi"]


def test_choose_takes_the_largest_worst_validation_margin_within_64_prototypes():
    def rec(name, ds, pur, nmi, k, km=0.5):
        s = lambda p, n: {"purity": p, "nmi": n}  # noqa: E731
        return {"candidate": name, "dataset": ds, "n_prototypes": k, "dcsomrl": s(pur, nmi),
                "kmeans_pixels": s(km, km), "kmeans_pretrained_codes": s(km, km - 0.1)}  # fmt: skip

    records = [
        rec("x", "mnist", 0.9, 0.6, 64),
        rec("x", "fmnist", 0.7, 0.5, 40),
        rec("y", "mnist", 0.95, 0.7, 80),
        rec("y", "fmnist", 0.8, 0.6, 40),  # > 64
        rec("z", "mnist", 0.8, 0.55, 30),
        rec("z", "fmnist", 0.7, 0.55, 30),
        rec("w", "mnist", 0.99, 0.9, 10),
    ]  # fmt: skip  (w: one data set only)
    out = exp.choose(records)
    # x has the higher purity + NMI, z the better worst margin (.05 against 0): z
    assert out["chosen"] == "z" and set(out["table"]) == {"x", "y", "z"}
    assert not out["table"]["y"]["eligible"]
    assert out["table"]["x"]["purity_plus_nmi"] == pytest.approx((1.5 + 1.2) / 2)
    assert out["table"]["x"]["min_margin_over_kmeans"] == pytest.approx(0.0)  # nmi .5 vs .5
    assert out["table"]["z"]["min_margin_over_kmeans"] == pytest.approx(0.05)
    # equal margins: the higher purity + NMI
    tie = [r for r in records if r["candidate"] in "xz"]
    for r in tie:
        if r["candidate"] == "z":
            r["dcsomrl"]["nmi"] = 0.5
    assert exp.choose(tie)["chosen"] == "x"


def test_quick_reproduction_fits_the_paper_preset_beside_the_default(tmp_path, monkeypatch):
    X, y = blobs(n=200)
    data = (X[:150], y[:150], X[150:], y[150:])
    monkeypatch.setattr(exp, "load_data", lambda cfg: data)
    import somlab.deep

    full = somlab.deep.DCSOMRL
    seen = []
    monkeypatch.setattr(
        somlab.deep,
        "DCSOMRL",
        lambda preset, **kw: seen.append(preset) or full(preset, **{**SMALL, **kw}),
    )
    cfg = exp.DCSOMRLConfig(dataset="fmnist", quick=True, n_train=150, pretrain_epochs=5,
                            epochs=3, seeds=1)  # fmt: skip
    result = exp.reproduce_dcsomrl(cfg, out_dir=tmp_path, progress=False)
    assert seen == ["default", "fmnist"]
    rows = result["summary"]["rows"]
    assert rows["paper_preset"]["preset"] == "fmnist"
    b = result["summary"]["beats_kmeans"]
    d = rows["dcsomrl"]
    assert b["purity"] == (
        d["purity"]["mean"]
        > max(
            rows["kmeans_pixels"]["purity"]["mean"],
            rows["kmeans_pretrained_codes"]["purity"]["mean"],
        )
    )
    md = (tmp_path / "dcsomrl_fmnist_quick.md").read_text()
    assert "--preset default" in md and "paper preset fmnist (same run" in md
    assert "winner-only refinement iterations" in md  # the default's refinement is stated
    assert "Issue 15 (preset default above both k-means rows" in md


@pytest.mark.parametrize("metric", ["relevance", "euclidean"])
def test_refine_iter_ends_with_winner_only_updates_same_seed_same_model(metric):
    import torch

    X, _ = blobs(n=160)
    kw = dict(SMALL, pretrain_epochs=3, epochs=2, refine_metric=metric)
    plain = DCSOMRL(**kw, refine_iter=0, random_state=3).fit(X)
    a = DCSOMRL(**kw, refine_iter=5, random_state=3).fit(X)
    b = DCSOMRL(**kw, refine_iter=5, random_state=3).fit(X)
    assert plain.history_["refine_iterations"] == 0 and 1 <= a.history_["refine_iterations"] <= 5
    # the refinement runs after training: same encoder and prototype count
    np.testing.assert_array_equal(a.transform(X), plain.transform(X))
    assert a.n_prototypes_ == plain.n_prototypes_
    np.testing.assert_allclose(a.learned_relevances_, plain.relevances_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(plain.learned_relevances_, plain.relevances_, rtol=1e-6, atol=1e-7)
    if metric == "relevance":
        np.testing.assert_array_equal(a.relevances_, plain.relevances_)
    else:  # the relevances are dropped: the cost before is measured with omega = 1 too
        assert (a.relevances_ == 1).all()
        plain.som_.omega.fill_(1.0)
    Z = torch.from_numpy(a.transform(X))
    assert float(a.som_.assignment_cost(Z)) <= float(plain.som_.assignment_cost(Z)) * (1 + 1e-6)
    np.testing.assert_array_equal(a.labels_, a.predict(X))
    # same seed, same model
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    with pytest.raises(ValueError, match="refine_iter"):
        DCSOMRL(**kw, refine_iter=-1).fit(X)
    with pytest.raises(ValueError, match="refine_metric"):
        DCSOMRL(**dict(kw, refine_metric="cosine")).fit(X)


def test_report_names_the_refinement_the_run_recorded():
    """A report renders the refinement its run recorded in the config, not today's preset:
    a result written before the refinement existed says nothing of one."""
    import copy
    import json
    from pathlib import Path

    from somlab.experiments import dcsomrl as E

    path = Path(__file__).parents[1] / "experiments/results/dcsomrl_quick_default"
    old = json.loads((path / "dcsomrl_mnist_quick.json").read_text())
    assert "refine" not in old["config"]
    assert "refinement" not in E.render_markdown(old)
    new = copy.deepcopy(old)
    new["config"]["refine"] = E.refine_setting("default", ())
    assert new["config"]["refine"]["refine_iter"] > 0
    assert "refinement iterations" in E.render_markdown(new)
    assert E.refine_setting("mnist", ())["refine_iter"] == 0  # the paper presets: none
