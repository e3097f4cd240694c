"""Saving and loading: exact predictions, atomic writes, clear errors, never unpickling."""

import json
import pickle

import numpy as np
import pytest
from safetensors.numpy import save_file

import somlab
from somlab import SOM, ModelFileError, load


@pytest.fixture
def fitted():
    X = np.random.default_rng(0).random((100, 4))
    return SOM((4, 3), topology="hexagonal", toroidal=True, epochs=3, random_state=0).fit(X), X


def test_roundtrip_predicts_exactly(tmp_path, fitted):
    som, X = fitted
    path = som.save(tmp_path / "sub" / "model.somlab")
    back = load(path)
    assert type(back) is SOM and back.get_params() == som.get_params()
    np.testing.assert_array_equal(back.weights_, som.weights_)
    np.testing.assert_array_equal(back.predict(X), som.predict(X))
    np.testing.assert_array_equal(back.transform(X), som.transform(X))
    assert back.history_ == som.history_ and back.n_features_in_ == 4
    assert back.topographic_error(X) == som.topographic_error(X)
    assert not list(path.parent.glob(".*"))  # no temporary file left behind


def test_save_unfitted_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        SOM().save(tmp_path / "m")


def test_truncated_file(tmp_path, fitted):
    path = fitted[0].save(tmp_path / "m.somlab")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable somlab model"):
        load(path)


def test_corrupt_header(tmp_path, fitted):
    path = fitted[0].save(tmp_path / "m.somlab")
    data = bytearray(path.read_bytes())
    data[8:20] = b"{{{{{{{{{{{{"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        load(path)


def test_unknown_version_and_foreign_files(tmp_path):
    arrays = {"weights_": np.zeros((1, 1, 1), np.float32)}
    meta = {
        "format": "somlab",
        "format_version": "99",
        "class": "SOM",
        "params": "{}",
        "attributes": "{}",
    }
    save_file(arrays, tmp_path / "v99", metadata=meta)
    with pytest.raises(ModelFileError, match="version 99"):
        load(tmp_path / "v99")
    save_file(arrays, tmp_path / "other", metadata={"format": "something-else"})
    with pytest.raises(ModelFileError, match="not a somlab model"):
        load(tmp_path / "other")
    meta.update(format_version=str(somlab.persistence.FORMAT_VERSION), **{"class": "os.system"})
    save_file(arrays, tmp_path / "cls", metadata=meta)
    with pytest.raises(ModelFileError, match="unknown model class"):
        load(tmp_path / "cls")
    with pytest.raises(ModelFileError, match="not found"):
        load(tmp_path / "missing")


def test_pickle_payload_is_never_executed(tmp_path):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    path = tmp_path / "evil.somlab"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFileError):
        load(path)
    assert not (tmp_path / "pwned").exists()


def test_params_json_is_plain(tmp_path, fitted):
    from safetensors import safe_open

    path = fitted[0].save(tmp_path / "m.somlab")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    params = json.loads(meta["params"])
    assert params["grid_shape"] == [4, 3] and params["topology"] == "hexagonal"


def test_damaged_arrays_are_caught_by_the_checksum(tmp_path, fitted):
    path = fitted[0].save(tmp_path / "m.somlab")
    data = bytearray(path.read_bytes())
    data[-20:] = b"\xff" * 20  # the last weights become NaN: the header still parses
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged"):
        load(path)


def test_edited_arrays_are_caught_and_unchecked_old_files_still_load(tmp_path, fitted):
    from safetensors import safe_open

    som, X = fitted
    path = som.save(tmp_path / "m.somlab")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    edited = dict(arrays, weights_=arrays["weights_"][:2])
    save_file(edited, tmp_path / "edited", metadata=meta)
    with pytest.raises(ModelFileError, match="damaged"):
        load(tmp_path / "edited")
    # a version-1 file from before the checksum still loads; a current one without it is refused
    old = {k: v for k, v in meta.items() if k != "sha256"}
    save_file(arrays, tmp_path / "stripped", metadata=old)
    with pytest.raises(ModelFileError, match="no checksum"):
        load(tmp_path / "stripped")
    old["format_version"] = "1"
    save_file(arrays, tmp_path / "old", metadata=old)
    np.testing.assert_array_equal(load(tmp_path / "old").predict(X), som.predict(X))


