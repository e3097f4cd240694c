"""somlab.plotting: hand-computed arrays behind the plots, then the drawings themselves."""

import math

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PatchCollection
from sklearn.datasets import load_iris

from somlab import SOM
from somlab import plotting as P
from somlab.core.grids import Grid

matplotlib.use("Agg")  # no window, whatever the environment says

S52, S73 = math.sqrt(52), math.sqrt(73)

# 2x3 map, 2 features; pairwise distances are 3-4-5 triangles where possible.
W23 = np.array(
    [
        [[0, 0], [3, 4], [3, 0]],
        [[0, 4], [6, 8], [3, 4]],
    ],
    dtype=float,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def iris():
    d = load_iris()
    X = (d.data - d.data.mean(0)) / d.data.std(0)
    return X, d.target, list(d.target_names), list(d.feature_names)


@pytest.fixture(scope="module")
def soms(iris):
    X = iris[0]
    rect = SOM((5, 6), epochs=5, random_state=0).fit(X)
    hexm = SOM((4, 5), topology="hexagonal", epochs=5, random_state=0).fit(X)
    return {"rect": rect, "hex": hexm}


# ---------------------------------------------------------------- U-matrix
def test_umatrix_rectangular_by_hand():
    # 8-neighbourhood; every distance below read off W23
    expected = np.array(
        [
            [(5 + 4 + 10) / 3, (5 + 4 + 3 + 5 + 0) / 5, (4 + S73 + 4) / 3],
            [(4 + 3 + S52) / 3, (10 + 5 + S73 + S52 + 5) / 5, (0 + 4 + 5) / 3],
        ]
    )
    np.testing.assert_allclose(P.umatrix(W23), expected)
    # the same from a flat (n_nodes, m) array with its grid, and from a torch tensor
    np.testing.assert_allclose(P.umatrix(W23.reshape(6, 2), grid=Grid(2, 3)), expected)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(P.umatrix(torch.tensor(W23)), expected)


def test_umatrix_hexagonal_six_neighbours():
    # 3x3 odd-r map, 1 feature. Node (1,1) (odd row) touches (1,0), (1,2), (0,1), (0,2), (2,1),
    # (2,2); (0,0) and (2,0) are at distance sqrt(3) and must not count: give them huge values.
    w = np.array([[100.0, 1.0, 2.0], [3.0, 10.0, 4.0], [100.0, 6.0, 7.0]])
    U = P.umatrix(w[..., None], grid=Grid(3, 3, "hexagonal"))
    assert U[1, 1] == pytest.approx((7 + 6 + 9 + 8 + 4 + 3) / 6)
    # corner (0,2) of an even row: neighbours (0,1), (1,1), (1,2) only
    assert U[0, 2] == pytest.approx((1 + 8 + 2) / 3)
    # corner (0,0): (0,1) and (1,0)
    assert U[0, 0] == pytest.approx((99 + 97) / 2)


def test_umatrix_toroidal_wraps_the_corner():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 4, 3))

    def mean_dist(nodes):
        return np.mean([np.linalg.norm(W[0, 0] - W[r, c]) for r, c in nodes])

    flat = P.umatrix(W, grid=Grid(4, 4))
    torus = P.umatrix(W, grid=Grid(4, 4, toroidal=True))
    assert flat[0, 0] == pytest.approx(mean_dist([(0, 1), (1, 0), (1, 1)]))
    wrapped = [(0, 1), (0, 3), (1, 0), (3, 0), (1, 1), (1, 3), (3, 1), (3, 3)]
    assert torus[0, 0] == pytest.approx(mean_dist(wrapped))
    # an interior node has the same neighbours either way
    assert torus[1, 1] == pytest.approx(flat[1, 1])
    # hexagonal torus: corner (0,0) of an even row also meets (0,3), (3,3), (3,0), (1,3)
    hex_torus = P.umatrix(W, grid=Grid(4, 4, "hexagonal", toroidal=True))
    hex_wrapped = [(0, 1), (0, 3), (1, 0), (1, 3), (3, 0), (3, 3)]
    assert hex_torus[0, 0] == pytest.approx(mean_dist(hex_wrapped))


def test_umatrix_from_fitted_som_matches_weights(soms):
    for som in soms.values():
        np.testing.assert_allclose(P.umatrix(som), P.umatrix(som.weights_, grid=som.grid_))


