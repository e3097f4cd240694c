"""MNIST and Fashion-MNIST: found on disk, or downloaded once into a cache folder.

Search order: the ``data_dir`` argument, the folder(s) in the ``SOMLAB_DATA`` environment
variable, then ``~/.cache/somlab``. In each folder the loader accepts ``<name>.npz`` (keys
``x_train, y_train, x_test, y_test``), or the four original idx files (gzipped or not) in a
``<name>/`` sub-folder; in an explicit ``data_dir`` the idx files may also lie directly.
``load_mnist_subset()`` (5,000 digits) is bundled and needs neither.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from .._errors import DataError
from ._readers import _NPZ_MAGIC, _check_magic, _one_line

__all__ = ["load_fashion_mnist", "load_mnist", "load_mnist_subset", "pixel_rows"]

ENV_VAR = "SOMLAB_DATA"
_TIMEOUT_S = 20.0
_CHUNK = 1 << 16

# split -> idx file stem (the same names for MNIST and Fashion-MNIST)
_IDX_FILES = {
    "X_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

_SETS = {
    "mnist": {
        "title": "MNIST",
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion_mnist": {
        "title": "Fashion-MNIST",
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}

# idx type code -> numpy dtype (big-endian on disk)
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


# --------------------------------------------------------------------------- file formats


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (optionally gzipped): magic 0x0000TTNN, NN big-endian int32 sizes."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {_one_line(exc)}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"cannot read {path}: not an idx file (bad magic number)")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"cannot read {path}: truncated idx header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(
            f"cannot read {path}: idx data has {len(raw) - header} bytes, header says "
            f"{count * dtype.itemsize} (truncated or corrupt file)"
        )
    a = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return a.astype(dtype.newbyteorder("="), copy=True)


def _check_split(images: np.ndarray, labels: np.ndarray, split: str, source: str):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 2 and images.shape[1] == 28 * 28:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3:
        raise DataError(f"{source}: {split} images must be (n, 28, 28), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{source}: {images.shape[0]} {split} images but labels of shape {labels.shape}"
        )
    if images.dtype != np.uint8:
        if images.dtype.kind not in "iu" or images.min() < 0 or images.max() > 255:
            raise DataError(f"{source}: pixels must be uint8 0..255, got dtype {images.dtype}")
        images = images.astype(np.uint8)
    if labels.dtype.kind not in "iu":
        raise DataError(f"{source}: labels must be integers, got dtype {labels.dtype}")
    return images, labels.astype(np.int64)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    _check_magic(path, _NPZ_MAGIC, ".npz")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DataError(f"cannot read {path}: not a .npz archive")
            keys = {k.lower(): k for k in npz.files}
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in keys]
            if missing:
                raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
            arrays = {k: npz[keys[k]] for k in ("x_train", "y_train", "x_test", "y_test")}
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read {path}: not a valid .npz file ({_one_line(exc)})") from None
    out = {}
    source = str(path)
    out["X_train"], out["y_train"] = _check_split(
        arrays["x_train"], arrays["y_train"], "train", source
    )
    out["X_test"], out["y_test"] = _check_split(arrays["x_test"], arrays["y_test"], "test", source)
    return out


def _idx_paths(folder: Path) -> dict[str, Path] | None:
    """The four idx files in ``folder`` (``.gz`` or plain), or None if any is missing."""
    found = {}
    for split, stem in _IDX_FILES.items():
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[split] = candidate
                break
        else:
            return None
    return found


def _load_idx_set(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    a = {split: _read_idx(p) for split, p in paths.items()}
    out = {}
    src = str(paths["X_train"].parent)
    out["X_train"], out["y_train"] = _check_split(a["X_train"], a["y_train"], "train", src)
    out["X_test"], out["y_test"] = _check_split(a["X_test"], a["y_test"], "test", src)
    return out


# --------------------------------------------------------------------------- search / download


def _search_dirs(data_dir) -> list[tuple[Path, bool]]:
    """Folders to look in, each with a flag "explicit" (the data_dir argument)."""
    dirs: list[tuple[Path, bool]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), True))
    for part in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if part.strip():
            dirs.append((Path(part.strip()).expanduser(), False))
    dirs.append((Path.home() / ".cache" / "somlab", False))
    return dirs


def _download_dir(key: str, data_dir) -> Path:
    if data_dir is not None:
        base = Path(data_dir).expanduser()
    else:
        env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
        base = Path(env[0].strip()).expanduser() if env else Path.home() / ".cache" / "somlab"
    return base / key


def _find(key: str, data_dir):
    npz_name = f"{key}.npz"
    for folder, explicit in _search_dirs(data_dir):
        if (folder / npz_name).is_file():
            return ("npz", folder / npz_name)
        paths = _idx_paths(folder / key)
        if paths is None and explicit:
            paths = _idx_paths(folder)
        if paths is not None:
            return ("idx", paths)
    return None


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _download(key: str, target: Path) -> dict[str, Path]:
    """Download the four idx gz files into ``target`` (temp file, then rename)."""
    spec = _SETS[key]
    target.mkdir(parents=True, exist_ok=True)
    for fname, md5 in spec["md5"].items():
        dest = target / fname
        if dest.is_file() and _md5(dest) == md5:
            continue
        url = spec["url"] + fname
        fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".part", dir=target)
        try:
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp:
                    while True:
                        block = resp.read(_CHUNK)
                        if not block:
                            break
                        out.write(block)
            got = _md5(Path(tmp))
            if got != md5:
                raise OSError(f"checksum mismatch for {url} (md5 {got}, expected {md5})")
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    paths = _idx_paths(target)
    if paths is None:  # pragma: no cover - only if the files vanish meanwhile
        raise OSError(f"downloaded files missing from {target}")
    return paths


def _not_found(key: str, data_dir, reason: str) -> DataError:
    spec = _SETS[key]
    looked = "; ".join(str(d) for d, _ in _search_dirs(data_dir))
    files = ", ".join(spec["md5"])
    return DataError(
        f"{spec['title']} not found (looked in: {looked}; set {ENV_VAR} or pass data_dir) "
        f"and {reason}. Fetch {files} by hand from {spec['url']} into "
        f"{_download_dir(key, data_dir)}, or place {key}.npz (keys x_train, y_train, x_test, "
        "y_test) in one of those folders."
    )


def _load_image_set(key: str, data_dir, download: bool):
    from sklearn.utils import Bunch

    found = _find(key, data_dir)
    if found is None:
        if not download:
            raise _not_found(key, data_dir, "download=False")
        target = _download_dir(key, data_dir)
        try:
            paths = _download(key, target)
        except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as exc:
            raise _not_found(key, data_dir, f"the download failed ({_one_line(exc)})") from None
        found = ("idx", paths)
    kind, where = found
    if kind == "npz":
        arrays = _load_npz(where)
        source = str(where)
    else:
        arrays = _load_idx_set(where)
        source = str(where["X_train"].parent)
    return Bunch(**arrays, name=key, source=source)


# --------------------------------------------------------------------------- public


def load_mnist(data_dir=None, download: bool = True):
    """MNIST as ``Bunch(X_train, y_train, X_test, y_test, name, source)``.

    ``X_*`` are uint8 arrays ``(n, 28, 28)`` (60000 train, 10000 test), ``y_*`` int64 labels
    0..9. Looks in ``data_dir``, ``$SOMLAB_DATA`` and ``~/.cache/somlab`` (see the module
    docstring); when nothing is found and ``download`` is true, fetches the four idx gz files
    from https://ossci-datasets.s3.amazonaws.com/mnist/ into ``<data_dir or $SOMLAB_DATA or
    ~/.cache/somlab>/mnist/``. Raises :class:`~somlab.DataError` when that fails.
    """
    return _load_image_set("mnist", data_dir, download)


def load_fashion_mnist(data_dir=None, download: bool = True):
    """Fashion-MNIST, like :func:`load_mnist` (files ``fashion_mnist.npz`` or
    ``fashion_mnist/*-idx?-ubyte.gz``; download from Zalando's public S3 site)."""
    return _load_image_set("fashion_mnist", data_dir, download)


def pixel_rows(images) -> np.ndarray:
    """Images ``(n, h, w)`` of bytes as float32 rows ``(n, h * w)`` in [0, 1] (pixel / 255)."""
    images = np.asarray(images)
    return images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)


# load_mnist_subset(5000, seed=0) itself, shipped in the package (uint8 pixels and labels,
# 823 kB) so that the demos and examples run offline; test_datasets checks it against MNIST.
_BUNDLED_SUBSET = "mnist_5000.npz"
_BUNDLED_N, _BUNDLED_SEED = 5000, 0


def _bundled_subset():
    from importlib import resources

    with resources.files(__package__).joinpath("data", _BUNDLED_SUBSET).open("rb") as f:
        with np.load(f, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    return pixel_rows(x), y.astype(np.int64)


def load_mnist_subset(n: int = 5000, data_dir=None, seed: int | None = 0, download: bool = True):
    """A class-stratified subset of ``n`` MNIST training images, for demos.

    Returns ``(X, y)``: ``X`` float32 ``(n, 784)`` scaled to [0, 1] (pixel / 255), ``y`` int64.
    Each class gets ``n`` times its share of the training set (largest remainders rounded up).
    With an integer ``seed`` the samples of each class are drawn at random and the result is
    shuffled; with ``seed=None`` they are the first ones of each class, in file order.

    The default call (``n=5000, seed=0``) needs no files and no network: those 5,000 digits are
    bundled with somlab (MNIST by LeCun, Cortes and Burges, CC BY-SA 3.0). Any other ``n`` or
    ``seed`` reads the full training set like :func:`load_mnist`.
    """
    if (
        isinstance(n, (int, np.integer))
        and not isinstance(n, bool)
        and int(n) == _BUNDLED_N
        and isinstance(seed, (int, np.integer))
        and int(seed) == _BUNDLED_SEED
    ):
        return _bundled_subset()
    return _subset_of_mnist(n, data_dir, seed, download)


def _subset_of_mnist(n, data_dir, seed, download):
    data = load_mnist(data_dir=data_dir, download=download)
    X_all, y_all = data.X_train, data.y_train
    total = y_all.shape[0]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise DataError(f"n must be an integer in 1..{total}, got {n!r}")
    classes, counts = np.unique(y_all, return_counts=True)
    exact = counts * (int(n) / total)
    quota = np.floor(exact).astype(np.int64)
    short = int(n) - int(quota.sum())
    if short:
        order = np.argsort(-(exact - quota), kind="stable")
        quota[order[:short]] += 1
    if seed is None:
        order = np.arange(total)
    else:
        order = np.random.default_rng(seed).permutation(total)
    picked = []
    for c, q in zip(classes, quota):
        members = order[y_all[order] == c]
        picked.append(members[:q])
    idx = np.concatenate(picked)
    if seed is None:
        idx = np.sort(idx)
    else:
        pos = np.empty(total, dtype=np.int64)
        pos[order] = np.arange(total)
        idx = idx[np.argsort(pos[idx], kind="stable")]
    return pixel_rows(X_all[idx]), y_all[idx].astype(np.int64)
