"""Tests of somlab.datasets: file readers, bundled UCI folds, MNIST loaders, toy sets."""

from __future__ import annotations

import gzip
import io
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from somlab import DataError
from somlab import datasets as ds
from somlab.datasets import _images

# ../shared beside the repository (as in CI); SOMLAB_SHARED overrides
SHARED = (
    Path(os.environ.get("SOMLAB_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
)
MNIST_NPZ = SHARED / "mnist.npz"
needs_mnist = pytest.mark.skipif(not MNIST_NPZ.is_file(), reason="shared mnist.npz absent")


def assert_one_line(exc_info, *fragments):
    msg = str(exc_info.value)
    assert "\n" not in msg and msg.strip()
    for frag in fragments:
        assert frag in msg, (frag, msg)


# --------------------------------------------------------------------------- CSV


def test_csv_header_and_named_label_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label,c\n1,2,0,3\n4,5,1,6\n7,8,999,9\n10,11,?,12\n")
    X, y = ds.load_file(f, label_column="label")
    assert X.dtype == np.float64 and X.shape == (4, 3)  # the file's precision
    np.testing.assert_array_equal(X[:, 0], [1, 4, 7, 10])
    np.testing.assert_array_equal(X[1], [4, 5, 6])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, -1, -1])


def test_csv_label_column_by_index_last_and_none(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("1.5,2,1\n3,4,0\n")
    X, y = ds.read_csv(f, label_column="last")
    np.testing.assert_array_equal(y, [1, 0])
    np.testing.assert_allclose(X, [[1.5, 2], [3, 4]])
    X1, y1 = ds.read_csv(f, label_column=1)
    np.testing.assert_allclose(X1, [[1.5, 1], [3, 0]])
    np.testing.assert_array_equal(y1, [2, 4])
    with pytest.raises(DataError, match="integers"):  # 1.5 is not a class label
        ds.read_csv(f, label_column=0, header=False)
    X2, y2 = ds.load_file(f)
    assert X2.shape == (2, 3) and y2 is None
    with pytest.raises(DataError, match="out of range"):
        ds.read_csv(f, label_column=5)
    with pytest.raises(DataError, match="no column named 'class'"):  # a name implies a header
        ds.read_csv(f, label_column="class")
    with pytest.raises(DataError, match="no header"):
        ds.read_csv(f, label_column="class", header=False)


def test_csv_string_labels_missing_values_and_comments(tmp_path):
    f = tmp_path / "iris.txt"
    f.write_text("# a comment\n5.1 3.5 setosa\n\n6.0 ? virginica\n5.9 3.0 versicolor\n")
    X, y = ds.load_file(f, label_column=-1, comment="#")  # comments only when asked for
    assert X.shape == (3, 2)
    assert np.isnan(X[1, 1])
    np.testing.assert_array_equal(y, [0, 2, 1])  # sorted names


def test_tsv_and_gzip_csv(tmp_path):
    f = tmp_path / "d.tsv"
    f.write_text("x\ty\tclass\n0.1\t0.2\t3\n0.3\t0.4\t-1\n")
    X, y = ds.load_file(f, label_column="class")
    np.testing.assert_allclose(X, [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(y, [3, -1])
    g = tmp_path / "d.csv.gz"
    with gzip.open(g, "wt") as fh:
        fh.write("1,2\n3,4\n")
    X, y = ds.load_file(g)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])


def test_csv_errors(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("1,2,3\n4,5\n")
    with pytest.raises(DataError) as e:
        ds.load_file(ragged)
    assert_one_line(e, "ragged.csv", "line 2")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3,oops\n")
    with pytest.raises(DataError) as e:
        ds.load_file(bad)
    assert_one_line(e, "line 3", "oops")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError) as e:
        ds.load_file(empty)
    assert_one_line(e, "empty")
    header_only = tmp_path / "h.csv"
    header_only.write_text("a,b,c\n")
    with pytest.raises(DataError, match="no data rows"):
        ds.load_file(header_only)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\x00\x01\x02\xff" * 100)
    with pytest.raises(DataError, match="bin.csv"):
        ds.load_file(binary)
    with pytest.raises(DataError, match="no column named"):
        ds.read_csv(bad, label_column="zzz")


# --------------------------------------------------------------------------- NPY / NPZ


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((20, 5))
    y = rng.integers(0, 3, 20)
    y[:4] = 999
    f = tmp_path / "d.npz"
    np.savez(f, X=X, y=y)
    X2, y2 = ds.load_file(f)
    assert X2.dtype == np.float64 and y2.dtype == np.int64  # the array's own precision
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2[:4], -1)
    np.testing.assert_array_equal(y2[4:], y[4:])
    g = tmp_path / "keras.npz"
    np.savez_compressed(g, x_train=(X * 255).astype(np.uint8).reshape(20, 5, 1), y_train=y)
    X3, _ = ds.read_npz(g)
    assert X3.shape == (20, 5)
    h = tmp_path / "xonly.npz"
    np.savez(h, x=X)
    assert ds.load_file(h)[1] is None