def test_expanded_umatrix_by_hand():
    E = P.expanded_umatrix(W23)
    assert E.shape == (3, 5)
    # between-node cells hold the prototype distances
    assert E[0, 1] == pytest.approx(5)  # (0,0)-(0,1)
    assert E[0, 3] == pytest.approx(4)  # (0,1)-(0,2)
    assert E[2, 1] == pytest.approx(S52)  # (1,0)-(1,1)
    assert E[2, 3] == pytest.approx(5)  # (1,1)-(1,2)
    assert E[1, 0] == pytest.approx(4)  # (0,0)-(1,0)
    assert E[1, 2] == pytest.approx(5)  # (0,1)-(1,1)
    assert E[1, 4] == pytest.approx(4)  # (0,2)-(1,2)
    # diagonal cells: mean of the two crossing distances
    assert E[1, 1] == pytest.approx((10 + 3) / 2)  # (0,0)-(1,1) and (0,1)-(1,0)
    assert E[1, 3] == pytest.approx((S73 + 0) / 2)  # (0,2)-(1,1) and (0,1)-(1,2)
    # node cells: mean of the between-node cells around them
    assert E[0, 0] == pytest.approx((5 + 4) / 2)
    assert E[0, 2] == pytest.approx((5 + 4 + 5) / 3)
    assert E[2, 2] == pytest.approx((S52 + 5 + 5) / 3)


def test_expanded_umatrix_between_cells_equal_distances_random():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(4, 5, 3))
    E = P.expanded_umatrix(W)
    for r in range(4):
        for c in range(4):
            assert E[2 * r, 2 * c + 1] == pytest.approx(np.linalg.norm(W[r, c] - W[r, c + 1]))
    for r in range(3):
        for c in range(5):
            assert E[2 * r + 1, 2 * c] == pytest.approx(np.linalg.norm(W[r, c] - W[r + 1, c]))


def test_expanded_umatrix_hexagonal_by_hand():
    # 2x2 hexagonal map: (0,0) x=0, (0,1) x=1, (1,0) x=0.5, (1,1) x=1.5 (odd row shifted)
    W = np.array([[[0.0, 0.0], [3.0, 4.0]], [[0.0, 1.0], [3.0, 0.0]]])
    E = P.expanded_umatrix(W, grid=Grid(2, 2, "hexagonal"))
    assert E.shape == (3, 4)
    d = {
        "00-01": 5.0,
        "10-11": math.sqrt(10),
        "00-10": 1.0,
        "01-10": math.sqrt(18),
        "01-11": 4.0,
    }
    assert E[0, 1] == pytest.approx(d["00-01"])
    assert E[2, 2] == pytest.approx(d["10-11"])
    assert E[1, 0] == pytest.approx(d["00-10"])  # midpoint x = 0.25
    assert E[1, 1] == pytest.approx(d["01-10"])  # x = 0.75
    assert E[1, 2] == pytest.approx(d["01-11"])  # x = 1.25
    assert E[0, 0] == pytest.approx((5 + 1) / 2)
    assert E[0, 2] == pytest.approx((5 + math.sqrt(18) + 4) / 3)
    assert E[2, 1] == pytest.approx((1 + math.sqrt(18) + math.sqrt(10)) / 3)
    assert E[2, 3] == pytest.approx((4 + math.sqrt(10)) / 2)
    assert np.isnan(E[0, 3]) and np.isnan(E[1, 3]) and np.isnan(E[2, 0])


def test_expanded_umatrix_hexagonal_nodes_are_the_umatrix(soms):
    som = soms["hex"]
    E = P.expanded_umatrix(som)
    rows, cols = som.grid_.shape
    r, c = np.divmod(np.arange(rows * cols), cols)
    np.testing.assert_allclose(E[2 * r, 2 * c + r % 2], P.umatrix(som).ravel())
    # every edge of the lattice has its own cell: finite cells = nodes + edges
    n_edges = len(som.grid_.neighbours_within(1.0 + 1e-6))
    assert np.isfinite(E).sum() == rows * cols + n_edges
    ax = P.plot_expanded_umatrix(som)
    assert len(ax.collections[0].get_paths()) == rows * cols + n_edges