def test_inconsistent_state_is_a_model_file_error(tmp_path):
    from safetensors import safe_open

    from somlab.persistence import _digest

    X = np.random.default_rng(0).random((60, 8)).astype(np.float32)
    dc = somlab.DCSOMRL(
        "mnist", hidden=(8,), n_latent=3, n_max=4, pretrain_epochs=1, epochs=1, random_state=0
    ).fit(X)
    path = dc.save(tmp_path / "dc.somlab")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    key = next(k for k in arrays if k.startswith("ae."))
    arrays[key] = arrays[key][:1]  # a wrong shape, checksum recomputed: a tampered file
    meta["sha256"] = _digest(arrays, meta["params"], meta["attributes"])
    save_file(arrays, tmp_path / "bad", metadata=meta)
    with pytest.raises(ModelFileError, match="inconsistent DCSOMRL"):
        load(tmp_path / "bad")


def test_gpu_model_loads_on_cpu_with_device(tmp_path, fitted):
    import torch

    som, X = fitted
    som.set_params(device="cuda")  # as if trained on a GPU
    path = som.save(tmp_path / "gpu.somlab")
    if not torch.cuda.is_available():
        with pytest.raises(ModelFileError, match=r"device='cpu'"):
            load(path)
    back = load(path, device="cpu")
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.predict(X), som.set_params(device="cpu").predict(X))
    with pytest.raises(ValueError, match="device must be"):
        load(path, device="gpu")


def test_file_mode_follows_umask_and_folder_target_is_refused(tmp_path, fitted):
    import os

    mask = os.umask(0o022)
    try:
        path = fitted[0].save(tmp_path / "m.somlab")
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        fitted[0].save(tmp_path)


def test_random_state_object_cannot_be_saved(tmp_path, fitted):
    som, _ = fitted
    som.set_params(random_state=np.random.RandomState(0))
    with pytest.raises(ValueError, match="random_state as an int or None"):
        som.save(tmp_path / "m.somlab")


# ------------------------------------------------------------------ edited headers (issue 17.9)


def _read(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}


def _rewrite(path, meta, arrays):
    """Save an edited file with its checksum recomputed, as a careful attacker would."""
    from somlab.persistence import _digest

    meta = dict(meta, sha256=_digest(arrays, meta["params"], meta["attributes"]))
    save_file(arrays, path, metadata=meta)
    return path


@pytest.mark.parametrize("name", ["__dict__", "predict", "fit", "_grid", "weights"])
def test_undeclared_attribute_names_are_refused(tmp_path, fitted, name):
    meta, arrays = _read(fitted[0].save(tmp_path / "m.somlab"))
    attrs = json.loads(meta["attributes"])
    attrs[name] = {"a": 1} if name == "__dict__" else 3
    meta["attributes"] = json.dumps(attrs)
    path = _rewrite(tmp_path / "edited", meta, arrays)
    with pytest.raises(ModelFileError, match=f"'{name}' is not one SOM declares"):
        load(path)
    arrays2 = dict(arrays, **{name: np.zeros(3, np.float32)})  # as a tensor too
    path = _rewrite(tmp_path / "edited2", dict(meta, attributes=json.dumps({})), arrays2)
    with pytest.raises(ModelFileError, match="inconsistent SOM"):
        load(path)


def test_shapes_and_kinds_are_checked_against_grid_and_features(tmp_path, fitted):
    som, _ = fitted  # grid 4x3, 4 features
    meta, arrays = _read(som.save(tmp_path / "m.somlab"))
    cases = {
        "grid": dict(arrays, weights_=np.zeros((3, 4, 4), np.float32)),
        "features": dict(arrays, weights_=np.zeros((4, 3, 5), np.float32)),
        "axes": dict(arrays, weights_=np.zeros((12, 4), np.float32)),
        "kind": dict(arrays, weights_=np.zeros((4, 3, 4), np.int64)),
        "labels": dict(arrays, labels_=np.zeros((3, 3), np.int64)),
    }
    for what, edited in cases.items():
        with pytest.raises(ModelFileError, match="weights_|labels_") as e:
            load(_rewrite(tmp_path / what, meta, edited))
        assert "inconsistent SOM" in str(e.value), what
    attrs = json.loads(meta["attributes"])
    for key, bad in (("n_features_in_", -1), ("n_iter_", "many"), ("history_", [1, 2])):
        edited = dict(meta, attributes=json.dumps(dict(attrs, **{key: bad})))
        with pytest.raises(ModelFileError, match=key):
            load(_rewrite(tmp_path / key, edited, arrays))
    no_weights = {k: v for k, v in arrays.items() if k != "weights_"}
    with pytest.raises(ModelFileError, match="weights_ is missing"):
        load(_rewrite(tmp_path / "none", meta, no_weights))
    names = dict(attrs, feature_names_in_={"__ndarray__": ["a", "b", "c", "d"], "dtype": "|V8"})
    with pytest.raises(ModelFileError, match="unsupported stored dtype"):
        load(_rewrite(tmp_path / "void", dict(meta, attributes=json.dumps(names)), arrays))


