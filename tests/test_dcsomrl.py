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
    return DCSOMRL(**SMALL, random_state=0, keep_pretrained=True).fit(X), X, y


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
