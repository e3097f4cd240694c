"""SOM.fit on data larger than memory: .npy paths, memory maps and DataLoaders (issue 7, 4)."""

import math
import mmap
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from somlab import SOM, DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def _data(n=3000, m=5, seed=0):
    return np.random.default_rng(seed).random((n, m), dtype=np.float32)


def _loader(X, batch_size=256, shuffle=False, seed=0, y=None):
    tensors = [torch.from_numpy(X)] + ([] if y is None else [torch.from_numpy(y)])
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, generator=gen
    )


def _write_npy_in_chunks(path, n, m, rows=100_000, seed=0):
    """A float32 .npy file written a block at a time (never whole in this process)."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (n, m)}
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for a in range(0, n, rows):
            f.write(rng.random((min(rows, n - a), m), dtype=np.float32).tobytes())
    return path


@pytest.fixture
def npy(tmp_path):
    X = _data()
    path = tmp_path / "x.npy"
    np.save(path, X)
    return X, path


def _sources(X, path):
    return {
        "path": path,
        "str": str(path),
        "mmap_mode_r": np.load(path, mmap_mode="r"),
        "np.memmap": np.memmap(path, dtype=np.float32, mode="r", offset=128, shape=X.shape),
        "dataloader": _loader(X, batch_size=256),
        "dataloader_xy": _loader(X, batch_size=300, y=np.arange(len(X))),
        "list_of_arrays": np.array_split(X, 7),
    }


# --------------------------------------------------------------------------- batch mode


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "kind",
    ["path", "str", "mmap_mode_r", "np.memmap", "dataloader", "dataloader_xy", "list_of_arrays"],
)
def test_streamed_batch_fit_equals_in_memory_fit(npy, kind, dtype):
    X, path = npy
    W0 = np.random.default_rng(5).random((4, 5, X.shape[1]))
    kw = dict(init=W0, epochs=4, dtype=dtype)
    ref = SOM((4, 5), **kw).fit(X)
    som = SOM((4, 5), chunk_size=700, **kw).fit(_sources(X, path)[kind])
    # the winner sums are added in row order as in memory: the same weights (bar rounding)
    np.testing.assert_allclose(som.weights_, ref.weights_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(som.labels_, ref.labels_)
    assert math.isclose(som.quantization_error_, ref.quantization_error_, rel_tol=1e-5)
    assert som.topographic_error_ == pytest.approx(ref.topographic_error_, abs=1e-12)
    for key in ("sigma", "quantization_error", "topographic_error"):
        np.testing.assert_allclose(som.history_[key], ref.history_[key], rtol=1e-5, atol=1e-12)
    assert som.n_features_in_ == X.shape[1] and som.n_iter_ == 4
    np.testing.assert_array_equal(som.predict(X), ref.predict(X))


@pytest.mark.parametrize("init", ["pca", "random", "sample"])
def test_streamed_initialisations_match_in_memory(npy, init):
    X, path = npy
    kw = dict(init=init, epochs=1 if init == "pca" else 3, random_state=3)
    ref = SOM((4, 5), **kw).fit(X)
    # "random" and "sample" use the same draws; "pca" sums its covariance in another order
    som = SOM((4, 5), chunk_size=700, **kw).fit(path)
    np.testing.assert_allclose(som.weights_, ref.weights_, rtol=0, atol=1e-5)
    if init != "sample":  # a DataLoader has no row index: "sample" keeps a reservoir sample
        som = SOM((4, 5), **kw).fit(_loader(X, batch_size=256))
        np.testing.assert_allclose(som.weights_, ref.weights_, rtol=0, atol=1e-5)


def test_streamed_sample_init_from_dataloader_picks_distinct_data_rows(npy):
    X, _ = npy
    # a negligible learning rate leaves the initial prototypes where they started
    kw = dict(init="sample", mode="minibatch", learning_rate=1e-12, epochs=1, random_state=0)
    som = SOM((4, 5), **kw).fit(_loader(X, batch_size=256))
    W = som.weights_.reshape(20, -1)
    nearest = np.sqrt(((W[:, None, :] - X[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 1e-6
    assert len(np.unique(W, axis=0)) == 20
    again = SOM((4, 5), **kw).fit(_loader(X, batch_size=256))
    np.testing.assert_array_equal(som.weights_, again.weights_)
    # fewer rows than nodes: drawn with replacement, as in memory
    few = SOM((4, 5), **kw).fit(_loader(X[:7], batch_size=3))
    assert len(np.unique(few.weights_.reshape(20, -1), axis=0)) <= 7


def test_streamed_missing_values_are_ignored_like_in_memory(tmp_path):
    X = _data(2000, 4)
    X[1500, 2] = np.nan  # the first NaN is in a later chunk
    X[1999, 0] = np.nan
    np.save(tmp_path / "x.npy", X)
    kw = dict(init="random", epochs=3, missing="ignore", random_state=0)
    ref = SOM((3, 4), **kw).fit(X)
    som = SOM((3, 4), chunk_size=600, **kw).fit(tmp_path / "x.npy")
    np.testing.assert_allclose(som.weights_, ref.weights_, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(som.labels_, ref.labels_)


def test_dataloader_of_images_is_flattened_per_row():
    images = torch.rand(64, 1, 4, 4)
    som = SOM((3, 3), epochs=2, random_state=0).fit(DataLoader(TensorDataset(images), 16))
    assert som.weights_.shape == (3, 3, 16) and som.labels_.shape == (64,)
    assert som.predict(images.reshape(64, -1).numpy()).shape == (64,)


# --------------------------------------------------------------------------- minibatch / online


def test_minibatch_from_dataloader_trains_and_is_deterministic():
    X = _data(4000, 4, seed=2)
    kw = dict(mode="minibatch", epochs=5, batch_size=64, random_state=0)
    ref = SOM((6, 6), **kw).fit(X)
    a = SOM((6, 6), **kw).fit(_loader(X, batch_size=100, shuffle=True, seed=1))
    b = SOM((6, 6), **kw).fit(_loader(X, batch_size=100, shuffle=True, seed=1))
    np.testing.assert_array_equal(a.weights_, b.weights_)
    assert abs(a.quantization_error_ - ref.quantization_error_) < 0.10 * ref.quantization_error_
    assert a.quantization_error_ < 0.8 * a.history_["quantization_error"][0]
    assert len(a.history_["quantization_error"]) == 5 and a.labels_.shape == (4000,)
    c = SOM((6, 6), **kw).fit(_loader(X, batch_size=100, shuffle=True, seed=2))
    assert not np.array_equal(a.weights_, c.weights_)  # the loader's order matters


@pytest.mark.parametrize("mode", ["minibatch", "online"])
def test_file_steps_shuffle_chunks_with_the_estimator_seed(npy, mode):
    X, path = npy
    kw = dict(mode=mode, epochs=3, batch_size=32, random_state=0)
    ref = SOM((5, 5), **kw).fit(X)
    # at most chunk_size rows: the same permutation as in memory, so the same map
    one = SOM((5, 5), **kw).fit(path)
    np.testing.assert_allclose(one.weights_, ref.weights_, rtol=0, atol=1e-5)
    # several chunks: random chunk order and rows within chunks, reproducible for a seed
    a = SOM((5, 5), chunk_size=500, **kw).fit(path)
    b = SOM((5, 5), chunk_size=500, **kw).fit(np.load(path, mmap_mode="r"))
    np.testing.assert_array_equal(a.weights_, b.weights_)
    c = SOM((5, 5), chunk_size=500, **{**kw, "random_state": 1}).fit(path)
    assert not np.array_equal(a.weights_, c.weights_)
    assert abs(a.quantization_error_ - ref.quantization_error_) < 0.10 * ref.quantization_error_


def test_online_from_dataloader_trains():
    X = _data(1500, 3, seed=4)
    kw = dict(mode="online", epochs=2, random_state=0)
    ref = SOM((4, 4), **kw).fit(X)
    som = SOM((4, 4), **kw).fit(_loader(X, batch_size=128, shuffle=True))
    assert abs(som.quantization_error_ - ref.quantization_error_) < 0.10 * ref.quantization_error_


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["batch", "minibatch", "online"])
def test_streamed_fit_on_cuda_matches_cpu(npy, mode):
    X, path = npy
    kw = dict(mode=mode, init="pca", epochs=2, dtype="float64", chunk_size=700, random_state=0)
    cpu = SOM((4, 5), **kw).fit(path)
    for source in (path, _loader(X, batch_size=256)):
        gpu = SOM((4, 5), device="cuda", **kw).fit(source)
        if source is path:
            np.testing.assert_allclose(gpu.weights_, cpu.weights_, rtol=1e-6, atol=1e-8)
            np.testing.assert_array_equal(gpu.labels_, cpu.labels_)
        else:  # a DataLoader is not shuffled by the estimator: just a sound map
            assert gpu.quantization_error_ < 1.1 * cpu.quantization_error_


# --------------------------------------------------------------------------- memory

_MEMORY_SCRIPT = """
import sys
import numpy as np, torch
from somlab import SOM

