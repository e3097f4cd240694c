"""somlab.compat.MiniSom against the real MiniSom 2.3.6 (the reference), seed for seed."""

import pickle
import types
import unittest
import warnings

import minisom as ref_module
import numpy as np
import pytest
from minisom import MiniSom as RefSom

from somlab import compat
from somlab.compat import MiniSom

RTOL, ATOL = 1e-9, 1e-10
TOPOLOGIES = ["rectangular", "hexagonal"]
NEIGHBOURHOODS = ["gaussian", "mexican_hat", "bubble", "triangle"]
DISTANCES = ["euclidean", "cosine", "manhattan", "chebyshev"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    return rng.rand(200, 4) * np.array([1.0, 2.0, 0.5, 3.0]) - np.array([0.0, 1.0, 0.2, 0.0])


@pytest.fixture(scope="module")
def labels():
    return np.random.RandomState(1).choice(["a", "b", "c"], size=200)


def make_pair(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RefSom(*args, **kwargs), MiniSom(*args, **kwargs)


def sigma_for(neighbourhood):
    return 2 if neighbourhood in ("bubble", "triangle") else 1.5


def assert_weights(ours, ref):
    assert ours._weights.shape == ref._weights.shape
    assert ours._weights.dtype == np.float64
    np.testing.assert_allclose(ours._weights, ref._weights, rtol=RTOL, atol=ATOL)


def assert_same_analysis(ref, ours, data, labels, full=True):
    """Every read-out of a trained map agrees with MiniSom's (``full=False``: the cheap ones)."""
    assert [ours.winner(x) for x in data] == [ref.winner(x) for x in data]
    np.testing.assert_array_equal(ours.activation_response(data), ref.activation_response(data))
    if not full:
        return
    np.testing.assert_allclose(ours.activate(data[3]), ref.activate(data[3]), rtol=RTOL, atol=ATOL)

    wm_ref, wm_ours = ref.win_map(data, return_indices=True), ours.win_map(data, True)
    assert list(wm_ours.items()) == list(wm_ref.items())  # same keys, same insertion order
    wm_ref, wm_ours = ref.win_map(data), ours.win_map(data)
    assert list(wm_ours) == list(wm_ref)
    for key in wm_ref:
        np.testing.assert_array_equal(np.array(wm_ours[key]), np.array(wm_ref[key]))
    np.testing.assert_allclose(ours._activation_map, ref._activation_map, rtol=RTOL, atol=ATOL)

    lm_ref, lm_ours = ref.labels_map(data, labels), ours.labels_map(data, labels)
    assert list(lm_ours.items()) == list(lm_ref.items())

    for scaling in ("sum", "mean"):
        np.testing.assert_allclose(
            ours.distance_map(scaling), ref.distance_map(scaling), rtol=RTOL, atol=ATOL
        )
    np.testing.assert_allclose(
        ours.quantization(data), ref.quantization(data), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        ours.quantization_error(data), ref.quantization_error(data), rtol=RTOL, atol=ATOL
    )
    assert ours.topographic_error(data) == ref.topographic_error(data)
    np.testing.assert_allclose(
        ours.distortion_measure(data), ref.distortion_measure(data), rtol=RTOL, atol=ATOL
    )


# ---------------------------------------------------------------- construction and state
@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("shape", [(7, 5), (6, 6), (1, 4)])
def test_initial_state_and_coordinates(topology, shape):
    ref, ours = make_pair(*shape, 3, topology=topology, random_seed=11)
    np.testing.assert_array_equal(ours._weights, ref._weights)
    np.testing.assert_array_equal(ours.get_weights(), ref.get_weights())
    np.testing.assert_array_equal(ours._activation_map, ref._activation_map)
    for a, b in zip(ours.get_euclidean_coordinates(), ref.get_euclidean_coordinates()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ours._xx, ref._xx)
    np.testing.assert_array_equal(ours._yy, ref._yy)
    xy = (shape[0] - 1, shape[1] - 1)
    assert ours.convert_map_to_euclidean(xy) == ref.convert_map_to_euclidean(xy)
    assert ours.Y_HEX_CONV_FACTOR == ref.Y_HEX_CONV_FACTOR
    # the generator is left in the same state
    assert ours._random_generator.randint(10**9) == ref._random_generator.randint(10**9)


def _warnings_and_error(cls, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cls(*args, **kwargs)
            error = None
        except Exception as exc:  # noqa: BLE001 - compared with the reference's
            error = (type(exc), str(exc))
    return [(w.category, str(w.message)) for w in caught], error


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((5, 5, 2), {"sigma": 10}),  # sigma too high
        ((5, 5, 2), {"neighborhood_function": "triangle", "topology": "hexagonal"}),
        ((5, 5, 2), {"neighborhood_function": "bubble", "sigma": 1.5}),
        ((5, 5, 2), {"neighborhood_function": "triangle", "sigma": 0.5}),
        ((5, 5, 2), {"topology": "triangular"}),
        ((5, 5, 2), {"neighborhood_function": "boooom"}),
        ((5, 5, 2), {"activation_distance": "ridethewave"}),
        ((5, 5, 2), {"decay_function": "strawberry"}),
        ((5, 5, 2), {"sigma_decay_function": "strawberry"}),
        ((5, 5, 2), {"sigma_decay_function": "inverse_decay_to_zero"}),
        ((5, 5, 2), {"decay_function": "linear_decay_to_zero", "activation_distance": "cosine"}),
    ],
)
def test_constructor_validation_matches(args, kwargs):
    assert _warnings_and_error(MiniSom, *args, **kwargs) == _warnings_and_error(
        RefSom, *args, **kwargs
    )


def test_public_names():
    for name in [
        "MiniSom",
        "asymptotic_decay",
        "inverse_decay_to_zero",
        "linear_decay_to_zero",
        "inverse_decay_to_one",
        "linear_decay_to_one",
        "gaussian",
        "mexican_hat",
        "bubble",
        "triangle",
        "fast_norm",
    ]:
        assert name in compat.__all__ and callable(getattr(compat, name))
    v = np.array([1.0, 3.0, -2.0])
    assert compat.fast_norm(v) == ref_module.fast_norm(v)


# ---------------------------------------------------------------- decays
def _outcome(f, *args):
    try:
        return f(*args)
    except ZeroDivisionError:  # e.g. inverse_decay_to_one(0, T, T): 0 / 0 in both
        return -12345.0


def test_decay_functions_match():
    som = RefSom(3, 3, 2)
    pairs = [
        (compat.asymptotic_decay, som._asymptotic_decay, 0.0),
        (compat.linear_decay_to_zero, som._linear_decay_to_zero, 0.0),
        (compat.inverse_decay_to_zero, som._inverse_decay_to_zero, 0.0),
        (compat.inverse_decay_to_one, som._inverse_decay_to_one, 0.0),
        (compat.linear_decay_to_one, som._linear_decay_to_one, 0.0),
    ]
    for ours, ref, rtol in pairs:
        for value in (0.0, 0.1, 0.5, 1, 1.3, 2.5, 7):
            for max_iter in (1, 3, 10, 1000, 12345):
                ts = np.unique(np.linspace(0, max_iter, 37).astype(int))
                got = np.array([_outcome(ours, value, int(t), max_iter) for t in ts])
                want = np.array([_outcome(ref, value, int(t), max_iter) for t in ts])
                if rtol == 0.0:
                    np.testing.assert_array_equal(got, want)
                else:
                    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    # the methods are the same functions
    ours = MiniSom(3, 3, 2)
    assert ours._inverse_decay_to_one(2.0, 3, 10) == compat.inverse_decay_to_one(2.0, 3, 10)
    assert ours._asymptotic_decay(2.0, 3, 10) == som._asymptotic_decay(2.0, 3, 10)


# ---------------------------------------------------------------- neighbourhoods, distances
@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("shape", [(7, 5), (4, 6)])
def test_neighbourhood_functions_match(topology, shape):
    ref, ours = make_pair(*shape, 2, topology=topology, random_seed=0)
    for name in NEIGHBOURHOODS:
        method = "_" + name
        for sigma in (0.7, 1.0, 1.5, 2.0, 3.3):
            for c in np.ndindex(*shape):
                got = getattr(ours, method)(c, sigma)
                want = getattr(ref, method)(c, sigma)
                assert got.shape == shape
                if name in ("bubble", "triangle"):
                    np.testing.assert_array_equal(got, want)
                else:
                    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
        # the module-level function, used as a method
        c = (shape[0] // 2, shape[1] // 2)
        bound = types.MethodType(getattr(compat, name), ours)
        np.testing.assert_array_equal(bound(c, 1.5), getattr(ours, method)(c, 1.5))


def test_distance_functions_match():
    rng = np.random.RandomState(5)
    ref, ours = make_pair(4, 3, 5, random_seed=0)
    w = rng.rand(4, 3, 5) - 0.5
    for name in DISTANCES:
        method = f"_{name}_distance"
        for x in (rng.rand(5), rng.rand(1, 5), 0.3, [0.1, 0.2, 0.3, 0.4, 0.5]):
            got, want = getattr(ours, method)(x, w), getattr(ref, method)(x, w)
            assert got.shape == want.shape == (4, 3)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    # MiniSom's own unit-test shapes
    x, w = np.zeros((1, 2)), np.ones((2, 2, 2))
    for name in ("euclidean", "cosine", "manhattan"):
        np.testing.assert_allclose(
            getattr(ours, f"_{name}_distance")(x, w), getattr(ref, f"_{name}_distance")(x, w)
        )
    x = np.array([1, 3])
    np.testing.assert_array_equal(ours._chebyshev_distance(x, w), ref._chebyshev_distance(x, w))


# ---------------------------------------------------------------- initialisation
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_random_and_pca_weights_init(data, topology):
    ref, ours = make_pair(7, 5, 4, topology=topology, random_seed=2)
    ref.random_weights_init(data)
    ours.random_weights_init(data)
    np.testing.assert_array_equal(ours._weights, ref._weights)
    ref.random_weights_init(list(map(list, data[:17])))  # lists work too
    ours.random_weights_init(list(map(list, data[:17])))
    np.testing.assert_array_equal(ours._weights, ref._weights)
    ref.pca_weights_init(data)
    ours.pca_weights_init(data)
    np.testing.assert_array_equal(ours._weights, ref._weights)
    with pytest.raises(ValueError):
        ours.random_weights_init(data[:, :3])
    with pytest.raises(ValueError):
        MiniSom(3, 3, 1).pca_weights_init(data[:, :1])
    with pytest.warns(UserWarning, match="PCA initialization inappropriate"):
        MiniSom(1, 5, 4).pca_weights_init(data)


# ---------------------------------------------------------------- sequential training
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("neighbourhood", NEIGHBOURHOODS)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_train_random_matches(data, labels, topology, neighbourhood, distance):
    kw = dict(
        sigma=sigma_for(neighbourhood),
        learning_rate=0.5,
        neighborhood_function=neighbourhood,
        topology=topology,
        activation_distance=distance,
        random_seed=7,
    )
    ref, ours = make_pair(7, 5, 4, **kw)
    ref.train_random(data, 120)
    ours.train_random(data, 120)
    assert_weights(ours, ref)
    assert_same_analysis(ref, ours, data, labels, full=distance == "euclidean")


@pytest.mark.parametrize(
    "sigma_decay", ["asymptotic_decay", "inverse_decay_to_one", "linear_decay_to_one"]
)
@pytest.mark.parametrize(
    "lr_decay", ["asymptotic_decay", "inverse_decay_to_zero", "linear_decay_to_zero"]
)
def test_train_decay_functions_match(data, lr_decay, sigma_decay):
    kw = dict(sigma=2.5, decay_function=lr_decay, sigma_decay_function=sigma_decay, random_seed=3)
    ref, ours = make_pair(6, 6, 4, **kw)
    ref.train(data, 300, random_order=True)
    ours.train(data, 300, random_order=True)
    assert_weights(ours, ref)
    assert [ours.winner(x) for x in data] == [ref.winner(x) for x in data]


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("use_epochs", [False, True])
@pytest.mark.parametrize("random_order", [False, True])
def test_train_modes_match(data, labels, topology, use_epochs, random_order):
    ref, ours = make_pair(7, 5, 4, sigma=1.2, topology=topology, random_seed=5)
    train_data, num = (data[:90], 3) if use_epochs else (data, 250)
    ref.train(train_data, num, random_order=random_order, use_epochs=use_epochs)
    ours.train(train_data, num, random_order=random_order, use_epochs=use_epochs)
    assert_weights(ours, ref)
    # a second call continues from the same generator state
    ref.train_batch(data[:50], 60)
    ours.train_batch(data[:50], 60)
    assert_weights(ours, ref)
    assert_same_analysis(ref, ours, data, labels, full=random_order == use_epochs)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_train_fixed_points_and_lists(data, topology):
    fixed = {0: (0, 0), 5: (6, 4), 17: (3, 2)}
    ref, ours = make_pair(7, 5, 4, topology=topology, neighborhood_function="bubble", random_seed=9)
    as_list = [list(row) for row in data[:60]]
    ref.train(as_list, 200, random_order=True, fixed_points=fixed)
    ours.train(as_list, 200, random_order=True, fixed_points=fixed)
    assert_weights(ours, ref)
    for bad, exc in [({0: (7, 0)}, ValueError), ({60: (0, 0)}, ValueError)]:
        with pytest.raises(exc):
            ours.train(as_list, 10, fixed_points=bad)
    for bad, exc in [({0: (-1, 0)}, ValueError), ({"k": (0, 0)}, TypeError)]:
        with pytest.raises(exc):
            ours.train(as_list, 10, fixed_points=bad)
    with pytest.raises(ValueError):
        ours.train(data, 0)
    with pytest.raises(ValueError):
        ours.train(data[:, :3], 10)


def test_callables_and_update(data):
    def euclidean(x, w):
        return np.linalg.norm(np.subtract(x, w), axis=-1)

    def decay(lr, t, max_iter):
        return lr / (1 + t) ** 0.5

    kw = dict(activation_distance=euclidean, decay_function=decay, random_seed=4)
    ref, ours = make_pair(5, 4, 4, **kw)
    ref.train_random(data, 200)
    ours.train_random(data, 200)
    assert_weights(ours, ref)
    np.testing.assert_array_equal(ours.activation_response(data), ref.activation_response(data))
    ref.train_batch_offline(data, 3)
    ours.train_batch_offline(data, 3)
    assert_weights(ours, ref)
    # direct update() calls, as some user code does
    for t, x in enumerate(data[:20]):
        ref.update(x, ref.winner(x), t, 20)
        ours.update(x, ours.winner(x), t, 20)
    assert_weights(ours, ref)


def test_user_neighbourhood_and_weights_assignment(data):
    ref, ours = make_pair(6, 5, 4, random_seed=8)
    ref.neighborhood, ours.neighborhood = ref._triangle, ours._triangle  # switched by the user
    ref._weights = ref._weights * 0.5  # users assign _weights directly
    ours._weights = ours._weights * 0.5
    ref.train(data, 150, random_order=True)
    ours.train(data, 150, random_order=True)
    assert_weights(ours, ref)
    ref.train_batch_offline(data, 2)
    ours.train_batch_offline(data, 2)
    assert_weights(ours, ref)


def test_user_neighbourhood_function(data):
    ref, ours = make_pair(6, 5, 4, random_seed=8)
    ref.neighborhood = lambda c, sigma: ref._gaussian(c, sigma) ** 2
    ours.neighborhood = lambda c, sigma: ours._gaussian(c, sigma) ** 2
    ref.train(data, 150, random_order=True)
    ours.train(data, 150, random_order=True)
    assert_weights(ours, ref)
    ref.train_batch_offline(data, 2)
    ours.train_batch_offline(data, 2)
    assert_weights(ours, ref)
    np.testing.assert_allclose(ours.distortion_measure(data), ref.distortion_measure(data))


def test_train_step_offsets_computed_per_step(data, monkeypatch):
    import somlab.compat.minisom as mod

    # maps above the table size compute the squared offsets per step: the same numbers
    monkeypatch.setattr(mod, "_STEP_TABLE_NODES2", 10)
    for topology, neighbourhood in [("hexagonal", "mexican_hat"), ("rectangular", "gaussian")]:
        kw = dict(topology=topology, neighborhood_function=neighbourhood, sigma=2, random_seed=4)
        ref, ours = make_pair(7, 5, 4, **kw)
        ref.train(data[:75], 4, random_order=True, use_epochs=True, fixed_points={3: (1, 1)})
        ours.train(data[:75], 4, random_order=True, use_epochs=True, fixed_points={3: (1, 1)})
        np.testing.assert_array_equal(ours._weights, ref._weights)
        np.testing.assert_array_equal(ours._activation_map, ref._activation_map)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("neighbourhood", NEIGHBOURHOODS)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_sequential_training_is_bit_identical(data, topology, neighbourhood, distance):
    """The numpy step path repeats MiniSom's formulas in its order: equal weights, not close."""
    kw = dict(
        sigma=sigma_for(neighbourhood),
        neighborhood_function=neighbourhood,
        topology=topology,
        activation_distance=distance,
        decay_function="inverse_decay_to_zero",
        sigma_decay_function="linear_decay_to_one",
        random_seed=11,
    )
    ref, ours = make_pair(6, 5, 4, **kw)
    ref.train_random(data.astype(np.float32), 150)
    ours.train_random(data.astype(np.float32), 150)
    np.testing.assert_array_equal(ours._weights, ref._weights)
    np.testing.assert_array_equal(ours._activation_map, ref._activation_map)
    ref.train(data.tolist(), 2, use_epochs=True)
    ours.train(data.tolist(), 2, use_epochs=True)
    np.testing.assert_array_equal(ours._weights, ref._weights)


def test_decays_equal_minisom_exactly():
    ref = RefSom(5, 5, 1)
    ours = MiniSom(5, 5, 1)
    assert ours._inverse_decay_to_zero(1, 2, 3) == ref._inverse_decay_to_zero(1, 2, 3)
    assert ours._inverse_decay_to_zero(1, 2, 3) == 1 * (3 / 100) / (3 / 100 + 2)


def test_empty_maps_are_refused():
    for args in [(0, 5, 4), (5, 0, 4), (5, 5, 0), (-1, 3, 2)]:
        with pytest.raises(ValueError, match="positive"):
            MiniSom(*args)


# ---------------------------------------------------------------- batch (offline) training
OFFLINE_CASES = [(n, "euclidean") for n in NEIGHBOURHOODS] + [
    ("gaussian", "cosine"),
    ("bubble", "manhattan"),
    ("triangle", "chebyshev"),
]


@pytest.mark.parametrize("neighbourhood, distance", OFFLINE_CASES)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_train_batch_offline_matches(data, labels, topology, neighbourhood, distance):
    kw = dict(
        sigma=sigma_for(neighbourhood),
        learning_rate=0.5,
        neighborhood_function=neighbourhood,
        topology=topology,
        activation_distance=distance,
        random_seed=6,
    )
    ref, ours = make_pair(7, 5, 4, **kw)
    ref.train_batch_offline(data, 5)
    ours.train_batch_offline(data, 5)
    assert_weights(ours, ref)
    assert [ours.winner(x) for x in data] == [ref.winner(x) for x in data]
    np.testing.assert_allclose(ours._activation_map, ref._activation_map, rtol=RTOL, atol=ATOL)


def test_vectorised_methods_do_not_loop_over_samples(data, labels, monkeypatch):
    import somlab.compat.minisom as mod

    som = MiniSom(7, 5, 4, random_seed=1)
    som.train_random(data, 50)
    calls = []
    single = mod._distance
    monkeypatch.setattr(mod, "_distance", lambda *a: calls.append(1) or single(*a))
    for method, args in [
        ("quantization", ()),
        ("quantization_error", ()),
        ("topographic_error", ()),
        ("win_map", ()),
        ("labels_map", (labels,)),
        ("activation_response", ()),
        ("distortion_measure", ()),
        ("train_batch_offline", (3,)),
    ]:
        calls.clear()
        getattr(som, method)(data, *args)
        # at most one single-sample evaluation per pass: the last sample's activation map
        assert len(calls) <= (3 if method == "train_batch_offline" else 1), method


def test_subclass_overrides_are_honoured(data, labels):
    def make(base):
        class Pinned(base):
            def winner(self, x):  # a user subclass pinning negative samples to a corner
                return (0, 0) if x[1] < 0 else super().winner(x)

            def _distance_from_weights(self, data):
                return super()._distance_from_weights(data) * np.linspace(1, 2, 35)

        return Pinned(7, 5, 4, random_seed=2)

    ref, ours = make(RefSom), make(MiniSom)
    ref.train(data, 120, random_order=True)
    ours.train(data, 120, random_order=True)
    assert_weights(ours, ref)
    assert list(ours.win_map(data, True).items()) == list(ref.win_map(data, True).items())
    np.testing.assert_array_equal(ours.activation_response(data), ref.activation_response(data))
    assert list(ours.labels_map(data, labels).items()) == list(ref.labels_map(data, labels).items())
    np.testing.assert_allclose(ours.quantization(data), ref.quantization(data), rtol=RTOL)
    assert ours.topographic_error(data) == ref.topographic_error(data)
    ref.train_batch_offline(data, 2)
    ours.train_batch_offline(data, 2)
    assert_weights(ours, ref)


@pytest.mark.parametrize("neighbourhood", ["gaussian", "mexican_hat"])
def test_train_batch_offline_far_tail(neighbourhood):
    # sigma 0.2 on a 12x12 map with clustered data: some nodes are reached only by
    # neighbourhood values around 1e-300, which MiniSom still averages
    data = np.random.RandomState(0).rand(100, 3) * 0.05
    kw = dict(sigma=0.2, neighborhood_function=neighbourhood, random_seed=1)
    ref, ours = make_pair(12, 12, 3, **kw)
    ref.train_batch_offline(data, 5)
    ours.train_batch_offline(data, 5)
    assert_weights(ours, ref)


# ---------------------------------------------------------------- misc API
def test_analysis_edge_cases(data):
    ref, ours = make_pair(1, 1, 4, random_seed=0)
    with pytest.warns(UserWarning, match="not defined for a 1-by-1 map"):
        assert np.isnan(ours.topographic_error(data))
    with pytest.raises(ValueError):
        ours.labels_map(data, ["a"])
    with pytest.raises(ValueError):
        ours.distance_map(scaling="puppies")
    ref, ours = make_pair(3, 3, 1, random_seed=1)
    w = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])  # 2-D integer weights, as in MiniSom's tests
    ref._weights, ours._weights = w, w
    np.testing.assert_array_equal(ours.distance_map("mean"), ref.distance_map("mean"))
    np.testing.assert_array_equal(ours.distance_map("sum"), ref.distance_map("sum"))