def test_every_model_class_round_trips_through_its_allow_list(tmp_path):
    X = np.random.default_rng(0).random((60, 4))
    y = np.arange(60) % 3
    import pandas as pd

    models = [
        somlab.SOM((3, 2), epochs=2, random_state=0).fit(pd.DataFrame(X, columns=list("abcd"))),
        somlab.SOMEnsemble((3, 2), sigma=[1.0, 2.0], epochs=2, random_state=0).fit(X),
        somlab.BatchSSSOM(random_state=0).fit(X, np.array(["a", "b", "c"])[y]),
        somlab.SSSOM(random_state=0).fit(X, y),
        somlab.LARFDSSOM(random_state=0).fit(X),
        somlab.BatchSSSOMEnsemble(at=[0.9, 0.95], random_state=0).fit(X, y),
    ]
    for m in models:
        back = load(m.save(tmp_path / f"{type(m).__name__}.somlab"))
        Xin = pd.DataFrame(X, columns=list("abcd")) if hasattr(m, "feature_names_in_") else X
        np.testing.assert_array_equal(back.predict(Xin), m.predict(Xin))


def test_ensemble_weights_must_match_its_map_count(tmp_path):
    X = np.random.default_rng(0).random((40, 3))
    ens = somlab.SOMEnsemble((2, 2), sigma=[1.0, 2.0], epochs=1, random_state=0).fit(X)
    meta, arrays = _read(ens.save(tmp_path / "e.somlab"))
    edited = dict(arrays, weights_=np.concatenate([arrays["weights_"]] * 2))
    with pytest.raises(ModelFileError, match=r"axis 0 should be 2 \(K\)"):
        load(_rewrite(tmp_path / "bad", meta, edited))


# ------------------------------------------------------------------ full disk (issue 17.6)


def test_full_disk_raises_an_os_error_naming_the_path_and_keeps_the_old_file(
    tmp_path, fitted, monkeypatch
):
    import errno

    import safetensors.numpy

    som, X = fitted
    path = som.save(tmp_path / "m.somlab")
    before = path.read_bytes()

    def full(arrays, filename, metadata=None):  # what safetensors raises on ENOSPC
        with open(filename, "wb") as fh:
            fh.write(b"\0" * 10)  # a partial write, then the disk is full
        raise safetensors.SafetensorError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
            'space left on device" })'
        )

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    with pytest.raises(OSError) as e:
        som.save(path)
    assert isinstance(e.value, somlab.SomlabError) and e.value.errno == errno.ENOSPC
    assert str(path) in str(e.value) and "No space left on device" in str(e.value)
    assert "unchanged" in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "m.somlab"
    ]
    with pytest.raises(OSError, match="new.somlab"):
        som.save(tmp_path / "new.somlab")
    assert not (tmp_path / "new.somlab").exists()


def test_model_path_messages(tmp_path, fitted, monkeypatch):
    with pytest.raises(ModelFileError, match="model file not found"):
        load(tmp_path / "missing.somlab")
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        load(tmp_path)
    path = fitted[0].save(tmp_path / "m.somlab")
    import builtins

    real_open = builtins.open

    def denied(file, *a, **k):  # we run as root in CI: simulate chmod 000
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", denied)
    with pytest.raises(ModelFileError, match="permission denied"):
        load(path)


class _Tiny(somlab.persistence.SaveLoadMixin, __import__("sklearn.base").base.BaseEstimator):
    """A model class outside FITTED_ATTRIBUTES: the fallback rule applies."""

    def __init__(self, k=2):
        self.k = k

    def fit(self, X):
        self.coef_ = np.asarray(X, dtype=np.float64).mean(0)[: self.k]
        return self

    def predict(self, X):
        return np.asarray(X)[:, : self.k] @ self.coef_


def test_undeclared_class_restores_only_fitted_names_that_are_no_members(tmp_path):
    X = np.random.default_rng(0).random((10, 3))
    m = _Tiny().fit(X)
    back = load(m.save(tmp_path / "t.somlab"))
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    meta, arrays = _read(tmp_path / "t.somlab")
    for name in ("predict", "__dict__", "_private"):
        edited = dict(meta, attributes=json.dumps({name: 1}))
        with pytest.raises(ModelFileError, match="not a fitted attribute name"):
            load(_rewrite(tmp_path / "e.somlab", edited, arrays))
