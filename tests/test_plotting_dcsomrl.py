"""somlab.plotting for DC-SOMRL: the arrays behind seed 001's figures, then the drawings.

One small DC-SOMRL is fit on four well separated 8x8 "images" (about 2 s); every helper is
checked against a direct computation and every plot by what it draws."""

from __future__ import annotations

import copy

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics.cluster import contingency_matrix
from threadpoolctl import threadpool_limits

from somlab import DCSOMRL, DataError
from somlab import plotting as P

matplotlib.use("Agg")  # no window, whatever the environment says

SHAPE = (8, 8)
SMALL = dict(
    hidden=(32, 32),
    n_latent=4,
    pretrain_epochs=40,
    epochs=8,
    batch_size=32,
    at=0.95,
    n_max=12,
    standardize=(0.5, 0.5),
    random_state=0,
)


def images(n=200, d=64, k=4, seed=0):
    rng = np.random.default_rng(seed)
    templates = rng.random((k, d)) > 0.5  # binary "images"
    y = rng.integers(0, k, n)
    X = np.clip(templates[y] * 0.8 + 0.1 + rng.normal(0, 0.05, (n, d)), 0, 1).astype(np.float32)
    return X, y


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny networks and a 200-point t-SNE: extra threads only add overhead on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # OpenMP (t-SNE) and BLAS
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted():
    X, y = images()
    return DCSOMRL(**SMALL).fit(X), X, y


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def n_images(fig):
    return sum(len(a.images) for a in fig.axes if a.get_visible())


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def raw_decode(model, Z):
    with torch.no_grad():
        out = model.autoencoder_.decode(torch.as_tensor(Z, dtype=torch.float32)).numpy()
    return out


# ---------------------------------------------------------------- arrays
def test_fixture_is_four_clean_clusters(fitted):
    model, X, y = fitted
    assert model.n_prototypes_ == 4
    C = contingency_matrix(model.labels_, y)
    assert (C.max(1) == C.sum(1)).all()  # every cluster is pure


def test_decode_inverts_standardization_and_clips(fitted):
    model, X, _ = fitted
    mean, std = model.standardize_
    C = model.prototypes_
    got = P.decode(model, C)
    assert got.shape == (4, 64) and got.min() >= 0 and got.max() <= 1
    np.testing.assert_allclose(got, np.clip(raw_decode(model, C) * std + mean, 0, 1), atol=1e-6)
    np.testing.assert_allclose(P.decode(model, C[1]), got[1], atol=1e-6)  # one code, one image
    # decoding the codes of X gives X back (a raw decoder output, in the standardized space,
    # would be off by far more)
    rec = P.decode(model, model.transform(X))
    assert np.abs(rec - X).mean() < 0.05
    assert np.abs(raw_decode(model, model.transform(X)) - X).mean() > 0.2
    # out-of-range codes are still clipped to pixels in [0, 1]
    far = P.decode(model, np.full((3, 4), 25.0) * [[1], [-1], [0.5]])
    assert far.min() >= 0 and far.max() <= 1


def test_closest_samples_matches_brute_force(fitted):
    model, X, _ = fitted
    Z = model.transform(X).astype(np.float64)
    C, R = model.prototypes_.astype(np.float64), model.relevances_.astype(np.float64)
    got = P.closest_samples(model, X, n=7)
    assert got.shape == (4, 7)
    for k in range(4):
        d = np.array([sum(R[k, j] * (z[j] - C[k, j]) ** 2 for j in range(4)) for z in Z])
        np.testing.assert_array_equal(got[k], np.argsort(d, kind="stable")[:7])
        assert (np.diff(d[got[k]]) >= 0).all()
        assert (model.predict(X[got[k]]) == k).all()  # nearest samples are the prototype's own
    np.testing.assert_array_equal(P.closest_samples(model, X, n=len(X))[:, :7], got)


def test_latent_traversal_moves_one_coordinate(fitted):
    model, _, _ = fitted
    R = model.learned_relevances_  # what the plots show (relevances_ is 1 after refining)
    for k in range(4):
        imgs, dims, values = P.latent_traversal(model, prototype=k, steps=5)
        assert imgs.shape == (2, 5, 64)
        assert dims == (int(R[k].argmax()), int(R[k].argmin())) and dims[0] != dims[1]
        np.testing.assert_allclose(values, [0, 0.25, 0.5, 0.75, 1])
        for row, d in enumerate(dims):
            Z = np.repeat(model.prototypes_[k][None], 5, 0)
            Z[:, d] = values
            np.testing.assert_allclose(imgs[row], P.decode(model, Z), atol=1e-6)
        assert np.abs(np.diff(imgs, axis=1)).max() > 0.01  # both rows change the image