torch.set_num_threads(1)  # steadier and faster on a CPU shared with other jobs
def peak_mb():
    # VmHWM, the peak resident set of this process image: ru_maxrss would start at the peak
    # of the pytest process that forked this one (Linux keeps it across exec)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
big, small, kind = sys.argv[1:4]
read = (lambda p: p) if kind == "path" else (lambda p: np.load(p, mmap_mode="r"))
after_imports = peak_mb()
kw = dict(mode="batch", epochs=2, random_state=0)
# warm-up on a small file: torch pages in the code of the kernels it uses and starts its pools
SOM((10, 10), chunk_size=1000, **kw).fit(read(small))
after_warmup = peak_mb()
som = SOM((10, 10), chunk_size=50_000, **kw).fit(read(big))
print(after_imports, after_warmup, peak_mb(), som.labels_.shape[0], som.quantization_error_)
"""


@pytest.fixture(scope="module")
def big_npy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("big")
    n, m = 1_200_000, 64
    big = _write_npy_in_chunks(folder / "big.npy", n, m)
    small = _write_npy_in_chunks(folder / "small.npy", 3000, m, seed=1)
    yield big, small, n
    big.unlink()  # pytest keeps recent temporary folders: do not leave 300 MB behind


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/self/status and madvise: Linux")
@pytest.mark.parametrize(
    "kind",
    [
        "path",
        pytest.param(
            "memmap",
            marks=pytest.mark.skipif(
                not hasattr(mmap, "MADV_DONTNEED"), reason="needs madvise(MADV_DONTNEED)"
            ),
        ),
    ],
)
def test_training_on_a_file_keeps_peak_memory_far_below_its_size(big_npy, kind):
    big, small, n = big_npy
    file_mb = big.stat().st_size / 2**20
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(big), str(small), kind],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    imports, warm, peak, n_labels, qe = (float(v) for v in out.stdout.split())
    print(
        f"{kind}: file {file_mb:.0f} MiB; peak RSS (VmHWM) after imports {imports:.0f} MiB, "
        f"after warm-up {warm:.0f} MiB, after fit {peak:.0f} MiB: growth "
        f"{peak - imports:.0f} MiB since imports ({(peak - imports) / file_mb:.0%}), "
        f"{peak - warm:.0f} MiB since warm-up ({(peak - warm) / file_mb:.0%})"
    )
    assert int(n_labels) == n and 0 < qe < 10
    assert peak - warm < 0.25 * file_mb
    # even counting torch's one-off start-up costs, far from holding the file
    assert peak - imports < 0.40 * file_mb


# --------------------------------------------------------------------------- errors


def test_empty_sources_are_refused(tmp_path):
    with pytest.raises(DataError, match="0 samples"):
        SOM((2, 2)).fit(DataLoader(TensorDataset(torch.empty(0, 3)), batch_size=4))
    np.save(tmp_path / "empty.npy", np.empty((0, 3), dtype=np.float32))
    with pytest.raises(DataError, match="0 samples"):
        SOM((2, 2)).fit(tmp_path / "empty.npy")


def test_feature_count_must_not_change_between_batches():
    batches = [_data(10, 3), _data(10, 4)]
    with pytest.raises(DataError, match="batch 1 has 4 features but the data has 3"):
        SOM((2, 2), init="random").fit(batches)


def test_nan_and_inf_in_a_chunk_are_named(tmp_path):
    X = _data(2000, 3)
    X[1700, 1] = np.nan
    np.save(tmp_path / "nan.npy", X)
    with pytest.raises(DataError, match=r"rows 1500-2000 of nan.npy contains NaN"):
        SOM((2, 2), chunk_size=500).fit(tmp_path / "nan.npy")
    X[1700, 1] = np.inf
    with pytest.raises(DataError, match=r"batch 3 contains inf"):
        SOM((2, 2)).fit(np.array_split(X, 4))


def test_unreadable_npy_files_are_refused(tmp_path):
    bad = tmp_path / "garbage.npy"
    bad.write_bytes(b"this is not an array file")
    with pytest.raises(DataError, match="cannot read .*garbage.npy as a .npy array"):
        SOM().fit(bad)
    cut = tmp_path / "cut.npy"
    np.save(cut, _data(100, 3))
    cut.write_bytes(cut.read_bytes()[:-50])
    with pytest.raises(DataError, match="truncated"):
        SOM().fit(cut)
    np.save(tmp_path / "f.npy", np.asfortranarray(_data(100, 3)))
    with pytest.raises(DataError, match="Fortran"):
        SOM().fit(tmp_path / "f.npy")
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="dtype object"):
        SOM().fit(tmp_path / "obj.npy")
    np.save(tmp_path / "flat.npy", np.arange(5.0))
    with pytest.raises(DataError, match="2-D"):
        SOM().fit(tmp_path / "flat.npy")
    with pytest.raises(DataError, match="not found"):
        SOM().fit(tmp_path / "missing.npy")


def test_one_shot_iterators_and_bare_datasets_get_a_hint():
    X = _data(50, 3)
    with pytest.raises(DataError, match="one-shot iterator"):
        SOM((2, 2)).fit(b for b in np.array_split(X, 3))
    with pytest.raises(DataError, match="DataLoader"):
        SOM((2, 2)).fit(TensorDataset(torch.from_numpy(X)))
    with pytest.raises(DataError, match="partial_fit takes one in-memory batch"):
        SOM((2, 2)).partial_fit(_loader(X))


def test_chunk_size_is_a_validated_parameter(npy):
    _, path = npy
    assert SOM().get_params()["chunk_size"] == 65536
    with pytest.raises(ValueError, match="chunk_size"):
        SOM(chunk_size=0).fit(path)