def test_pickle_roundtrip_and_verbose(data, capsys, tmp_path):
    ref, ours = make_pair(5, 5, 4, random_seed=3, topology="hexagonal")
    ref.train_random(data, 100)
    ours.train_random(data, 100)
    ours = pickle.loads(pickle.dumps(ours))
    ref = pickle.loads(pickle.dumps(ref))
    ref.train_random(data, 100, verbose=True)
    out_ref = capsys.readouterr().out
    ours.train_random(data, 100, verbose=True)
    out_ours = capsys.readouterr().out
    assert_weights(ours, ref)
    assert out_ours.split("\n")[-2] == out_ref.split("\n")[-2]  # the quantization error line
    assert out_ours.startswith("\r [   0 / 100 ]   0% - ? it/s")
    ref.train_batch_offline(data, 2, verbose=True)
    out_ref = capsys.readouterr().out
    ours.train_batch_offline(data, 2, verbose=True)
    assert capsys.readouterr().out.split("left ")[-1] == out_ref.split("left ")[-1]


# ---------------------------------------------------------------- a MiniSom user script
def article_script(MiniSomClass):
    """A typical MiniSom tutorial, verbatim apart from the seed (MiniSom's default is random)."""
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import MinMaxScaler

    iris = load_iris()
    X, y = iris.data, iris.target
    sc = MinMaxScaler(feature_range=(0, 1))
    X = sc.fit_transform(X)

    som = MiniSomClass(x=10, y=10, input_len=4, sigma=1.0, learning_rate=0.5, random_seed=42)
    som.random_weights_init(X)
    som.train_random(data=X, num_iteration=1000)

    out = {"weights": som.get_weights().copy(), "u_matrix": som.distance_map().T}
    out["winners"] = [som.winner(x) for x in X]
    out["markers"] = [
        (w[0] + 0.5, w[1] + 0.5, y[i]) for i, (x, w) in enumerate(zip(X, out["winners"]))
    ]
    mappings = som.win_map(X)
    out["mappings"] = {k: np.array(v) for k, v in mappings.items()}
    out["labels"] = som.labels_map(X, [iris.target_names[t] for t in y])
    out["qe"] = som.quantization_error(X)
    out["te"] = som.topographic_error(X)
    out["response"] = som.activation_response(X)
    return out


