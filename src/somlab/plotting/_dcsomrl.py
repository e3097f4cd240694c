"""The figures of seed 001 for a fitted :class:`somlab.DCSOMRL` (deep clustering with SOMRL).

Array helpers (NumPy in, NumPy out) come first: :func:`decode`, :func:`closest_samples`,
:func:`latent_traversal`, :func:`relevance_perturbation`, :func:`tsne_embedding` and
:func:`cluster_intersection`; the ``plot_*`` functions draw them.  Single-panel plots
(:func:`plot_tsne`, :func:`plot_cluster_intersection`, the pooled relevance histogram) draw into
``ax=`` and return the Axes; image grids and small multiples return their Figure.  Every plot
saves a PNG to ``path=`` when given (dpi 120, tight bounding box).

Decoded images: the network works on standardized pixels ``(x - mean) / std``; :func:`decode`
inverts that with the model's ``standardize_`` and clips to [0, 1].  Image panels show 0 as
black and 1 as white (``cmap="gray"``).
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.exceptions import NotFittedError

from ._draw import _axes, _class_colors, _class_names, _colorbar, _save

__all__ = [
    "closest_samples",
    "cluster_intersection",
    "decode",
    "latent_traversal",
    "plot_closest_samples",
    "plot_cluster_intersection",
    "plot_decoded_prototypes",
    "plot_latent_traversal",
    "plot_relevance_histograms",
    "plot_relevance_perturbation",
    "plot_tsne",
    "relevance_perturbation",
    "tsne_embedding",
]

_FITTED = ("autoencoder_", "som_", "standardize_", "n_features_in_")


# ---------------------------------------------------------------- checks
def _check_model(model) -> None:
    missing = [a for a in _FITTED if not hasattr(model, a)]
    if missing:
        raise NotFittedError(
            f"fit the DCSOMRL model before plotting: this {type(model).__name__} has no "
            f"{', '.join(missing)}"
        )
    if int(model.som_.n_active) == 0:
        raise ValueError("the model has no prototypes (its SOMRL layer is empty)")


def _n_prototypes(model) -> int:
    return int(model.som_.n_active)


def _check_int(name, value, lo, hi=None) -> int:
    ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= lo
    if not ok or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def _check_real(name, value, lo=0.0) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < lo:
        raise ValueError(f"{name} must be a finite number >= {lo}, got {value!r}")
    return float(value)


def _prototype(model, prototype) -> int:
    K = _n_prototypes(model)
    if isinstance(prototype, bool) or not isinstance(prototype, Integral):
        raise ValueError(f"prototype must be an integer index, got {prototype!r}")
    if not 0 <= prototype < K:
        raise ValueError(f"prototype {prototype} out of range: the model has {K} prototypes")
    return int(prototype)


def _prototype_list(model, prototypes, max_prototypes) -> list[int]:
    """The prototypes to show: ``prototypes`` (checked) or the first ``max_prototypes``."""
    K = _n_prototypes(model)
    if prototypes is None:
        if max_prototypes is None:
            return list(range(K))
        return list(range(min(K, _check_int("max_prototypes", max_prototypes, 1))))
    out = [_prototype(model, p) for p in prototypes]
    if not out:
        raise ValueError("prototypes is empty")
    return out


def _image_shape(model, image_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be a tuple of ints, got {image_shape!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1 or (len(shape) == 3 and shape[2] != 3):
        raise ValueError(f"image_shape must be (height, width) or (height, width, 3), got {shape}")
    if math.prod(shape) != model.n_features_in_:
        raise ValueError(
            f"image_shape {shape} has {math.prod(shape)} pixels but the model was fit on "
            f"{model.n_features_in_} features"
        )
    return shape


def _flat_X(X) -> np.ndarray:
    """X as given to the model, flattened to (n_samples, n_features) for display."""
    X = np.asarray(X)
    return X.reshape(X.shape[0], -1) if X.ndim > 2 else X


def _check_y(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must be 1-D with one label per sample ({n}), got shape {y.shape}")
    return y


def _warn_flat(r: np.ndarray, k: int) -> None:
    if r.size > 1 and np.ptp(r) == 0:
        warnings.warn(
            f"prototype {k} has the same relevance ({r[0]:.3g}) in every dimension, so its "
            "relevant and irrelevant dimensions are arbitrary; pick a prototype whose "
            "relevances differ",
            UserWarning,
            stacklevel=3,
        )


def _latent(model) -> tuple[np.ndarray, np.ndarray]:
    """Prototypes and the relevances the layer learned ``[K, m]`` as float64
    (``learned_relevances_``: the default preset's Euclidean refinement sets ``relevances_``
    to 1 but keeps what training learned)."""
    learned = getattr(model, "learned_relevances_", None)
    return (
        np.asarray(model.prototypes_, dtype=np.float64),
        np.asarray(model.relevances_ if learned is None else learned, dtype=np.float64),
    )


# ---------------------------------------------------------------- arrays
def decode(model, Z) -> np.ndarray:
    """Decode latent codes ``Z (k, n_latent)`` to images ``(k, n_features)`` in [0, 1].

    The decoder's output is in the standardized space; it is mapped back to pixels with
    ``out * std + mean`` (the model's ``standardize_``) and clipped to [0, 1].  A single code
    ``(n_latent,)`` gives a single image ``(n_features,)``.
    """
    import torch

    _check_model(model)
    Z = np.asarray(Z, dtype=np.float64)
    single = Z.ndim == 1
    Z2 = Z[None] if single else Z
    m = int(model.som_.n_features)
    if Z2.ndim != 2 or Z2.shape[1] != m:
        raise ValueError(f"Z must have shape (k, {m}) (n_latent={m}), got {Z.shape}")
    if not np.isfinite(Z2).all():
        raise ValueError("Z contains NaN or inf")
    ae = model.autoencoder_
    p = next(ae.parameters())
    with torch.no_grad():
        out = ae.decode(torch.as_tensor(Z2, dtype=p.dtype, device=p.device)).cpu().numpy()
    mean, std = model.standardize_
    images = np.clip(out.astype(np.float64) * std + mean, 0.0, 1.0)
    return images[0] if single else images


def closest_samples(model, X, n=10) -> np.ndarray:
    """Indices ``(n_prototypes, n)`` of the ``n`` samples of X closest to each prototype.

    Distance: the model's own kernel in the latent space, ``sum_d omega_kd (z_d - c_kd)^2`` with
    the prototype's relevances (ranking by it equals ranking by the prototype's activation).
    Each row is sorted nearest first; ties go to the lower sample index.
    """
    _check_model(model)
    Z = np.asarray(model.transform(X), dtype=np.float64)
    n = _check_int("n", n, 1, Z.shape[0])
    C = np.asarray(model.prototypes_, dtype=np.float64)
    R = np.asarray(model.relevances_, dtype=np.float64)  # the kernel predict uses
    out = np.empty((C.shape[0], n), dtype=np.int64)
    for k in range(C.shape[0]):
        d = ((Z - C[k]) ** 2) @ R[k]
        out[k] = np.argsort(d, kind="stable")[:n]
    return out


def latent_traversal(model, prototype=0, steps=9):
    """Decode a prototype while one latent dimension moves from 0 to 1.

    Returns ``(images, dims, values)``: ``images (2, steps, n_features)`` in [0, 1], row 0 along
    the prototype's most relevant dimension and row 1 along its least relevant one (the other
    coordinates stay at the prototype's); ``dims = (most, least)`` (first index on ties, and
    two different dimensions whenever ``n_latent > 1``: a prototype with equal relevances
    everywhere gets dimensions 0 and 1 and a warning); ``values`` the ``steps`` evenly spaced
    coordinates in [0, 1].
    """
    _check_model(model)
    k = _prototype(model, prototype)
    steps = _check_int("steps", steps, 2)
    C, R = _latent(model)
    _warn_flat(R[k], k)
    most = int(np.argmax(R[k]))
    rest = np.delete(np.arange(R.shape[1]), most) if R.shape[1] > 1 else np.array([most])
    dims = (most, int(rest[np.argmin(R[k][rest])]))
    values = np.linspace(0.0, 1.0, steps)
    Z = np.repeat(C[k][None], 2 * steps, axis=0)
    Z[:steps, dims[0]] = values
    Z[steps:, dims[1]] = values
    images = decode(model, Z).reshape(2, steps, -1)
    return images, dims, values


def relevance_perturbation(
    model, prototype=0, noise=0.3, n_draws=6, mode="weighted", threshold=0.5, random_state=0
):
    """Decode a prototype with Gaussian noise on its relevant vs its irrelevant dimensions.

    The same draws ``eps ~ N(0, noise^2)`` per dimension are used for both variants: with
    ``mode="weighted"`` the codes are ``c + eps * omega`` (relevant) and ``c + eps * (1 - omega)``
    (irrelevant); with ``mode="threshold"`` the noise goes only to the dimensions with
    ``omega >= threshold`` (relevant) or ``omega < threshold`` (irrelevant), as in seed 001's
    Fig. 3.  Codes are not clipped.

    Returns ``(original, relevant, irrelevant)``: the decoded prototype ``(n_features,)`` and
    the decoded perturbed codes ``(n_draws, n_features)`` of each variant, all in [0, 1].
    """
    _check_model(model)
    k = _prototype(model, prototype)
    noise = _check_real("noise", noise)
    n_draws = _check_int("n_draws", n_draws, 1)
    if mode not in ("weighted", "threshold"):
        raise ValueError(f"mode must be 'weighted' or 'threshold', got {mode!r}")
    C, R = _latent(model)
    c, r = C[k], R[k]
    _warn_flat(r, k)
    if mode == "weighted":
        w_rel, w_irr = r, 1.0 - r
    else:
        t = _check_real("threshold", threshold)
        w_rel = (r >= t).astype(np.float64)
        w_irr = 1.0 - w_rel
    eps = np.random.default_rng(random_state).normal(0.0, noise, (n_draws, c.size))
    images = decode(model, np.vstack([c[None], c + eps * w_rel, c + eps * w_irr]))
    return images[0], images[1 : 1 + n_draws], images[1 + n_draws :]


def tsne_embedding(model, X, max_samples=2000, random_state=0, perplexity=30.0):
    """t-SNE (scikit-learn) of the codes of a subsample of X together with the prototypes.

    Returns ``(samples_2d (n, 2), prototypes_2d (K, 2), index (n,))`` where ``index`` are the rows
    of X embedded (all of them, in order, when ``len(X) <= max_samples``; otherwise a sorted
    random subset drawn with ``random_state``, an int or None that also seeds t-SNE).
    Perplexity is lowered to ``(n + K - 1) / 3`` for small inputs.
    """
    from sklearn.manifold import TSNE

    _check_model(model)
    max_samples = _check_int("max_samples", max_samples, 1)
    perplexity = _check_real("perplexity", perplexity)
    X = np.asarray(X)
    n_all = X.shape[0] if X.ndim else 0
    if n_all > max_samples:
        rng = np.random.default_rng(random_state)
        index = np.sort(rng.choice(n_all, max_samples, replace=False))
    else:
        index = np.arange(n_all)
    Z = np.asarray(model.transform(X[index]), dtype=np.float64)
    C, _ = _latent(model)
    data = np.vstack([Z, C])
    if data.shape[0] < 3:
        raise ValueError("t-SNE needs at least 3 points (samples + prototypes)")
    perplexity = max(1.0, min(perplexity, (data.shape[0] - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
    emb = tsne.fit_transform(data)
    return emb[: Z.shape[0]], emb[Z.shape[0] :], index


def cluster_intersection(model, X, y, normalize=True):
    """Contingency matrix of the model's clusters (rows, all prototypes 0..K-1) and the classes
    y (columns, sorted), row-normalised to fractions of each prototype's samples when
    ``normalize`` (prototypes that win no sample keep a row of zeros).

    Returns ``(matrix (K, n_classes), classes)``.
    """
    _check_model(model)
    pred = np.asarray(model.predict(X))
    y = _check_y(y, pred.shape[0])
    classes, yi = np.unique(y, return_inverse=True)
    K = _n_prototypes(model)
    M = np.zeros((K, classes.size), dtype=np.float64)
    np.add.at(M, (pred, yi.ravel()), 1.0)
    if normalize:
        tot = M.sum(1, keepdims=True)
        M = np.divide(M, tot, out=np.zeros_like(M), where=tot > 0)
    return M, classes


# ---------------------------------------------------------------- drawing helpers
def _show(ax, image, shape, cmap="gray"):
    img = np.asarray(image, dtype=np.float64).reshape(shape)
    if img.ndim == 3:
        ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
    else:
        ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_edgecolor("0.7")


def _image_grid(
    cells,
    shape,
    *,
    row_labels=None,
    col_titles=None,
    titles=None,
    suptitle=None,
    cmap="gray",
    cell=0.8,
    label_width=1.2,
):
    """A Figure of image panels; ``cells`` is a list of rows of flat images (None: blank)."""
    import matplotlib.pyplot as plt

    nrows = len(cells)
    ncols = max(len(r) for r in cells)
    extra_w = label_width if row_labels is not None else 0.2
    extra_h = (0.35 if col_titles is not None or titles is not None else 0.1) + (
        0.4 if suptitle else 0.0
    )
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(cell * ncols + extra_w, cell * nrows * shape[0] / shape[1] + extra_h),
        squeeze=False,
        layout="constrained",
    )
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    for r, row in enumerate(cells):
        for c in range(ncols):
            a = axes[r, c]
            img = row[c] if c < len(row) else None
            if img is None:
                a.set_visible(False)
                continue
            _show(a, img, shape, cmap)
            if titles is not None and titles[r][c] is not None:
                a.set_title(titles[r][c], fontsize=8, pad=2)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
    if col_titles is not None:
        for c, t in enumerate(col_titles):
            if t is not None:
                axes[0, c].set_title(t, fontsize=8, pad=2)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def _change(images) -> float:
    """Mean absolute pixel difference between consecutive images of a sequence."""
    images = np.asarray(images, dtype=np.float64)
    return float(np.abs(np.diff(images, axis=0)).mean())


# ---------------------------------------------------------------- plots
def plot_relevance_histograms(
    model, max_prototypes=16, prototypes=None, bins=10, ncols=4, pooled=False, ax=None, path=None
):
    """Histograms of the relevances, one panel per prototype (seed 001, Fig. 2).

    Parameters
    ----------
    max_prototypes : int, default=16
        Show the first ``max_prototypes`` prototypes (ignored when ``prototypes`` is given).
    prototypes : sequence of int, optional
        The prototypes to show.
    bins : int, default=10
        Equal-width bins over [0, 1].
    pooled : bool, default=False
        One histogram of the relevances of all prototypes together (the paper's figure),
        drawn into ``ax``; returns the Axes.

    Returns
    -------
    Figure (small multiples), or Axes when ``pooled``.
    """
    import matplotlib.pyplot as plt

    _check_model(model)
    bins = _check_int("bins", bins, 1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    _, R = _latent(model)
    if pooled:
        ax = _axes(ax, (5.0, 3.2))
        ax.hist(R.ravel(), bins=edges, color="C0", edgecolor="white")
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("relevance")
        ax.set_ylabel("dimensions (all prototypes)")
        ax.set_title(f"Relevances of {R.shape[0]} prototypes x {R.shape[1]} dimensions")
        _save(ax.figure, path)
        return ax
    if ax is not None:
        raise ValueError("ax is only used with pooled=True (the small multiples make a figure)")
    idx = _prototype_list(model, prototypes, max_prototypes)
    ncols = max(1, min(_check_int("ncols", ncols, 1), len(idx)))
    nrows = math.ceil(len(idx) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(2.2 * ncols + 0.6, 1.7 * nrows + 0.7),
        squeeze=False,
        sharex=True,
        sharey=True,
        layout="constrained",
    )
    for a, k in zip(axes.flat, idx):
        a.hist(R[k], bins=edges, color="C0", edgecolor="white")
        a.set_title(f"prototype {k}", fontsize=9, pad=2)
        a.set_xlim(0.0, 1.0)
        a.tick_params(labelsize=8)
        a.yaxis.get_major_locator().set_params(integer=True)
    for a in axes.flat[len(idx) :]:
        a.set_visible(False)
    fig.supxlabel("relevance", fontsize=10)
    fig.supylabel("number of dimensions", fontsize=10)
    fig.suptitle("Relevances per prototype", fontsize=11)
    _save(fig, path)
    return fig


def plot_decoded_prototypes(
    model,
    image_shape=(28, 28),
    ncols=10,
    max_prototypes=None,
    prototypes=None,
    path=None,
    cmap="gray",
):
    """The decoded prototypes as an image grid, each titled with its index.

    Returns the Figure (one image per prototype; unused grid cells are hidden).
    """
    _check_model(model)
    shape = _image_shape(model, image_shape)
    idx = _prototype_list(model, prototypes, max_prototypes)
    ncols = max(1, min(_check_int("ncols", ncols, 1), len(idx)))
    C, _ = _latent(model)
    images = decode(model, C[idx])
    cells = [list(images[i : i + ncols]) for i in range(0, len(idx), ncols)]
    titles = [[str(k) for k in idx[i : i + ncols]] for i in range(0, len(idx), ncols)]
    fig = _image_grid(
        cells,
        shape,
        titles=titles,
        cmap=cmap,
        cell=0.85 if len(idx) <= 50 else 0.6,
        suptitle=f"Decoded prototypes ({len(idx)} of {_n_prototypes(model)})",
    )
    _save(fig, path)
    return fig


def plot_closest_samples(
    model,
    X,
    n=10,
    image_shape=(28, 28),
    max_prototypes=10,
    prototypes=None,
    path=None,
    cmap="gray",
):
    """Each prototype (rows: its decoded image first) with the ``n`` samples of X closest to it
    by the model's relevance-weighted distance (:func:`closest_samples`; seed 001, Fig. 10).

    Returns the Figure: ``len(prototypes) x (n + 1)`` images.
    """
    _check_model(model)
    shape = _image_shape(model, image_shape)
    idx = _prototype_list(model, prototypes, max_prototypes)
    near = closest_samples(model, X, n)[idx]
    Xf = _flat_X(X)
    C, _ = _latent(model)
    protos = decode(model, C[idx])
    cells = [[protos[i], *Xf[near[i]]] for i in range(len(idx))]
    fig = _image_grid(
        cells,
        shape,
        row_labels=[f"prototype {k}" for k in idx],
        col_titles=["decoded", *[str(j + 1) for j in range(near.shape[1])]],
        cmap=cmap,
        suptitle=f"Prototypes and their {near.shape[1]} closest samples",
    )
    _save(fig, path)
    return fig


def plot_latent_traversal(
    model, prototype=0, steps=9, image_shape=(28, 28), path=None, cmap="gray"
):
    """Decode a prototype while its most relevant (top row) and its least relevant (bottom row)
    latent dimension moves from 0 to 1 (:func:`latent_traversal`; seed 001, Fig. 4).

    Row labels give the dimension, its relevance and the mean absolute pixel change between
    consecutive images.  Returns the Figure (``2 x steps`` images).
    """
    _check_model(model)
    shape = _image_shape(model, image_shape)
    images, dims, values = latent_traversal(model, prototype, steps)
    _, R = _latent(model)
    k = int(prototype)
    labels = [
        f"{name} relevant\ndim {d} (rel. {R[k, d]:.2f})\nchange {_change(images[i]):.3f}"
        for i, (name, d) in enumerate(zip(("most", "least"), dims))
    ]
    fig = _image_grid(
        [list(images[0]), list(images[1])],
        shape,
        row_labels=labels,
        col_titles=[f"{v:.2f}" for v in values],
        cmap=cmap,
        label_width=1.6,
        suptitle=f"Prototype {k}: one latent coordinate from 0 to 1",
    )
    _save(fig, path)
    return fig


def plot_relevance_perturbation(
    model,
    prototype=0,
    noise=0.3,
    n_draws=6,
    mode="weighted",
    threshold=0.5,
    image_shape=(28, 28),
    random_state=0,
    path=None,
    cmap="gray",
):
    """The decoded prototype (first column) and ``n_draws`` decodings of it with Gaussian noise
    on its relevant (top row) vs irrelevant (bottom row) dimensions
    (:func:`relevance_perturbation`; seed 001, Fig. 3).

    Row labels give the mean absolute pixel change from the decoded prototype.  Returns the
    Figure (``2 x (n_draws + 1)`` images).
    """
    _check_model(model)
    shape = _image_shape(model, image_shape)
    orig, rel, irr = relevance_perturbation(
        model, prototype, noise, n_draws, mode, threshold, random_state
    )
    if mode == "weighted":
        names = ("noise x relevance", "noise x (1 - relevance)")
    else:
        _, R = _latent(model)
        n_rel = int((R[int(prototype)] >= threshold).sum())
        names = (
            f"relevance >= {threshold:g}\n({n_rel} dims)",
            f"relevance < {threshold:g}\n({R.shape[1] - n_rel} dims)",
        )
    labels = [
        f"{name}\nchange {float(np.abs(imgs - orig).mean()):.3f}"
        for name, imgs in zip(names, (rel, irr))
    ]
    fig = _image_grid(
        [[orig, *rel], [orig, *irr]],
        shape,
        row_labels=labels,
        label_width=1.7,
        col_titles=["prototype", *[f"draw {j + 1}" for j in range(rel.shape[0])]],
        cmap=cmap,
        suptitle=f"Prototype {int(prototype)} with noise (sd {noise:g}) on its latent code",
    )
    _save(fig, path)
    return fig


def plot_tsne(
    model,
    X,
    y=None,
    max_samples=2000,
    random_state=0,
    perplexity=30.0,
    image_shape=None,
    thumbnail=14.0,
    names=None,
    colors=None,
    ax=None,
    path=None,
):
    """t-SNE of the latent codes of (a subsample of) X with the prototypes and the topology
    edges between them (:func:`tsne_embedding`; seed 001, Fig. 5).

    Samples are small dots, coloured by ``y`` when given; prototypes are large white-filled
    markers joined by grey lines where :meth:`DCSOMRL.topology` links them.  With
    ``image_shape``, each prototype also shows its decoded image as a thumbnail (dark ink on
    white, ``thumbnail`` points wide).  The artists carry gids ``"samples"``, ``"prototypes"``
    and ``"topology"``.  Returns the Axes.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    _check_model(model)
    shape = None if image_shape is None else _image_shape(model, image_shape)
    thumbnail = _check_real("thumbnail", thumbnail)
    if y is not None:
        y = _check_y(y, np.asarray(X).shape[0])
    S, P, index = tsne_embedding(model, X, max_samples, random_state, perplexity)
    ax = _axes(ax, (7.5, 6.5) if shape is None else (9.0, 8.0))
    if y is None:
        ax.scatter(S[:, 0], S[:, 1], s=5, c="0.55", alpha=0.6, linewidths=0, gid="samples")
        handles = []
    else:
        classes = np.unique(y)  # colours follow all classes of y, not just the sampled ones
        cols = _class_colors(classes.size, colors)
        labels = _class_names(classes, names)
        yi = np.searchsorted(classes, y[index])
        ax.scatter(
            S[:, 0],
            S[:, 1],
            s=5,
            c=[cols[i] for i in yi],
            alpha=0.6,
            linewidths=0,
            gid="samples",
        )
        handles = [
            Line2D([], [], ls="", marker="o", ms=5, color=c, label=str(lab))
            for c, lab in zip(cols, labels)
        ]
    A = np.asarray(model.topology(), dtype=bool)
    i, j = np.nonzero(np.triu(A, 1))
    segs = np.stack([P[i], P[j]], axis=1) if i.size else np.zeros((0, 2, 2))
    ax.add_collection(
        LineCollection(segs, colors="0.25", linewidths=0.8, alpha=0.8, gid="topology")
    )
    ax.scatter(
        P[:, 0],
        P[:, 1],
        s=45,
        facecolors="white",
        edgecolors="black",
        linewidths=1.0,
        zorder=3,
        gid="prototypes",
    )
    if shape is not None:
        from matplotlib.colors import Normalize
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        C, _ = _latent(model)
        zoom = float(thumbnail) / max(shape[:2])
        for (px, py), img in zip(P, decode(model, C)):
            im = img.reshape(shape)
            box = OffsetImage(im, cmap="gray_r", norm=Normalize(0.0, 1.0), zoom=zoom)
            ax.add_artist(
                AnnotationBbox(
                    box,
                    (px, py),
                    frameon=True,
                    pad=0.05,
                    zorder=4,
                    bboxprops=dict(edgecolor="0.4", linewidth=0.5),
                )
            )
    handles.append(
        Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="black", label="prototype")
    )
    if i.size:
        handles.append(Line2D([], [], color="0.25", lw=0.8, label="topology edge"))
    ax.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(
        f"t-SNE of {S.shape[0]} codes and {P.shape[0]} prototypes ({i.size} topology edges)"
    )
    _save(ax.figure, path)
    return ax