def test_umatrix_in_the_maps_own_distance(iris):
    X = iris[0]
    cos = SOM((4, 4), distance="cosine", epochs=3, random_state=0).fit(X)
    W = cos.weights_.reshape(16, -1)
    a, b = W[0], W[1]  # nodes (0,0) and (0,1) are adjacent
    want = 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-8)
    E = P.expanded_umatrix(cos)
    assert E[0, 1] == pytest.approx(want)
    assert not np.allclose(P.umatrix(cos), P.umatrix(cos.weights_))  # array: Euclidean
    np.testing.assert_allclose(P.umatrix(cos), P.umatrix(cos.weights_, distance="cosine"))
    man = SOM((4, 4), distance="manhattan", epochs=3, random_state=0).fit(X)
    Wm = man.weights_.reshape(16, -1)
    assert P.expanded_umatrix(man)[0, 1] == pytest.approx(np.abs(Wm[0] - Wm[1]).sum())
    ax = P.plot_umatrix(cos)
    assert np.allclose(np.asarray(ax.images[0].get_array()), P.umatrix(cos))
    with pytest.raises(ValueError, match="distance must be one of"):
        P.umatrix(cos, distance="hamming")


# ---------------------------------------------------------------- data on the map
def test_hit_map_matches_predict(iris, soms):
    X = iris[0]
    for som in soms.values():
        H = P.hit_map(som, X)
        assert H.shape == som.grid_.shape
        assert H.sum() == len(X)
        np.testing.assert_array_equal(
            H.ravel(), np.bincount(som.predict(X), minlength=som.grid_.n_nodes)
        )
        # the weights-only path (Euclidean) agrees with the Euclidean SOM
        np.testing.assert_array_equal(P.hit_map(som.weights_, X, grid=som.grid_), H)