def test_equal_relevances_warn_and_still_give_two_dimensions(fitted):
    model = copy.deepcopy(fitted[0])
    slot = int(model.som_.active.nonzero()[1, 0])
    model.som_.omega[slot] = 1.0  # a prototype that never learned: relevance 1 everywhere
    model.som_.delta[slot] = model.som_.delta[slot].mean()  # (learned_relevances_ too)
    with pytest.warns(UserWarning, match="prototype 1 has the same relevance"):
        _, dims, _ = P.latent_traversal(model, prototype=1)
    assert dims == (0, 1)
    with pytest.warns(UserWarning, match="same relevance"):
        P.relevance_perturbation(model, prototype=1)


def test_relevance_perturbation_weights_the_same_noise(fitted):
    model, _, _ = fitted
    c, r = model.prototypes_[2].astype(np.float64), model.learned_relevances_[2].astype(np.float64)
    orig, rel, irr = P.relevance_perturbation(model, 2, noise=0.4, n_draws=3, random_state=5)
    eps = np.random.default_rng(5).normal(0, 0.4, (3, 4))
    np.testing.assert_allclose(orig, P.decode(model, c), atol=1e-6)
    np.testing.assert_allclose(rel, P.decode(model, c + eps * r), atol=1e-6)
    np.testing.assert_allclose(irr, P.decode(model, c + eps * (1 - r)), atol=1e-6)
    again = P.relevance_perturbation(model, 2, noise=0.4, n_draws=3, random_state=5)
    np.testing.assert_array_equal(again[1], rel)  # seeded
    # threshold mode: noise only on one side of the threshold
    t = float(np.sort(r)[1]) + 1e-6  # two dimensions below, two above
    _, rel_t, irr_t = P.relevance_perturbation(
        model, 2, noise=0.4, n_draws=3, mode="threshold", threshold=t, random_state=5
    )
    np.testing.assert_allclose(rel_t, P.decode(model, c + eps * (r >= t)), atol=1e-6)
    np.testing.assert_allclose(irr_t, P.decode(model, c + eps * (r < t)), atol=1e-6)
    # no noise, or no dimension above the threshold: the prototype itself
    _, rel0, irr0 = P.relevance_perturbation(model, 2, noise=0.0, n_draws=2)
    np.testing.assert_allclose(rel0, np.stack([orig, orig]), atol=1e-6)
    np.testing.assert_allclose(irr0, np.stack([orig, orig]), atol=1e-6)
    _, rel1, _ = P.relevance_perturbation(model, 2, n_draws=2, mode="threshold", threshold=1.5)
    np.testing.assert_allclose(rel1, np.stack([orig, orig]), atol=1e-6)


def test_cluster_intersection_is_the_row_normalised_contingency_matrix(fitted):
    model, X, y = fitted
    y = np.where(y == 3, 7, y)  # classes need not be 0..n-1
    pred = model.predict(X)
    M, classes = P.cluster_intersection(model, X, y)
    np.testing.assert_array_equal(classes, [0, 1, 2, 7])
    C = contingency_matrix(pred, y).astype(float)  # rows: clusters present, sorted
    np.testing.assert_allclose(M[np.unique(pred)], C / C.sum(1, keepdims=True))
    np.testing.assert_allclose(M.sum(1), 1.0)
    counts, _ = P.cluster_intersection(model, X, y, normalize=False)
    np.testing.assert_array_equal(counts[np.unique(pred)], C)
    # a prototype that wins nothing keeps a row of zeros
    only = pred != 0
    M2, _ = P.cluster_intersection(model, X[only], y[only])
    np.testing.assert_array_equal(M2[0], 0.0)
    np.testing.assert_allclose(M2[1:].sum(1), 1.0)


def test_tsne_embedding_subsamples_and_seeds(fitted):
    model, X, _ = fitted
    S, Pr, idx = P.tsne_embedding(model, X, max_samples=60, random_state=3)
    assert S.shape == (60, 2) and Pr.shape == (4, 2)
    assert (np.diff(idx) > 0).all() and idx.max() < len(X)
    S2, _, idx2 = P.tsne_embedding(model, X, max_samples=60, random_state=3)
    np.testing.assert_array_equal(idx2, idx)
    np.testing.assert_allclose(S2, S)
    _, _, all_idx = P.tsne_embedding(model, X[:30], max_samples=60)
    np.testing.assert_array_equal(all_idx, np.arange(30))