def plot_cluster_intersection(
    model,
    X,
    y,
    normalize=True,
    sort=True,
    names=None,
    annotate=None,
    cmap="Blues",
    ax=None,
    path=None,
):
    """Heat map of how each prototype's samples spread over the classes
    (:func:`cluster_intersection`, rows normalised; seed 001, Figs. 8-9).

    Parameters
    ----------
    sort : bool, default=True
        Order the rows by majority class, then by decreasing share of it, so that the
        prototypes of one class sit together; the tick labels keep the prototype indices.
    annotate : bool, optional
        Write the values in the cells (default: when there are at most 200 cells).

    Returns the Axes; the image's rows follow the drawn (sorted) order.
    """
    M, classes = cluster_intersection(model, X, y, normalize=normalize)
    K = M.shape[0]
    order = np.arange(K)
    if sort:
        major = M.argmax(1)
        order = np.lexsort((order, -M[order, major], major))
    M = M[order]
    labels = _class_names(classes, names)
    row = 0.2 if K <= 40 else 0.11  # inches per prototype
    ax = _axes(ax, (max(4.5, 0.45 * M.shape[1] + 2.5), max(3.0, row * K + 1.5)))
    vmax = 1.0 if normalize else None
    im = ax.imshow(M, aspect="auto", cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(M.shape[1]), labels)
    ax.set_yticks(range(K), [str(k) for k in order], fontsize=8 if K <= 40 else 5.5)
    ax.set_xlabel("class")
    ax.set_ylabel("prototype")
    if annotate is None:
        annotate = M.size <= 200
    if annotate:
        hi = (np.nanmax(M) if M.size else 1.0) * 0.6
        for r in range(K):
            for c in range(M.shape[1]):
                if M[r, c] > 0:
                    txt = f"{M[r, c]:.2f}" if normalize else f"{int(M[r, c])}"
                    ax.text(
                        c,
                        r,
                        txt,
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if M[r, c] > hi else "black",
                    )
    _colorbar(ax, im, "fraction of the prototype's samples" if normalize else "samples")
    ax.set_title("Cluster intersection: prototypes x classes")
    _save(ax.figure, path)
    return ax