def test_npz_errors(tmp_path):
    f = tmp_path / "nokey.npz"
    np.savez(f, features=np.ones((2, 2)))
    with pytest.raises(DataError, match="expected key X"):
        ds.load_file(f)
    g = tmp_path / "len.npz"
    np.savez(g, X=np.ones((3, 2)), y=np.ones(2))
    with pytest.raises(DataError, match="3 samples but 2 labels"):
        ds.load_file(g)
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="obj.npz"):
        ds.load_file(obj)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"definitely not a zip archive")
    with pytest.raises(DataError, match="not a .npz file"):
        ds.load_file(garbage)
    good = tmp_path / "good.npz"
    np.savez(good, X=np.ones((100, 10)))
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DataError) as e:
        ds.load_file(trunc)
    assert_one_line(e, "trunc.npz")


def test_npy_mmap_and_errors(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    f = tmp_path / "x.npy"
    np.save(f, X)
    X2, y2 = ds.load_file(f, mmap_mode="r")
    assert y2 is None
    np.testing.assert_array_equal(X2, X)
    imgs = tmp_path / "imgs.npy"
    np.save(imgs, np.zeros((5, 4, 4), dtype=np.uint8))
    assert ds.read_npy(imgs)[0].shape == (5, 16)
    one_d = tmp_path / "v.npy"
    np.save(one_d, np.arange(5.0))
    with pytest.raises(DataError, match="2-D"):
        ds.load_file(one_d)
    trunc = tmp_path / "t.npy"
    trunc.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(DataError) as e:
        ds.load_file(trunc)
    assert_one_line(e, "t.npy")
    garbage = tmp_path / "g.npy"
    garbage.write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match="g.npy"):
        ds.load_file(garbage)
    empty = tmp_path / "e.npy"
    np.save(empty, np.zeros((0, 3)))
    with pytest.raises(DataError, match="empty"):
        ds.load_file(empty)
    obj = tmp_path / "o.npy"
    np.save(obj, np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="o.npy"):
        ds.load_file(obj)


# --------------------------------------------------------------------------- ARFF

ARFF_NOMINAL = """% a comment
@relation toy
@attribute a numeric
@attribute colour {red,green}
@attribute b real
@attribute class {0,1,2,999,'?'}
@data
0.5,red,1.0,2
1.5,green,?,999
2.5,?,3.0,?
3.5,red,4.0,0
"""