# ---------------------------------------------------------------- plots
def test_plot_relevance_histograms(fitted, tmp_path):
    model, _, _ = fitted
    fig = P.plot_relevance_histograms(model, bins=5, ncols=3, path=tmp_path / "h.png")
    assert_png(tmp_path / "h.png")
    panels = [a for a in fig.axes if a.get_visible()]
    assert len(panels) == 4
    R = model.learned_relevances_  # what the plots show (relevances_ is 1 after refining)
    for k, a in enumerate(panels):
        heights = [p.get_height() for p in a.patches]
        np.testing.assert_array_equal(heights, np.histogram(R[k], bins=5, range=(0, 1))[0])
    fig = P.plot_relevance_histograms(model, max_prototypes=2)
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    fig = P.plot_relevance_histograms(model, prototypes=[3])
    assert [a.get_title() for a in fig.axes if a.get_visible()] == ["prototype 3"]
    ax = P.plot_relevance_histograms(model, pooled=True, path=tmp_path / "p.png")
    assert_png(tmp_path / "p.png")
    assert sum(p.get_height() for p in ax.patches) == R.size


def test_plot_decoded_prototypes(fitted, tmp_path):
    model, _, _ = fitted
    fig = P.plot_decoded_prototypes(model, image_shape=SHAPE, ncols=3, path=tmp_path / "d.png")
    assert_png(tmp_path / "d.png")
    assert n_images(fig) == 4
    shown = [a.images[0].get_array() for a in fig.axes if a.get_visible()]
    np.testing.assert_allclose(
        shown[2], P.decode(model, model.prototypes_[2]).reshape(SHAPE), atol=1e-6
    )
    assert n_images(P.plot_decoded_prototypes(model, image_shape=SHAPE, max_prototypes=3)) == 3


def test_plot_closest_samples(fitted, tmp_path):
    model, X, _ = fitted
    fig = P.plot_closest_samples(model, X, n=6, image_shape=SHAPE, path=tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    assert n_images(fig) == 4 * 7
    near = P.closest_samples(model, X, n=6)
    second_row = [a for a in fig.axes if a.get_visible()][7:14]
    np.testing.assert_allclose(
        second_row[3].images[0].get_array(), X[near[1, 2]].reshape(SHAPE), atol=1e-6
    )
    fig = P.plot_closest_samples(model, X.reshape(-1, 8, 8), n=2, image_shape=SHAPE, prototypes=[0])
    assert n_images(fig) == 3


def test_plot_latent_traversal(fitted, tmp_path):
    model, _, _ = fitted
    fig = P.plot_latent_traversal(model, prototype=1, steps=7, image_shape=SHAPE,
                                  path=tmp_path / "t.png")  # fmt: skip
    assert_png(tmp_path / "t.png")
    assert n_images(fig) == 14
    imgs, dims, _ = P.latent_traversal(model, 1, steps=7)
    panels = [a for a in fig.axes if a.get_visible()]
    np.testing.assert_allclose(
        panels[7 + 6].images[0].get_array(), imgs[1, 6].reshape(SHAPE), atol=1e-6
    )
    assert f"dim {dims[0]}" in panels[0].get_ylabel() and "most" in panels[0].get_ylabel()


def test_plot_relevance_perturbation(fitted, tmp_path):
    model, _, _ = fitted
    fig = P.plot_relevance_perturbation(model, prototype=3, n_draws=4, image_shape=SHAPE,
                                        path=tmp_path / "r.png")  # fmt: skip
    assert_png(tmp_path / "r.png")
    assert n_images(fig) == 2 * 5
    fig = P.plot_relevance_perturbation(model, 3, n_draws=2, mode="threshold", image_shape=SHAPE)
    assert n_images(fig) == 2 * 3


def _by_gid(ax, gid):
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) == 1
    return found[0]


