"""Clustering metrics (SPEC §8) on hand-computed cases, plus a few hypothesis properties."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from somlab._errors import DataError
from somlab.metrics._clustering import (
    accuracy,
    ari,
    clustering_error,
    clustering_report,
    contingency,
    nmi,
    purity,
    subspace_clustering_error,
)

# --------------------------------------------------------------------------------------------
# contingency
# --------------------------------------------------------------------------------------------


def test_contingency_table_and_ids():
    y = [0, 0, 1, 1, 1, 2]
    c = [7, -1, 7, 3, 3, 3]
    table, cluster_ids, class_ids = contingency(y, c)
    # noise sample (index 1) is in no row; rows sorted by id: 3 -> classes {1,1,2}, 7 -> {0,1}
    assert cluster_ids.tolist() == [3, 7]
    assert class_ids.tolist() == [0, 1, 2]
    assert table.tolist() == [[0, 2, 1], [1, 1, 0]]


def test_contingency_all_noise_has_no_rows():
    table, cluster_ids, class_ids = contingency([0, 1, 1], [-1, -1, -1])
    assert table.shape == (0, 2)
    assert cluster_ids.size == 0 and class_ids.tolist() == [0, 1]


# --------------------------------------------------------------------------------------------
# clustering error
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_major", "n_minor"), [(151, 47), (200, 145)])
def test_ce_single_cluster_is_majority_share(n_major, n_minor):
    # Breast: 151 of 198 -> 151/198 = .763; Liver: 200 of 345 -> 200/345 = .580 (SPEC §8)
    y = [0] * n_major + [1] * n_minor
    c = [0] * (n_major + n_minor)
    expected = n_major / (n_major + n_minor)
    assert clustering_error(y, c) == pytest.approx(expected)
    assert purity(y, c) == pytest.approx(expected)


def test_ce_perfect_clustering_with_permuted_ids():
    y = [0, 0, 1, 1, 2, 2]
    c = [5, 5, 3, 3, 9, 9]  # 5 <-> 0, 3 <-> 1, 9 <-> 2
    assert clustering_error(y, c) == 1.0
    assert purity(y, c) == 1.0


def test_ce_three_clusters_two_classes():
    # cluster A: 3 of class 0, 1 of class 1; B: 1 / 3; C: 0 / 2   (N = 10)
    y = [0, 0, 0, 1] + [0, 1, 1, 1] + [1, 1]
    c = ["A"] * 4 + ["B"] * 4 + ["C"] * 2
    # matchings: A-0,B-1 = 3+3 = 6 (best); A-0,C-1 = 3+2 = 5; B-0,C-1 = 1+2 = 3; C-0,B-1 = 0+3 = 3
    # -> CE = 6/10; the extra cluster C contributes 0
    assert clustering_error(y, c) == pytest.approx(6 / 10)
    # purity = (max(3,1) + max(1,3) + max(0,2)) / 10 = (3+3+2)/10
    assert purity(y, c) == pytest.approx(8 / 10)


def test_ce_uses_optimal_not_greedy_matching():
    # table rows A = [5, 4], B = [4, 0]   (N = 13)
    # greedy takes A-0 (5) then B-1 (0) = 5; optimum is A-1 + B-0 = 4 + 4 = 8
    y = [0] * 5 + [1] * 4 + [0] * 4
    c = [0] * 9 + [1] * 4
    assert clustering_error(y, c) == pytest.approx(8 / 13)
    # purity = (5 + 4) / 13
    assert purity(y, c) == pytest.approx(9 / 13)


def test_extra_clusters_contribute_zero():
    # two classes, four pure clusters of sizes 3, 1 (class 0) and 2, 2 (class 1)   (N = 8)
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    c = [0, 0, 0, 1, 2, 2, 3, 3]
    # only one cluster per class can be matched: 3 (cluster 0) + 2 (cluster 2 or 3) = 5
    assert clustering_error(y, c) == pytest.approx(5 / 8)
    assert purity(y, c) == 1.0  # every cluster is pure


def test_noise_lowers_ce_and_purity():
    y = [0, 0, 0, 1, 1, 1]
    c = [0, 0, -1, 1, 1, -1]
    # table (noise left out) = [[2, 0], [0, 2]]; Dmax = 4, N still 6 -> 4/6
    assert clustering_error(y, c) == pytest.approx(4 / 6)
    assert purity(y, c) == pytest.approx(4 / 6)
    # noise=None makes -1 an ordinary cluster with row [1, 1]:
    # CE: still one cluster per class -> 2 + 2 = 4 -> 4/6; purity = (1 + 2 + 2)/6 = 5/6
    assert clustering_error(y, c, noise=None) == pytest.approx(4 / 6)
    assert purity(y, c, noise=None) == pytest.approx(5 / 6)


def test_custom_noise_id_and_all_noise():
    y = [0, 1, 1, 1]
    c = [0, 99, 1, 1]
    # 99 = noise: table rows 0 -> [1, 0], 1 -> [0, 2]; Dmax = 3 of N = 4
    assert clustering_error(y, c, noise=99) == pytest.approx(3 / 4)
    assert clustering_error(y, [-1] * 4) == 0.0
    assert purity(y, [-1] * 4) == 0.0


def test_string_cluster_ids_with_default_noise():
    # string ids cannot equal the default noise id -1: nothing is noise
    y = [0, 0, 1]
    c = ["a", "a", "b"]
    assert clustering_error(y, c) == 1.0


# --------------------------------------------------------------------------------------------
# purity, accuracy
# --------------------------------------------------------------------------------------------


def test_purity_greater_than_ce_when_clusters_share_a_majority_class():
    y = [0, 0, 0, 0, 1]
    c = [0, 0, 1, 1, 1]
    # cluster 0 = [2, 0], cluster 1 = [2, 1]
    # purity = (2 + 2)/5 = 4/5; CE = max(2 + 1, 2 + 0)/5 = 3/5
    assert purity(y, c) == pytest.approx(4 / 5)
    assert clustering_error(y, c) == pytest.approx(3 / 5)


def test_accuracy_counts_no_class_as_wrong():
    y = [0, 1, 2, 1, 0]
    p = [0, 1, -1, 2, 0]
    # right, right, -1 (wrong), 2 != 1 (wrong), right -> 3/5
    assert accuracy(y, p) == pytest.approx(3 / 5)
    # -1 is wrong even when the true label itself is -1: 1 right of 2
    assert accuracy([-1, 0], [-1, 0]) == pytest.approx(1 / 2)
    assert accuracy([3, 3], [3, 3]) == 1.0


# --------------------------------------------------------------------------------------------
# NMI, ARI
# --------------------------------------------------------------------------------------------


def test_nmi_identical_partitions_is_one():
    y = [0, 0, 1, 1, 2]
    c = [4, 4, 7, 7, 1]
    assert nmi(y, c) == pytest.approx(1.0)
    assert nmi(y, c, average="geometric") == pytest.approx(1.0)


def test_nmi_independent_partitions_is_zero():
    # every class is split evenly over both clusters: p(y, c) = p(y) p(c) -> I(Y;C) = 0
    assert nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-12)


def test_nmi_known_value():
    y = [0, 0, 1, 1]
    c = [0, 0, 0, 1]
    # bits: H(Y) = 1; H(C) = h(3/4) = 2 - (3/4) log2 3 = 0.811278
    # H(C|Y) = 1/2 * 0 + 1/2 * 1 = 0.5  ->  I = H(C) - 0.5 = 0.311278
    h_c = 2 - 0.75 * math.log2(3)
    mi = h_c - 0.5
    # arithmetic: I / ((1 + H(C))/2) = 0.311278 / 0.905639 = 0.343711
    assert nmi(y, c) == pytest.approx(mi / ((1 + h_c) / 2))
    assert nmi(y, c) == pytest.approx(0.343711, abs=1e-6)
    # geometric: I / sqrt(1 * H(C)) = 0.311278 / 0.900710 = 0.345593
    assert nmi(y, c, average="geometric") == pytest.approx(mi / math.sqrt(h_c))
    assert nmi(y, c, average="geometric") == pytest.approx(0.345593, abs=1e-6)


def test_nmi_rejects_unknown_average():
    with pytest.raises(DataError, match="average"):
        nmi([0, 1], [0, 1], average="harmonic")


def test_ari_known_values():
    # n_ij = 2, 1, 1, 2 -> sum C(n_ij, 2) = 1 + 0 + 0 + 1 = 2
    # class sizes 3, 3 -> 3 + 3 = 6; cluster sizes 2, 2, 2 -> 1 + 1 + 1 = 3; C(6, 2) = 15
    # E = 6 * 3 / 15 = 1.2; max = (6 + 3)/2 = 4.5; ARI = (2 - 1.2)/(4.5 - 1.2) = 0.8/3.3 = 8/33
    assert ari([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(8 / 33)
    # n_ij all 1 -> 0; classes 1 + 1 = 2; clusters 1 + 1 = 2; C(4, 2) = 6
    # E = 2 * 2 / 6 = 2/3; max = 2; ARI = (0 - 2/3)/(2 - 2/3) = -1/2
    assert ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    assert ari([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# report, input types, validation
# --------------------------------------------------------------------------------------------


def test_clustering_report():
    y = [0, 0, 0, 1, 0, 1, 1, 1, 1, 1]
    c = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]  # the 3-cluster / 2-class case above
    rep = clustering_report(y, c)
    assert set(rep) == {"ce", "purity", "nmi", "nmi_geometric", "ari", "n_clusters"}
    assert rep["ce"] == pytest.approx(6 / 10)
    assert rep["purity"] == pytest.approx(8 / 10)
    assert rep["n_clusters"] == 3
    assert rep["nmi"] == pytest.approx(nmi(y, c))
    assert rep["nmi_geometric"] == pytest.approx(nmi(y, c, average="geometric"))
    assert rep["ari"] == pytest.approx(ari(y, c))
    rep = clustering_report(y, [-1] + c[1:], y_pred=[0] * 10)
    assert rep["n_clusters"] == 3  # noise is not a cluster
    assert rep["ce"] == pytest.approx(5 / 10)  # cluster 0 loses one class-0 sample to noise
    assert rep["accuracy"] == pytest.approx(4 / 10)  # four true 0s


def test_accepts_numpy_and_torch():
    y = [0, 0, 0, 1, 0, 1, 1, 1, 1, 1]
    c = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    for conv in (np.asarray, torch.tensor, lambda v: torch.tensor(v, dtype=torch.float32)):
        ce = clustering_error(conv(y), conv(c))
        assert isinstance(ce, float) and ce == pytest.approx(6 / 10)
        assert isinstance(purity(conv(y), conv(c)), float)
        assert isinstance(accuracy(conv(y), conv(y)), float)
        assert isinstance(nmi(conv(y), conv(c)), float)
        assert isinstance(ari(conv(y), conv(c)), float)


_TWO_ARG = [clustering_error, purity, accuracy, nmi, ari, contingency, clustering_report]


@pytest.mark.parametrize("fn", _TWO_ARG)
@pytest.mark.parametrize(
    ("a", "b", "msg"),
    [
        ([0, 1, 1], [0, 1], "length"),
        ([], [], "empty"),
        (np.zeros((3, 2)), np.zeros((3, 2)), "1-D"),
        ([0.0, float("nan")], [0, 1], "NaN"),
    ],
)
def test_bad_input_raises_data_error(fn, a, b, msg):
    with pytest.raises(DataError, match=msg):
        fn(a, b)
    assert issubclass(DataError, ValueError)


# --------------------------------------------------------------------------------------------
# general subspace form
# --------------------------------------------------------------------------------------------


def test_subspace_ce_hand_computed():
    # 4 samples x 2 dims
    true = [({0, 1}, {0, 1}), ({2, 3}, {0})]
    found = [({0, 1, 2}, {0}), ({3}, {0, 1})]
    # cov_T rows: [1,1] [1,1] [1,0] [1,0]; cov_F rows: [1,0] [1,0] [1,0] [1,1]
    # max rows:   [1,1] [1,1] [1,0] [1,1] -> U = 2 + 2 + 1 + 2 = 7
    # weights: F0-T0 = |{0,1}|*|{0}| = 2, F0-T1 = |{2}|*|{0}| = 1, F1-T0 = 0, F1-T1 = 1*1 = 1
    # best matching F0-T0 + F1-T1 = 3 (other: 1 + 0) -> CE = 3/7
    assert subspace_clustering_error(found, true, 4, 2) == pytest.approx(3 / 7)
    assert subspace_clustering_error(true, true, 4, 2) == 1.0


def test_subspace_ce_overlapping_duplicates():
    # a found cluster reported twice: cov_F = 2 on both cells, cov_T = 1 -> U = 4;
    # only one copy can be matched: Dmax = 2 * 1 = 2 -> CE = 1/2
    true = [({0, 1}, {0})]
    found = [({0, 1}, {0}), ({0, 1}, {0})]
    assert subspace_clustering_error(found, true, 2, 1) == pytest.approx(0.5)


def test_subspace_ce_validation():
    with pytest.raises(DataError, match="sample index"):
        subspace_clustering_error([({5}, {0})], [({0}, {0})], 2, 1)
    with pytest.raises(DataError, match="dimension index"):
        subspace_clustering_error([({0}, {3})], [({0}, {0})], 2, 1)
    with pytest.raises(DataError, match="cover no"):
        subspace_clustering_error([], [], 2, 1)
    with pytest.raises(DataError, match="positive"):
        subspace_clustering_error([], [({0}, {0})], 0, 1)


def _full_space(labels, n_dims, noise=None):
    labels = np.asarray(labels)
    ids = [k for k in np.unique(labels) if noise is None or k != noise]
    return [(set(np.flatnonzero(labels == k).tolist()), set(range(n_dims))) for k in ids]


def test_subspace_form_equals_ce_on_hand_case():
    y = [0, 0, 0, 1, 1, 1]
    c = [0, 0, -1, 1, 1, -1]
    # U = 6 samples * 3 dims = 18 (true classes cover every cell once); Dmax = 3 * 4 -> 12/18
    general = subspace_clustering_error(_full_space(c, 3, noise=-1), _full_space(y, 3), 6, 3)
    assert general == pytest.approx(4 / 6)
    assert general == pytest.approx(clustering_error(y, c))


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

_pairs = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.integers(-1, 5), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(_pairs, st.randoms(use_true_random=False))
def test_property_ce_le_purity_and_relabel_invariant(pair, rnd):
    y, c = pair
    ce = clustering_error(y, c)
    assert 0.0 <= ce <= purity(y, c) + 1e-12
    ids = sorted(set(c) - {-1})
    new_ids = rnd.sample(range(100, 200), len(ids))
    mapping = dict(zip(ids, new_ids))
    mapping[-1] = -1
    assert clustering_error(y, [mapping[k] for k in c]) == pytest.approx(ce)


@settings(max_examples=40, deadline=None)
@given(_pairs, st.integers(1, 3))
def test_property_general_form_equals_ce(pair, n_dims):
    y, c = pair
    general = subspace_clustering_error(
        _full_space(c, n_dims, noise=-1), _full_space(y, n_dims), len(y), n_dims
    )
    assert general == pytest.approx(clustering_error(y, c))