def test_arff_unlabelled_999_and_question_mark(tmp_path):
    f = tmp_path / "t.arff"
    f.write_text(ARFF_NOMINAL)
    X, y = ds.load_file(f)
    np.testing.assert_array_equal(y, [2, -1, -1, 0])
    assert X.shape == (4, 3) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0], [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_array_equal(X[[0, 1, 3], 1], [0, 1, 0])  # nominal feature coded
    assert np.isnan(X[2, 1]) and np.isnan(X[1, 2])


def test_arff_numeric_class_and_names(tmp_path):
    f = tmp_path / "num.arff"
    f.write_text(
        "@relation r\n@attribute x numeric\n@attribute class numeric\n@data\n1,?\n2,999\n3,4\n4,1\n"
    )
    X, y = ds.read_arff(f)
    np.testing.assert_array_equal(y, [-1, -1, 4, 1])
    g = tmp_path / "names.arff"
    g.write_text(
        "@relation r\n@attribute class {zebra,ant}\n@attribute x numeric\n"
        "@data\nzebra,1\nant,2\n?,3\n"
    )
    X, y = ds.read_arff(g)  # 'class' found although it is not the last attribute
    np.testing.assert_array_equal(X[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(y, [1, 0, -1])


def test_arff_corrupt_and_empty(tmp_path):
    empty = tmp_path / "empty.arff"
    empty.write_text("")
    with pytest.raises(DataError) as e:
        ds.load_file(empty)
    assert_one_line(e, "empty.arff")
    nodata = tmp_path / "nodata.arff"
    nodata.write_text("@relation r\n@attribute a numeric\n@attribute class {0,1}\n@data\n")
    with pytest.raises(DataError, match="no data rows"):
        ds.load_file(nodata)
    bad = tmp_path / "bad.arff"
    bad.write_text("@relation r\n@attribute a numeric\n@attribute class {0,1}\n@data\nabc,0\n")
    with pytest.raises(DataError) as e:
        ds.load_file(bad)
    assert_one_line(e, "bad.arff")
    trunc = tmp_path / "trunc.arff"
    trunc.write_text(ARFF_NOMINAL[:60])
    with pytest.raises(DataError, match="trunc.arff"):
        ds.load_file(trunc)


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        ds.load_file(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="directory"):
        ds.load_file(tmp_path)
    odd = tmp_path / "x.xlsx"
    odd.write_bytes(b"PK")
    with pytest.raises(DataError, match="unknown file type"):
        ds.load_file(odd)
    assert issubclass(DataError, ValueError)


def test_parquet_needs_pyarrow(tmp_path):
    pytest.importorskip("pandas")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        f = tmp_path / "t.parquet"
        f.write_bytes(b"PAR1")
        with pytest.raises(DataError, match="pyarrow"):
            ds.load_file(f)
    else:
        import pandas as pd

        f = tmp_path / "t.parquet"
        pd.DataFrame({"a": [1.0, 2.0], "cls": ["x", "y"]}).to_parquet(f)
        X, y = ds.load_file(f, label_column="cls")
        np.testing.assert_array_equal(y, [0, 1])


# --------------------------------------------------------------------------- UCI


def test_uci_names_and_folds():
    assert ds.UCI_DATASETS == (
        "breast",
        "diabetes",
        "glass",
        "liver",
        "pendigits",
        "shape",
        "vowel",
    )
    folds = ds.uci_folds()
    assert folds[0] == "x1_k1" and folds[4] == "x2_k2" and folds[-1] == "x3_k3"
    assert len(folds) == len(set(folds)) == 9


@pytest.mark.parametrize("name,n,m,c", [("breast", 198, 33, 2), ("liver", 345, 6, 2)])
def test_uci_sizes(name, n, m, c):
    b = ds.load_uci(name, "x2_k3")
    assert b.X_train.shape[0] + b.X_test.shape[0] == n
    assert b.X_train.shape[1] == b.X_test.shape[1] == m
    assert np.unique(np.concatenate([b.y_train, b.y_test])).size == c == b.n_classes
    assert b.X_train.dtype == np.float32 and b.y_train.dtype == np.int64
    assert b.name == name and b.fold == "x2_k3" and b.labelled == 1.0
    np.testing.assert_array_equal(b.y_train, b.y_train_true)
    assert b.X_train.min() >= 0 and b.X_train.max() <= 1  # the authors' files are min-max scaled


def test_uci_breast_test_folds_partition_the_data():
    tests = [ds.load_uci("breast", (1, k)).X_test for k in (1, 2, 3)]
    allx = np.concatenate(tests)
    assert allx.shape == (198, 33)
    assert np.unique(allx, axis=0).shape[0] == 198  # disjoint test folds covering every sample
    b = ds.load_uci("breast", "x1_k1")
    both = np.concatenate([b.X_train, b.X_test])
    assert np.unique(both, axis=0).shape[0] == 198  # train and test do not overlap


def test_uci_fold_spellings_agree():
    a = ds.load_uci("liver", "x2_k3")
    b = ds.load_uci("liver", (2, 3))
    c = ds.load_uci("liver", 5)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.X_test, c.X_test)
    d = ds.load_uci("liver", 0)
    assert d.fold == "x1_k1" and not np.array_equal(d.X_test, a.X_test)


def test_uci_label_fractions():
    full = ds.load_uci("diabetes", "x1_k2")
    n = full.X_train.shape[0]
    for frac in (0.01, 0.05, 0.10, 0.25, 0.50, 0.75):
        b = ds.load_uci("diabetes", "x1_k2", labelled=frac)
        # TrainSxx rows are the Train rows, in the same order
        np.testing.assert_array_equal(b.X_train, full.X_train)
        np.testing.assert_array_equal(b.y_train_true, full.y_train)
        known = b.y_train >= 0
        assert abs(known.mean() - frac) < 0.04, (frac, known.mean())
        assert set(np.unique(b.y_train)) <= {-1, 0, 1}
        np.testing.assert_array_equal(b.y_train[known], b.y_train_true[known])
        assert b.labelled == frac
    none = ds.load_uci("diabetes", "x1_k2", labelled=0)
    assert (none.y_train == -1).all() and none.y_train.shape == (n,)
    np.testing.assert_array_equal(none.y_train_true, full.y_train)


def test_uci_returns_fresh_arrays():
    a = ds.load_uci("breast")
    a.X_train[:] = -5
    a.y_train[:] = 7
    b = ds.load_uci("breast")
    assert b.X_train.min() >= 0 and (b.y_train != 7).any()


@pytest.mark.parametrize("fold", ["x4_k1", "x1k1", (0, 1), (1, 4), 9, -1, True, 1.5, None])
def test_uci_bad_fold(fold):
    with pytest.raises(DataError) as e:
        ds.load_uci("breast", fold)
    assert_one_line(e, "fold")


def test_uci_bad_name_and_fraction():
    with pytest.raises(DataError) as e:
        ds.load_uci("iris")
    assert_one_line(e, "iris", "breast")
    with pytest.raises(DataError, match="labelled"):
        ds.load_uci("breast", labelled=0.3)
    with pytest.raises(DataError, match="not found"):
        ds.load_uci("breast", data_home="/nonexistent/somlab")


def _write_fake_uci(root: Path):
    head = "@relation t\n@attribute d0 real\n@attribute d1 real\n@attribute class {0,1,999}\n"
    base = root / "Datasets"
    rows = ["0.1,0.2,0", "0.3,0.4,1", "0.5,0.6,1", "0.7,0.8,0"]
    semi = ["0.1,0.2,999", "0.3,0.4,1", "0.5,0.6,999", "0.7,0.8,999"]
    for folder, fname, body in [
        ("Train", "train", rows),
        ("Test", "test", rows[:2]),
        ("TrainS25", "train", semi),
    ]:
        d = base / f"Realdata_3Times3FoldsExp_{folder}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{fname}_glass_x1_k1.arff").write_text(head + "@data\n" + "\n".join(body) + "\n")


def test_uci_data_home_extracted_folder(tmp_path):
    _write_fake_uci(tmp_path)
    b = ds.load_uci("glass", "x1_k1", labelled=0.25, data_home=tmp_path)
    assert b.X_train.shape == (4, 2) and b.X_test.shape == (2, 2)
    np.testing.assert_array_equal(b.y_train, [-1, 1, -1, -1])
    np.testing.assert_array_equal(b.y_train_true, [0, 1, 1, 0])
    with pytest.raises(DataError, match="lacks|cannot read"):
        ds.load_uci("glass", "x1_k1", labelled=0.5, data_home=tmp_path)


def test_uci_detects_mismatched_fraction_file(tmp_path):
    _write_fake_uci(tmp_path)
    f = tmp_path / "Datasets/Realdata_3Times3FoldsExp_TrainS25/train_glass_x1_k2.arff"
    src = tmp_path / "Datasets/Realdata_3Times3FoldsExp_TrainS25/train_glass_x1_k1.arff"
    f.write_text(src.read_text().replace("0.7,0.8", "0.9,0.9"))
    for folder, prefix in (("Train", "train"), ("Test", "test")):
        d = tmp_path / f"Datasets/Realdata_3Times3FoldsExp_{folder}"
        (d / f"{prefix}_glass_x1_k2.arff").write_text(
            (d / f"{prefix}_glass_x1_k1.arff").read_text()
        )
    with pytest.raises(DataError, match="differ"):
        ds.load_uci("glass", "x1_k2", labelled=0.25, data_home=tmp_path)


def test_uci_corrupt_archive(tmp_path):
    bad = tmp_path / "uci-3x3folds.tar.xz"
    bad.write_bytes(b"\xfd7zXZ\x00garbage" * 10)
    with pytest.raises(DataError) as e:
        ds.load_uci("breast", data_home=tmp_path)
    assert_one_line(e, "uci-3x3folds.tar.xz")


def test_sssom_params():
    p = ds.load_sssom_params()
    cols = ["at", "lp", "beta", "age_wins", "e_b", "e_n", "s", "minwd", "epochs", "push", "seed"]
    assert list(p) == cols
    assert all(v.shape == (500,) for v in p.values())
    assert p["epochs"].dtype == np.int64 and p["seed"].dtype == np.int64
    assert p["epochs"].min() >= 1 and p["age_wins"].min() >= 1
    assert 0 < p["at"].min() and p["at"].max() <= 1
    assert p["at"][0] == pytest.approx(0.874747) and p["seed"][0] == 937


# --------------------------------------------------------------------------- images


@pytest.fixture
def no_image_dirs(tmp_path, monkeypatch):
    """Point HOME and SOMLAB_DATA away from any real cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SOMLAB_DATA", raising=False)
    return home


def _idx_bytes(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return (
        struct.pack(">BBBB", 0, 0, 0x08, a.ndim)
        + struct.pack(f">{a.ndim}I", *a.shape)
        + a.tobytes()
    )


def _tiny_idx_set():
    rng = np.random.default_rng(1)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([5, 0, 4, 1, 9, 2], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 2, 1], dtype=np.uint8),
    }


def _write_idx(folder: Path, arrays, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        if compress:
            with gzip.open(folder / f"{stem}.gz", "wb") as fh:
                fh.write(_idx_bytes(a))
        else:
            (folder / stem).write_bytes(_idx_bytes(a))


@needs_mnist
def test_mnist_from_npz(no_image_dirs):
    b = ds.load_mnist(data_dir=SHARED, download=False)
    assert b.X_train.shape == (60000, 28, 28) and b.X_train.dtype == np.uint8
    assert b.X_test.shape == (10000, 28, 28)
    assert b.y_train.shape == (60000,) and b.y_train.dtype == np.int64
    np.testing.assert_array_equal(b.y_train[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])
    np.testing.assert_array_equal(b.y_test[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])


@needs_mnist
def test_mnist_found_through_env_var(no_image_dirs, monkeypatch):
    monkeypatch.setenv("SOMLAB_DATA", str(SHARED))
    b = ds.load_mnist(download=False)
    assert b.X_train.shape[0] == 60000 and b.source.endswith("mnist.npz")


@needs_mnist
def test_mnist_subset(no_image_dirs):
    X, y = ds.load_mnist_subset(1000, data_dir=SHARED, download=False)
    assert X.shape == (1000, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() == 1.0
    counts = np.bincount(y, minlength=10)
    assert counts.sum() == 1000 and counts.min() >= 85 and counts.max() <= 120
    X2, y2 = ds.load_mnist_subset(1000, data_dir=SHARED, download=False)
    np.testing.assert_array_equal(y, y2)
    _, y3 = ds.load_mnist_subset(1000, data_dir=SHARED, seed=None, download=False)
    assert y3[0] == 5  # first sample of the training set
    with pytest.raises(DataError, match="n must be"):
        ds.load_mnist_subset(0, data_dir=SHARED, download=False)


def test_bundled_mnist_subset_needs_no_files_nor_network(no_image_dirs, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the bundled subset must not download")

    monkeypatch.setattr(_images.urllib.request, "urlopen", no_network)
    X, y = ds.load_mnist_subset()  # n=5000, seed=0: shipped with the package
    assert X.shape == (5000, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() == 1.0
    # 5000 x each class's share of the 60000 (5923 zeros -> 493.58), largest remainders up
    np.testing.assert_array_equal(
        np.bincount(y, minlength=10), [494, 562, 496, 511, 487, 452, 493, 522, 487, 496]
    )
    with pytest.raises(DataError, match="MNIST not found"):
        ds.load_mnist_subset(5000, seed=1, download=False)  # any other draw needs MNIST


@needs_mnist
def test_bundled_mnist_subset_is_the_one_drawn_from_mnist(no_image_dirs):
    X, y = ds.load_mnist_subset(5000)
    X2, y2 = _images._subset_of_mnist(5000, SHARED, 0, False)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(X, X2)


def test_idx_files_in_data_dir_and_subfolder(tmp_path, no_image_dirs):
    arrays = _tiny_idx_set()
    _write_idx(tmp_path / "flat", arrays)
    b = ds.load_mnist(data_dir=tmp_path / "flat", download=False)
    np.testing.assert_array_equal(b.X_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(b.y_train, [5, 0, 4, 1, 9, 2])
    np.testing.assert_array_equal(b.y_test, [7, 2, 1])
    assert b.X_test.shape == (3, 28, 28) and b.y_train.dtype == np.int64
    # fashion_mnist/ sub-folder, uncompressed files
    _write_idx(tmp_path / "root" / "fashion_mnist", arrays, compress=False)
    f = ds.load_fashion_mnist(data_dir=tmp_path / "root", download=False)
    np.testing.assert_array_equal(f.X_test, arrays["t10k-images-idx3-ubyte"])


def test_idx_truncated_or_bad_magic(tmp_path, no_image_dirs):
    arrays = _tiny_idx_set()
    _write_idx(tmp_path, arrays)
    raw = _idx_bytes(arrays["train-images-idx3-ubyte"])
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(raw[:-100])
    with pytest.raises(DataError) as e:
        ds.load_mnist(data_dir=tmp_path, download=False)
    assert_one_line(e, "train-images-idx3-ubyte.gz", "truncated")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="train-images"):
        ds.load_mnist(data_dir=tmp_path, download=False)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(b"\x12\x34" + raw[2:])
    with pytest.raises(DataError, match="magic"):
        ds.load_mnist(data_dir=tmp_path, download=False)


def test_mnist_missing_without_download(tmp_path, no_image_dirs):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        ds.load_mnist(data_dir=empty, download=False)
    assert_one_line(
        e,
        str(empty),
        "SOMLAB_DATA",
        str(no_image_dirs / ".cache" / "somlab"),
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "download=False",
    )
    with pytest.raises(DataError, match="fashion-mnist.s3-website"):
        ds.load_fashion_mnist(data_dir=empty, download=False)


def test_mnist_download_failure_is_clean(tmp_path, no_image_dirs, monkeypatch):
    def refuse(url, timeout=None):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(_images.urllib.request, "urlopen", refuse)
    with pytest.raises(DataError) as e:
        ds.load_mnist(data_dir=tmp_path)
    assert_one_line(e, "download failed", "network unreachable", "ossci-datasets")
    assert not list(tmp_path.rglob("*.part"))


def test_mnist_download_with_fake_server(tmp_path, no_image_dirs, monkeypatch):
    arrays = _tiny_idx_set()
    blobs = {f"{stem}.gz": gzip.compress(_idx_bytes(a)) for stem, a in arrays.items()}
    import hashlib

    md5 = {name: hashlib.md5(blob).hexdigest() for name, blob in blobs.items()}
    monkeypatch.setitem(_images._SETS["mnist"], "md5", md5)
    seen = []

    def serve(url, timeout=None):
        seen.append(url)
        return io.BytesIO(blobs[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(_images.urllib.request, "urlopen", serve)
    b = ds.load_mnist()  # downloads into ~/.cache/somlab/mnist (HOME is a temp dir)
    assert len(seen) == 4 and all(u.startswith("https://ossci-datasets") for u in seen)
    np.testing.assert_array_equal(b.y_train, [5, 0, 4, 1, 9, 2])
    cache = no_image_dirs / ".cache" / "somlab" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(blobs)
    ds.load_mnist()  # second call finds the files: no new download
    assert len(seen) == 4
    # a corrupted download (checksum mismatch) leaves nothing behind
    monkeypatch.setitem(_images._SETS["fashion_mnist"], "md5", {k: "0" * 32 for k in md5})
    with pytest.raises(DataError, match="checksum"):
        ds.load_fashion_mnist()
    assert not list((no_image_dirs / ".cache" / "somlab" / "fashion_mnist").iterdir())


# --------------------------------------------------------------------------- toy / catalogue


@pytest.mark.parametrize("name,shape,c", [("iris", (150, 4), 3), ("wine", (178, 13), 3)])
def test_toy(name, shape, c):
    X, y = ds.load_toy(name)
    assert X.shape == shape and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(X.min(axis=0), 0)
    np.testing.assert_allclose(X.max(axis=0), 1)
    assert np.unique(y).size == c


def test_toy_digits_and_unknown():
    X, y = ds.load_toy("digits")
    assert X.shape == (1797, 64) and X.min() == 0 and X.max() == 1
    assert np.isfinite(X).all()  # constant pixels do not divide by zero
    with pytest.raises(DataError, match="unknown toy dataset"):
        ds.load_toy("mnist")


def test_list_datasets():
    rows = ds.list_datasets()
    by_name = {r["name"]: r for r in rows}
    images = {"mnist", "fashion_mnist", "mnist_5000"}
    assert set(ds.UCI_DATASETS) | {"iris", "digits", "wine"} | images == set(by_name)
    for r in rows:
        assert set(r) == {"name", "kind", "n_samples", "n_features", "n_classes", "bundled"}
    expected = {
        "breast": (198, 33, 2),
        "liver": (345, 6, 2),
        "glass": (214, 9, 6),
        "diabetes": (768, 8, 2),
        "vowel": (990, 10, 11),
        "pendigits": (7494, 16, 10),
        "shape": (160, 17, 9),
    }
    for name, (n, m, c) in expected.items():
        r = by_name[name]
        assert (r["n_samples"], r["n_features"], r["n_classes"]) == (n, m, c), r
        assert r["kind"] == "uci" and r["bundled"] is True
    assert by_name["iris"]["kind"] == "toy" and by_name["iris"]["n_samples"] == 150
    assert by_name["mnist"]["kind"] == "image" and by_name["mnist"]["bundled"] is False
    assert by_name["mnist_5000"]["bundled"] is True and by_name["mnist_5000"]["n_samples"] == 5000