def test_plot_tsne_draws_samples_prototypes_and_edges(fitted, tmp_path):
    model, X, y = fitted
    model = copy.deepcopy(model)
    model.som_.at = 0.5  # a looser threshold links prototypes, so there are edges to draw
    A = model.topology()
    i, j = np.nonzero(np.triu(A, 1))
    assert i.size > 0
    ax = P.plot_tsne(model, X, y, max_samples=80, image_shape=SHAPE, path=tmp_path / "s.png")
    assert_png(tmp_path / "s.png")
    assert len(_by_gid(ax, "samples").get_offsets()) == 80
    protos = np.asarray(_by_gid(ax, "prototypes").get_offsets())
    assert len(protos) == 4
    segs = _by_gid(ax, "topology").get_segments()
    assert len(segs) == i.size
    for s, a, b in zip(segs, i, j):  # each edge joins the two linked prototypes
        np.testing.assert_allclose(s, protos[[a, b]])
    colours = np.unique(_by_gid(ax, "samples").get_facecolors()[:, :3], axis=0)
    assert len(colours) == len(np.unique(y))
    ax = P.plot_tsne(fitted[0], X, max_samples=1000)  # fixture model: no edge at at=0.95
    assert len(_by_gid(ax, "samples").get_offsets()) == len(X)
    assert len(_by_gid(ax, "topology").get_segments()) == int(np.triu(fitted[0].topology()).sum())


def test_plot_cluster_intersection(fitted, tmp_path):
    model, X, y = fitted
    M, _ = P.cluster_intersection(model, X, y)
    ax = P.plot_cluster_intersection(model, X, y, sort=False, path=tmp_path / "i.png")
    assert_png(tmp_path / "i.png")
    np.testing.assert_allclose(ax.images[0].get_array(), M)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    ax = P.plot_cluster_intersection(model, X, y, names=list("abcd"))
    rows = [int(t.get_text()) for t in ax.get_yticklabels()]
    assert sorted(rows) == [0, 1, 2, 3]
    np.testing.assert_allclose(ax.images[0].get_array(), M[rows])
    assert (np.diff(M[rows].argmax(1)) >= 0).all()  # grouped by majority class
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcd")


# ---------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors(fitted):
    model, X, y = fitted
    with pytest.raises(NotFittedError, match="fit the DCSOMRL model"):
        P.plot_decoded_prototypes(DCSOMRL(), image_shape=SHAPE)
    with pytest.raises(ValueError, match="fit the DCSOMRL model"):
        P.closest_samples(DCSOMRL(), X)
    with pytest.raises(DataError, match="features"):
        P.plot_closest_samples(model, X[:, :60], image_shape=SHAPE)
    with pytest.raises(ValueError, match="out of range"):
        P.plot_latent_traversal(model, prototype=4, image_shape=SHAPE)
    with pytest.raises(ValueError, match="out of range"):
        P.relevance_perturbation(model, prototype=-1)
    with pytest.raises(ValueError, match="integer index"):
        P.latent_traversal(model, prototype=1.0)
    with pytest.raises(ValueError, match="out of range"):
        P.plot_closest_samples(model, X, image_shape=SHAPE, prototypes=[0, 9])
    with pytest.raises(ValueError, match="784 pixels but the model was fit on 64"):
        P.plot_decoded_prototypes(model)  # default image_shape=(28, 28)
    with pytest.raises(ValueError, match="pixels"):
        P.plot_relevance_perturbation(model, image_shape=(4, 4))
    with pytest.raises(ValueError, match="image_shape must be"):
        P.plot_latent_traversal(model, image_shape=(8, 4, 2))
    with pytest.raises(ValueError, match="n must be an integer in 1..200"):
        P.closest_samples(model, X, n=201)
    with pytest.raises(ValueError, match="Z must have shape"):
        P.decode(model, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="one label per sample"):
        P.cluster_intersection(model, X, y[:-1])
    with pytest.raises(ValueError, match="one label per sample"):
        P.plot_tsne(model, X, y[:10])
    with pytest.raises(ValueError, match="mode"):
        P.relevance_perturbation(model, mode="relevant")
    with pytest.raises(ValueError, match="steps"):
        P.latent_traversal(model, steps=1)
    with pytest.raises(ValueError, match="pooled"):
        P.plot_relevance_histograms(model, ax=plt.subplots()[1])


def test_default_model_plots_show_the_learned_relevances(fitted):
    """The default preset's Euclidean refinement sets relevances_ to 1; the relevance plots
    and arrays show what training learned (learned_relevances_), without a flat warning."""
    import warnings

    from somlab.plotting._relevance import relevance_matrix

    model, X, _ = fitted
    assert np.all(model.relevances_ == 1.0)  # the default preset refined with euclidean
    learned = model.learned_relevances_
    assert np.ptp(learned) > 0
    np.testing.assert_array_equal(relevance_matrix(model)[0], learned)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        images, dims, _ = P.latent_traversal(model, prototype=0, steps=3)
    assert dims == (int(np.argmax(learned[0])), int(np.argmin(learned[0])))
