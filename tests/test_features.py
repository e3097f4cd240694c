"""CNN features (somlab.features) and ``somlab reproduce table3`` (Table III of the Batch SS-SOM
paper).

Small synthetic images keep every test fast; the real MNIST files are used only by the slow
test (the ``--quick`` preset)."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import somlab.features as features
from somlab._errors import DataError, SomlabError
from somlab.experiments import table3 as t3
from somlab.features import (
    FashionNet,
    FeatureCache,
    MNISTNet,
    SVHNNet,
    build_cnn,
    cache_key,
    cnn_accuracy,
    extract_features,
    load_svhn,
    train_cnn,
)

DATA = Path("/work/shared/data")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def two_class_images(n=96, seed=0):
    """Grey 28x28 uint8 images: class 0 bright in the top half, class 1 in the bottom half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.integers(0, 60, (n, 28, 28))
    for i, c in enumerate(y):
        rows = slice(0, 14) if c == 0 else slice(14, 28)
        X[i, rows] += 150
    return X.astype(np.uint8), y.astype(np.int64)


def blob_images(n=200, k=4, seed=0):
    """Grey 28x28 uint8 images of ``k`` classes: a bright square at a class-specific place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.integers(0, 40, (n, 28, 28))
    for i, c in enumerate(y):
        r, col = divmod(int(c), 2)
        X[i, 14 * r : 14 * r + 14, 14 * col : 14 * col + 14] += 180
    return X.astype(np.uint8), y.astype(np.int64)


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize(
    "cls, shape, dim",
    [(MNISTNet, (1, 28, 28), 32), (FashionNet, (1, 28, 28), 32), (SVHNNet, (3, 32, 32), 84)],
)
def test_networks_output_and_feature_shapes(cls, shape, dim):
    net = cls().eval()
    x = torch.rand(5, *shape)
    assert net(x).shape == (5, 10)
    assert net.features(x).shape == (5, dim) == (5, cls.feature_dim)
    assert tuple(cls.in_shape) == shape


def test_build_cnn_is_seeded_and_leaves_the_global_generator_alone():
    state = torch.random.get_rng_state()
    a, b, c = build_cnn("mnist", 3), build_cnn("mnist", 3), build_cnn("mnist", 4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.fc1.weight, b.fc1.weight)
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
    with pytest.raises(SomlabError, match="unknown dataset"):
        build_cnn("cifar")


def test_eval_mode_features_are_deterministic_and_differ_from_train_mode():
    net = build_cnn("fmnist", 0)
    X, _ = two_class_images(16)
    net.train()  # extract_features must switch to eval mode and back
    f1 = extract_features(net, X, batch_size=5)
    f2 = extract_features(net, X, batch_size=16)
    assert net.training  # mode restored
    assert f1.dtype == np.float32 and f1.shape == (16, 32)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)  # batching does not matter
    x = features.to_tensor(X, "cpu", features.CNN_CONFIGS["fmnist"])
    with torch.no_grad():
        train_mode = net.train().features(x).numpy()  # dropout active
    assert not np.allclose(train_mode, f1, atol=1e-3)
    f3, logits = extract_features(net, X, with_logits=True)  # one pass, the classifier head
    np.testing.assert_allclose(f3, f1, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(logits, net.eval()(x).numpy(), rtol=1e-4, atol=1e-5)
    # the MNIST network's batch norm: eval mode uses running statistics, not the batch's
    m = build_cnn("mnist", 0)
    m.layer1[1].running_mean.fill_(0.3)
    e = extract_features(m, X[:4])
    np.testing.assert_allclose(e[:2], extract_features(m, X[:2]), rtol=1e-5, atol=1e-6)


def test_training_lowers_the_loss_and_fits_a_two_class_set():
    X, y = two_class_images(96)
    state = torch.random.get_rng_state()
    net = train_cnn("mnist", X, y, epochs=4, batch_size=32, lr=0.01, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    h = net.history_
    assert len(h["loss"]) == 4 and h["steps"] == 12
    assert h["loss"][-1] < h["loss"][0]
    assert not net.training
    assert cnn_accuracy(net, X, y) >= 0.95
    # seeded: the same seed gives the same network (a few steps of the dropout network)
    a = train_cnn("fmnist", X[:40], y[:40], steps=3, batch_size=16, seed=5)
    b = train_cnn("fmnist", X[:40], y[:40], steps=3, batch_size=16, seed=5)
    np.testing.assert_array_equal(extract_features(a, X[:8]), extract_features(b, X[:8]))
    assert a.history_["steps"] == 3
    with pytest.raises(SomlabError, match="label"):
        train_cnn("mnist", X, np.full(len(X), -1))


# --------------------------------------------------------------------------- cache


def test_cache_round_trips_exactly_and_checks_its_configuration(tmp_path):
    cache = FeatureCache(tmp_path)
    meta = {"dataset": "mnist", "steps": 3}
    key = cache_key("mnist", "paper", 100, 0, meta)
    assert key.startswith("mnist_paper_f100_s0_") and "/" not in key
    assert key != cache_key("mnist", "paper", 100, 0, {**meta, "steps": 4})
    assert key != cache_key("mnist", "honest", 2.5, 0, meta) and "f2p5" in cache_key(
        "mnist", "honest", 2.5, 0, meta
    )
    rng = np.random.default_rng(0)
    arrays = {"train": rng.random((7, 3)).astype(np.float32), "acc": np.float64(0.5)}
    assert cache.load(key) is None
    cache.save(key, arrays, meta)
    assert list(tmp_path.glob("*.part")) == []  # atomic write leaves no temporary file
    got = cache.load(key, meta)
    np.testing.assert_array_equal(got["train"], arrays["train"])
    assert got["train"].dtype == np.float32 and float(got["acc"]) == 0.5
    assert cache.load(key, {**meta, "steps": 9}) is None  # written for another configuration
    calls = []

    def compute():
        calls.append(1)
        return arrays

    out, hit = cache.get_or_compute(key, compute, meta)
    assert hit and not calls
    np.testing.assert_array_equal(out["train"], arrays["train"])


def test_corrupt_cache_file_raises_a_clear_error_and_is_recomputed(tmp_path):
    cache = FeatureCache(tmp_path)
    key = "mnist_paper_f100_s0_x"
    cache.path(key).write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="corrupt feature cache file .*mnist_paper_f100_s0_x"):
        cache.load(key)
    fresh = {"train": np.arange(6, dtype=np.float32).reshape(2, 3)}
    with pytest.warns(RuntimeWarning, match="recomputing"):
        out, hit = cache.get_or_compute(key, lambda: fresh, {"a": 1})
    assert not hit
    np.testing.assert_array_equal(cache.load(key, {"a": 1})["train"], fresh["train"])
    off = FeatureCache(tmp_path / "off", enabled=False)
    off.get_or_compute("k", lambda: fresh)
    assert not (tmp_path / "off").exists()


# --------------------------------------------------------------------------- SVHN


def test_load_svhn_names_the_files_when_absent(tmp_path, monkeypatch):
    monkeypatch.delenv("SOMLAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataError) as err:
        load_svhn(tmp_path / "nowhere")
    msg = str(err.value)
    assert "train_32x32.mat" in msg and "test_32x32.mat" in msg and "nowhere" in msg
    assert "\n" not in msg


def test_load_svhn_reads_the_official_layout(tmp_path, monkeypatch):
    from scipy.io import savemat

    monkeypatch.delenv("SOMLAB_DATA", raising=False)
    rng = np.random.default_rng(0)
    sets = {}
    for name, n in (("train", 6), ("test", 4)):
        X = rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)
        y = np.array([[10], [1], [2], [10], [9], [3]][:n], dtype=np.uint8)
        savemat(tmp_path / f"{name}_32x32.mat", {"X": X, "y": y})
        sets[name] = (X, y)
    b = load_svhn(tmp_path)
    assert b.X_train.shape == (6, 3, 32, 32) and b.X_test.shape == (4, 3, 32, 32)
    assert b.X_train.dtype == np.uint8 and b.y_train.dtype == np.int64
    np.testing.assert_array_equal(b.y_train, [0, 1, 2, 0, 9, 3])
    X = sets["train"][0]
    assert b.X_train[4, 2, 7, 11] == X[7, 11, 2, 4]  # [n, channel, row, column]
    (tmp_path / "bad").mkdir()
    for name in ("train", "test"):
        (tmp_path / "bad" / f"{name}_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        load_svhn(tmp_path / "bad")
    feats = extract_features(SVHNNet(), b.X_test, config="svhn")
    assert feats.shape == (4, 84) and (feats >= 0).all()  # after ReLU


# --------------------------------------------------------------------------- table3 pieces


def test_label_sampling_is_bernoulli_seeded_and_reaches_the_quota():
    y = np.repeat(np.arange(10), 50)
    for f in (0.01, 0.05, 0.1, 0.25, 0.5, 0.75):
        for seed in range(5):
            mask = t3.sample_labelled(y, f, np.random.default_rng(seed))
            assert mask.sum() >= math.ceil(f * len(y))
    a = t3.sample_labelled(y, 0.1, np.random.default_rng(1))
    b = t3.sample_labelled(y, 0.1, np.random.default_rng(1))
    c = t3.sample_labelled(y, 0.1, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert t3.sample_labelled(y, 1.0, 0).all()
    # unbalanced: per-class counts vary (a stratified sample would give 5 per class)
    counts = np.bincount(y[t3.sample_labelled(y, 0.1, 3)], minlength=10)
    assert counts.max() > counts.min()
    masks = t3.label_masks(y, (5, 10), seed=0)
    np.testing.assert_array_equal(masks[5], t3.label_masks(y, (5,), seed=0)[5])
    with pytest.raises(SomlabError):
        t3.sample_labelled(y, 0.0, 0)


def test_minmax_scale_uses_train_statistics_and_clips():
    train = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0]])
    test = np.array([[4.0, 5.0, 2.0], [-1.0, 6.0, 1.0]])
    a, b = t3.minmax_scale(train, test)
    np.testing.assert_allclose(a, [[0, 0, 0], [1, 0, 1]])
    np.testing.assert_allclose(b, [[1, 0, 0.5], [0, 1, 0]])  # clipped; constant feature -> 0
    assert a.dtype == b.dtype == np.float32


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"dataset": "cifar"}, "unknown dataset"),
        ({"fractions": (0,)}, "bad label fraction"),
        ({"fractions": (150,)}, "bad label fraction"),
        ({"fractions": ()}, "must not be empty"),
        ({"fractions": (5, 5)}, "repeated"),
        ({"protocols": ("oracle",)}, "protocol"),
        ({"n_settings": 0}, "n_settings"),
        ({"seeds": 0}, "seeds"),
        ({"n_train": 5}, "n-train"),
        ({"cnn_epochs": 0}, "cnn-epochs"),
        ({"device": "tpu:x"}, "device"),
        ({"n_jobs": 0}, "n_jobs"),
    ],
)
def test_bad_config_raises_somlab_error(changes, match):
    with pytest.raises(SomlabError, match=match):
        t3.Table3Config(**changes).validated()


def test_config_aliases_and_cli_options():
    cfg = t3.Table3Config(dataset="Fashion-MNIST", fractions=(50, 1)).validated()
    assert cfg.dataset == "fmnist" and cfg.fractions == (1, 50)
    parser = argparse.ArgumentParser()
    t3.add_parser(parser.add_subparsers(dest="target"))
    args = parser.parse_args(["table3", "--quick", "--fractions", "1,10%", "--settings", "3"])
    cfg = t3.config_from_args(args)
    assert cfg.quick and cfg.n_train == 5000 and cfg.fractions == (1, 10) and cfg.n_settings == 3
    assert args.func is t3.run_cli
    args = parser.parse_args(["table3", "--fractions", "one"])
    with pytest.raises(SomlabError, match="bad label fraction"):
        t3.config_from_args(args)
    assert "--quick" in t3.command_line(t3.Table3Config(quick=True, **t3.QUICK).validated())


# --------------------------------------------------------------------------- the pipeline


def test_pipeline_protocols_baselines_and_report(tmp_path, monkeypatch, capsys):
    X, y = blob_images(240)
    data = (X[:180], y[:180], X[180:], y[180:])
    monkeypatch.setattr(t3, "load_images", lambda config: data)
    seen = []
    real = features.train_cnn

    def spy(dataset, X, y, **kw):
        seen.append((len(X), kw["steps"]))
        return real(dataset, X, y, **kw)

    monkeypatch.setattr(features, "train_cnn", spy)
    parser = argparse.ArgumentParser()
    t3.add_parser(parser.add_subparsers(dest="target"))
    argv = ["table3", "--fractions", "5,50,100", "--settings", "2", "--cnn-epochs", "2"]
    argv += ["--max-epochs", "2", "--max-age-wins", "2", "--cache-dir", str(tmp_path / "c")]
    argv += ["--out-dir", str(tmp_path), "--quiet", "--json", "--threads", "1"]
    args = parser.parse_args(argv)
    args.func(args)
    table = json.loads(capsys.readouterr().out)

    recs = table["records"]
    n_lab = {r["fraction"]: r["n_labelled"] for r in recs if r["protocol"] == "honest"}
    assert n_lab[5] >= math.ceil(0.05 * 180) and n_lab[50] >= 90 and n_lab[100] == 180
    # one paper network on all 180 images, one honest network per fraction < 100, on the
    # labelled images only, each with the paper network's number of steps (2 epochs x 2)
    assert sorted(seen) == sorted([(180, 4), (n_lab[5], 4), (n_lab[50], 4)])
    for r in recs:
        assert r["n_labelled"] == {5: n_lab[5], 50: n_lab[50], 100: 180}[r["fraction"]]
        assert r["n_cnn_train"] == (180 if r["protocol"] == "paper" else r["n_labelled"])
        assert len(r["som"]) == 2 and all(0 <= s["acc"] <= 1 for s in r["som"])
        assert 0 <= r["knn"] <= 1 and 0 <= r["label_spreading"] <= 1
    same = [r for r in recs if r["fraction"] == 100]
    assert same[0]["som"] == same[1]["som"] and same[1]["same_as_paper"]

    rows = table["summary"]["rows"]
    assert len(rows) == 6
    for r in rows:
        assert r["som_best"]["mean"] >= r["som_one"]["mean"]  # the oracle is at least as good
        assert r["som_best"]["mean"] == max(
            s["acc"]
            for rec in recs
            if rec["protocol"] == r["protocol"] and rec["fraction"] == r["fraction"]
            for s in rec["som"]
        )
    assert table["summary"]["targets"]["n_checked"] == 3

    md = (tmp_path / "table3_mnist.md").read_text()
    for text in ("Paper protocol", "Honest protocol", "1-NN", "LabelSpreading", "best of 2"):
        assert text in md
    for v in ("0.788", "0.9643", "0.974", "0.9793", "0.983", "0.9839", "0.9836", "0.624", "0.560"):
        assert v in md
    assert "(= paper protocol)" in md and "wall time" in md
    assert json.loads((tmp_path / "table3_mnist.json").read_text())["summary"] == table["summary"]
    assert (tmp_path / "table3_mnist.png").stat().st_size > 1000
    assert "Table III MNIST" in t3.summary_line(table, tmp_path)

    # a rerun reads the features from the cache: no network is trained
    seen.clear()
    cfg = replace(t3.config_from_args(args), n_jobs=2)  # and the fits in two processes
    again = t3.reproduce_table3(cfg, out_dir=tmp_path, progress=False, plot=False)
    assert seen == [] and all(r["features_from_cache"] for r in again["records"])
    assert again["summary"]["rows"] == table["summary"]["rows"]


def test_threads_are_set_for_the_run_and_restored(monkeypatch):
    seen = []

    def fail(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop")

    monkeypatch.setattr(t3, "run_cells", fail)
    X, y = blob_images(40)
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="stop"):
        t3.reproduce_table3(t3.Table3Config(threads=2), data=(X[:30], y[:30], X[30:], y[30:]))
    assert seen == [2] and torch.get_num_threads() == before


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SOMLAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = t3.Table3Config(dataset="svhn", data_dir=str(tmp_path), use_cache=False)
    with pytest.raises(DataError, match="train_32x32.mat"):
        t3.reproduce_table3(cfg, out_dir=tmp_path, progress=False)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "mnist.npz").is_file(), reason="no MNIST file")
def test_quick_preset_on_mnist(tmp_path):
    cfg = t3.Table3Config(
        dataset="mnist", quick=True, data_dir=str(DATA), cache_dir=str(tmp_path / "c"), **t3.QUICK
    )
    table = t3.reproduce_table3(cfg, out_dir=tmp_path, progress=False)
    rows = {(r["protocol"], r["fraction"]): r for r in table["summary"]["rows"]}
    assert len(rows) == 14
    assert rows[("paper", 100)]["som_best"]["mean"] > 0.8
    assert rows[("paper", 10)]["som_best"]["mean"] > 0.7
    assert (tmp_path / "table3_mnist_quick.md").is_file()


def test_parallel_fits_match_the_serial_ones():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    F = np.clip(rng.random((3, 8))[y] + rng.normal(0, 0.03, (300, 8)), 0, 1).astype(np.float32)
    y_semi = np.where(rng.random(300) < 0.2, y, -1)
    settings = t3.settings_for(t3.Table3Config(n_settings=3, max_epochs=2, max_age_wins=2))
    serial = t3.fit_som_settings(F[:200], y_semi[:200], F[200:], y[200:], settings)
    parallel = t3.fit_som_settings(F[:200], y_semi[:200], F[200:], y[200:], settings, n_jobs=2)
    for a, b in zip(serial, parallel):
        assert (a["acc"], a["nodes"]) == (b["acc"], b["nodes"])
    assert max(r["acc"] for r in serial) > 0.9  # well separated blobs