def test_article_script_runs_unchanged():
    ref, ours = article_script(RefSom), article_script(MiniSom)
    np.testing.assert_allclose(ours["weights"], ref["weights"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ours["u_matrix"], ref["u_matrix"], rtol=RTOL, atol=ATOL)
    assert ours["winners"] == ref["winners"]
    assert ours["markers"] == ref["markers"]
    assert list(ours["mappings"]) == list(ref["mappings"])
    for k in ref["mappings"]:
        np.testing.assert_array_equal(ours["mappings"][k], ref["mappings"][k])
    assert ours["labels"] == ref["labels"]
    np.testing.assert_allclose(ours["qe"], ref["qe"], rtol=RTOL, atol=ATOL)
    assert ours["te"] == ref["te"]
    np.testing.assert_array_equal(ours["response"], ref["response"])


# ---------------------------------------------------------------- MiniSom's own unit tests
def _minisom_suite_against_compat():
    """MiniSom's TestMinisom, with ``MiniSom`` and ``fast_norm`` resolved to somlab.compat."""
    env = dict(ref_module.__dict__, MiniSom=MiniSom, fast_norm=compat.fast_norm)
    attrs = {
        name: types.FunctionType(f.__code__, env, name, f.__defaults__, f.__closure__)
        for name, f in vars(ref_module.TestMinisom).items()
        if isinstance(f, types.FunctionType)
    }
    return type("CompatTestMinisom", (unittest.TestCase,), attrs)


# test_use_epochs_variables only exercises minisom's own module function (and takes seconds);
# the compat copy of that function is compared in test_iteration_indexes_match instead.
_OWN_TESTS = sorted(
    n
    for n in vars(ref_module.TestMinisom)
    if n.startswith("test_") and n != "test_use_epochs_variables"
)


@pytest.mark.parametrize("name", _OWN_TESTS)
def test_minisom_own_unit_tests(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # test_pickling writes som.p
    case = _minisom_suite_against_compat()(name)
    case.setUp()
    getattr(case, name)()


def test_iteration_indexes_match():
    from somlab.compat.minisom import _build_iteration_indexes

    for use_epochs in (False, True):
        for seed in (None, 3):
            gens = [None, None] if seed is None else [np.random.RandomState(seed) for _ in "ab"]
            got = _build_iteration_indexes(57, 300, False, gens[0], use_epochs)
            want = ref_module._build_iteration_indexes(57, 300, False, gens[1], use_epochs)
            np.testing.assert_array_equal(got, want)
