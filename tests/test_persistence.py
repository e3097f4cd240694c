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
    old = {k: v for k, v in meta.items() if k != "sha256"}  # a file from before the checksum
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