def test_class_markers_and_distribution_by_hand():
    W = np.array([[[0.0], [10.0]]])  # a 1x2 map
    X = np.array([[0.0], [1.0], [9.0], [10.0], [11.0]])
    y = np.array(["a", "b", "a", "a", "b"])
    pos, labels = P.class_markers(W, X, y)
    np.testing.assert_array_equal(pos, [[0, 0], [0, 0], [0, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(labels, y)
    D = P.class_distribution(W, X, y)
    np.testing.assert_allclose(D[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(D[0, 1], [2 / 3, 1 / 3])
    # explicit class order, including a class without samples
    D = P.class_distribution(W, X, y, classes=["b", "z", "a"])
    np.testing.assert_allclose(D[0, 1], [1 / 3, 0, 2 / 3])
    with pytest.raises(ValueError, match="not in classes"):
        P.class_distribution(W, X, y, classes=["a"])


def test_class_distribution_sums_to_one_where_hit(iris, soms):
    X, y = iris[:2]
    som = soms["rect"]
    D = P.class_distribution(som, X, y)
    H = P.hit_map(som, X)
    assert D.shape == (5, 6, 3)
    np.testing.assert_allclose(D.sum(-1)[H > 0], 1.0)
    np.testing.assert_array_equal(D.sum(-1)[H == 0], 0.0)
    pos, labels = P.class_markers(som, X, y)
    np.testing.assert_array_equal(pos, som.bmu_coordinates(X))
    # class counts recovered from the proportions
    counts = (D * H[..., None]).sum((0, 1))
    np.testing.assert_allclose(counts, np.bincount(y))


# ---------------------------------------------------------------- prototypes
def test_component_planes(soms):
    som = soms["hex"]
    planes = P.component_planes(som)
    assert planes.shape == (4, 4, 5)
    for f in range(4):
        np.testing.assert_array_equal(planes[f], som.weights_[..., f])


def test_prototype_mosaic_blocks():
    rows, cols, h, w = 2, 3, 2, 3
    W = np.arange(h * w)[None, None, :] + 100.0 * np.arange(rows * cols).reshape(rows, cols, 1)
    M = P.prototype_mosaic(W, (h, w))
    assert M.shape == (rows * h, cols * w)
    for r in range(rows):
        for c in range(cols):
            block = M[r * h : (r + 1) * h, c * w : (c + 1) * w]
            np.testing.assert_array_equal(block, W[r, c].reshape(h, w))
    Mp = P.prototype_mosaic(W, (h, w), pad=1)
    assert Mp.shape == (rows * (h + 1) - 1, cols * (w + 1) - 1)
    np.testing.assert_array_equal(Mp[3:5, 8:11], W[1, 2].reshape(h, w))
    assert np.isnan(Mp[2]).all() and np.isnan(Mp[:, 3]).all()
    # RGB prototypes: (h, w, 3)
    rgb = np.random.default_rng(0).random((2, 2, 12))
    Mc = P.prototype_mosaic(rgb, (2, 2, 3))
    assert Mc.shape == (4, 4, 3)
    np.testing.assert_array_equal(Mc[2:4, 0:2], rgb[1, 0].reshape(2, 2, 3))


# ---------------------------------------------------------------- misuse
def test_clear_errors(iris, soms):
    X = iris[0]
    with pytest.raises(ValueError, match="fit the SOM before plotting"):
        P.umatrix(SOM((3, 3)))
    with pytest.raises(ValueError, match="fit the SOM before plotting"):
        P.plot_umatrix(SOM((3, 3)))
    with pytest.raises(ValueError, match="fit the SOM before plotting"):
        P.plot_training(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match="image_shape whose product equals n_features=4"):
        P.plot_prototypes(soms["rect"])
    with pytest.raises(ValueError, match="needs grid"):
        P.umatrix(np.zeros((6, 2)))
    with pytest.raises(ValueError, match="do not match the grid"):
        P.umatrix(np.zeros((2, 3, 2)), grid=Grid(3, 2))
    with pytest.raises(ValueError, match="n_samples, 3"):
        P.hit_map(np.zeros((2, 2, 3)), X)
    with pytest.raises(ValueError, match="one per sample"):
        P.class_markers(soms["rect"], X, iris[1][:10])
    with pytest.raises(ValueError, match="style"):
        P.plot_hits(soms["rect"], X, style="pie")


# ---------------------------------------------------------------- drawings
def _hex_collection(ax):
    colls = [c for c in ax.collections if isinstance(c, PatchCollection)]
    assert colls, "no PatchCollection drawn"
    return colls[0]


def _png_ok(path):
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_umatrix_rect_and_hex(soms, tmp_path):
    ax = P.plot_umatrix(soms["rect"], path=tmp_path / "u.png")
    assert isinstance(ax, Axes)
    img = ax.images[0].get_array()
    np.testing.assert_allclose(img, P.umatrix(soms["rect"]))
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # row 0 at the top
    _png_ok(tmp_path / "u.png")

    _, own = plt.subplots()
    ax = P.plot_umatrix(soms["hex"], ax=own, path=tmp_path / "h.png", colorbar=False)
    assert ax is own
    coll = _hex_collection(ax)
    assert len(coll.get_paths()) == 4 * 5
    np.testing.assert_allclose(coll.get_array(), P.umatrix(soms["hex"]).ravel())
    _png_ok(tmp_path / "h.png")


def test_hexagons_tile_without_gaps_or_overlaps(soms):
    grid = Grid(4, 5, "hexagonal")
    ax = P.plot_umatrix(np.zeros((4, 5, 1)), grid=grid, colorbar=False)
    paths = _hex_collection(ax).get_paths()
    verts = [np.unique(p.vertices.round(9), axis=0) for p in paths]
    assert all(v.shape == (6, 2) for v in verts)
    centres = np.array([v.mean(0) for v in verts])
    rc = grid.coordinates().numpy()
    np.testing.assert_allclose(centres, rc[:, ::-1], atol=1e-9)  # x = column, y = row coord
    # a pointy-top hexagon 1 wide across flats: area sqrt(3)/2, vertex at the top
    v = verts[0] - centres[0]
    assert v[:, 0].max() - v[:, 0].min() == pytest.approx(1.0)
    assert np.abs(v[:, 1]).max() == pytest.approx(1 / math.sqrt(3))
    # lattice neighbours share exactly one edge (two vertices); others share none
    edges = {tuple(e) for e in grid.neighbours_within(1.0 + 1e-6).tolist()}
    for i in range(grid.n_nodes):
        for j in range(i + 1, grid.n_nodes):
            shared = sum(np.isclose(verts[j], p).all(1).any() for p in verts[i])
            assert shared == (2 if (i, j) in edges else 0)


def test_plot_expanded_umatrix(soms, tmp_path):
    ax = P.plot_expanded_umatrix(soms["rect"], path=tmp_path / "e.png")
    assert isinstance(ax, Axes)
    np.testing.assert_allclose(ax.images[0].get_array(), P.expanded_umatrix(soms["rect"]))
    _png_ok(tmp_path / "e.png")


@pytest.mark.parametrize("style", ["cells", "size"])
def test_plot_hits(iris, soms, tmp_path, style):
    X = iris[0]
    ax = P.plot_hits(soms["hex"], X, style=style, path=tmp_path / "hits.png")
    assert isinstance(ax, Axes)
    assert len(_hex_collection(ax).get_paths()) == 20
    H = P.hit_map(soms["hex"], X)
    numbers = sorted(int(t.get_text()) for t in ax.texts)
    assert numbers == sorted(H[H > 0].tolist())
    _png_ok(tmp_path / "hits.png")
    ax = P.plot_hits(soms["rect"], X, style=style)
    assert isinstance(ax, Axes)


def test_plot_markers(iris, soms, tmp_path):
    X, y, names, _ = iris
    for kind, som in soms.items():
        path = tmp_path / f"m_{kind}.png"
        ax = P.plot_markers(som, X, y, names=names, jitter=0.2, path=path)
        assert isinstance(ax, Axes)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == names
        lines = ax.get_lines()
        assert [len(line.get_xdata()) for line in lines] == np.bincount(y).tolist()
        _png_ok(path)
    # no jitter: markers sit exactly on the node centres (x = column for a rect map)
    ax = P.plot_markers(soms["rect"], X, y, markers=["o", "s", "^"], colors="rgb")
    pos = soms["rect"].bmu_coordinates(X[y == 0])
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), pos[:, 1])
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), pos[:, 0])


def test_plot_class_pies(iris, soms, tmp_path):
    X, y, names, _ = iris
    som = soms["hex"]
    ax = P.plot_class_pies(som, X, y, names=names, path=tmp_path / "p.png")
    assert isinstance(ax, Axes)
    outline, pies = ax.collections[:2]
    assert len(outline.get_paths()) == 20
    D = P.class_distribution(som, X, y)
    assert len(pies.get_paths()) == int((D > 0).sum())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == names
    _png_ok(tmp_path / "p.png")


def test_plot_components(iris, soms, tmp_path):
    feature_names = iris[3]
    axes = P.plot_components(soms["rect"], names=feature_names, ncols=3, path=tmp_path / "c.png")
    assert axes.shape == (2, 3)
    assert [a.get_title() for a in axes.flat[:4]] == feature_names
    assert not axes.flat[4].get_visible() and not axes.flat[5].get_visible()
    np.testing.assert_allclose(axes[0, 1].images[0].get_array(), soms["rect"].weights_[..., 1])
    _png_ok(tmp_path / "c.png")
    axes = P.plot_components(soms["hex"], features=[2], names=feature_names)
    assert axes.shape == (1, 1)
    assert len(_hex_collection(axes[0, 0]).get_paths()) == 20
    with pytest.raises(ValueError, match="unknown feature"):
        P.plot_components(soms["hex"], features=["colour"], names=feature_names)


def test_plot_prototypes(tmp_path):
    W = np.random.default_rng(0).random((3, 4, 6))
    ax = P.plot_prototypes(W, image_shape=(2, 3), path=tmp_path / "proto.png")
    assert isinstance(ax, Axes)
    shown = ax.images[0].get_array()
    np.testing.assert_array_equal(np.ma.filled(shown, np.nan)[3:5, 4:7], W[1, 1].reshape(2, 3))
    _png_ok(tmp_path / "proto.png")


def test_plot_training(soms, tmp_path):
    som = soms["rect"]
    ax = P.plot_training(som, path=tmp_path / "t.png")
    assert isinstance(ax, Axes)
    qe = ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(qe, som.history_["quantization_error"])
    assert len(qe) == som.epochs
    _png_ok(tmp_path / "t.png")


def test_relevance_plot_shows_the_relevances(tmp_path):
    from somlab import BatchSSSOM
    from somlab.plotting import plot_relevances, relevance_matrix

    rng = np.random.default_rng(0)
    X = rng.random((80, 4)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    m = BatchSSSOM(epochs=2, random_state=0).fit(X, y)
    R, cls = relevance_matrix(m)
    np.testing.assert_array_equal(R, m.relevances_)
    np.testing.assert_array_equal(cls, m.node_classes_)
    ax = plot_relevances(m, feature_names=list("abcd"), path=tmp_path / "r.png")
    np.testing.assert_array_equal(ax.images[0].get_array(), R)
    assert (tmp_path / "r.png").stat().st_size > 0
    with pytest.raises(ValueError, match="fit the relevance map"):
        relevance_matrix(object())
    # a fitted model of another kind is named as such, not called unfitted
    with pytest.raises(ValueError, match="a BatchSSSOM has none"):
        P.plot_umatrix(m)
    som = SOM((2, 2), epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="a SOM has no relevances_"):
        plot_relevances(som)
