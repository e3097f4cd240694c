"""Self-checks of the slow reference oracles (tests/oracles) against hand-computed cases.

The oracles are what the fast LARFDSSOM / SSSOM / BatchSSSOM estimators are tested against, so
here they are checked against SPEC.md by hand: kernels K1-K5, single online steps, the window,
the schedule and random stream, the batch rules, and SPEC §3's "B = 1 reduces exactly to §2".
"""

import math

import numpy as np
import pytest
import torch

try:  # pytest puts tests/ on sys.path; `python -m pytest` also puts the repository root there
    from oracles import (
        OracleBatchSSSOM,
        OracleSSSOM,
        activation,
        connected,
        node_update,
        relevance,
        round_half_away,
    )
    from oracles.sssom import OracleNode
except ImportError:  # pragma: no cover
    from tests.oracles import (
        OracleBatchSSSOM,
        OracleSSSOM,
        activation,
        connected,
        node_update,
        relevance,
        round_half_away,
    )
    from tests.oracles.sssom import OracleNode


def t32(*v):
    return torch.tensor(v, dtype=torch.float32)


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def close(a, b, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=0, atol=atol)


def kinds(model, kind):
    return [e for e in model.events_ if e["kind"] == kind]


BASE = dict(lp=0.01, beta=0.1, age_wins=1000.0, eb=0.2, en=0.5, s=0.05, minwd=0.0, epochs=1)


def online(**kw):
    """An online oracle ready for manual `present` calls (N = 1, m = 2)."""
    p = {**BASE, "at": 0.8, **kw}
    o = OracleSSSOM(**p)
    o.start(1, 2)
    return o


def batch(**kw):
    p = {**BASE, "at": 0.8, **kw}
    o = OracleBatchSSSOM(**p)
    o.start(1, 2)
    return o


# ---------------------------------------------------------------- kernels K1-K5
def test_k1_k2_activation_by_hand():
    x, c, w = t32(0.3, 0.4), t32(0.0, 0.0), t32(1.0, 0.5)
    s_sq = 0.09 + 0.5 * 0.16
    close(activation(x, c, w, "weighted"), 1.5 / (1.5 + math.sqrt(s_sq) + 1e-7))
    close(activation(x, c, w, "weighted_sq"), 1.5 / (1.5 + s_sq + 1e-7))
    a_same = activation(c, c, w, "weighted")  # x = c: direct form is exactly 0, no NaN
    assert torch.isfinite(a_same) and abs(a_same.item() - 1.0) < 1e-6
    with pytest.raises(ValueError):
        activation(x, c, w, "reference")


def test_k3_relevance_by_hand():
    # q = 0.5 * (0.3 - 0.1) = 0.1, mean 0.2 -> sigmoid(-(d - 0.2) / 0.1)
    close(relevance(t32(0.1, 0.2, 0.3), 0.5), [sig(1.0), 0.5, sig(-1.0)])
    close(relevance(t32(0.3, 0.1, 0.2), 0.5), [sig(-1.0), sig(1.0), 0.5])
    assert relevance(t32(0.2, 0.2, 0.2), 0.5).tolist() == [1.0, 1.0, 1.0]  # q = 0
    assert relevance(t32(0.0, 0.0), 0.5).tolist() == [1.0, 1.0]
    assert relevance(t32(0.0, 1.0), 0.0).tolist() == [1.0, 1.0]  # s = 0 -> q = 0
    w = relevance(t32(0.0, 1e-30, 1.0), 1e-3)  # huge exponents: sigmoid saturates, no overflow
    assert torch.isfinite(w).all()


def test_k4_update_by_hand_pull_and_push():
    n = OracleNode(t32(0.0, 0.0))
    node_update(n, t32(0.2, 0.6), 0.5, 0.1, 0.1)  # e*beta = 0.05, OLD centre in delta
    close(n.delta, [0.01, 0.03])
    # q = 0.1 * 0.02 = 0.002, mean 0.02 -> sigmoid(-(+-0.01) / 0.002) = sigmoid(+-5)
    close(n.omega, [sig(5.0), sig(-5.0)])
    close(n.c, [0.1, 0.3])
    m = OracleNode(t32(0.0, 0.0))
    node_update(m, t32(0.2, 0.6), -0.5, 0.1, 0.1)  # push: delta goes negative and is kept
    close(m.delta, [-0.01, -0.03])
    close(m.omega, [sig(-5.0), sig(5.0)])
    close(m.c, [-0.1, -0.3])
    # second update uses the current delta: (1 - 0.05) * d + 0.05 * |x - c|
    node_update(n, t32(0.2, 0.6), 0.5, 0.1, 0.1)
    close(n.delta, [0.95 * 0.01 + 0.05 * 0.1, 0.95 * 0.03 + 0.05 * 0.3])
    close(n.c, [0.15, 0.45])


def test_k5_connection_rule():
    a, b = OracleNode(t32(0, 0), 0), OracleNode(t32(0, 0), 0)
    b.omega = t32(1.0, 0.8)  # ||wa - wb|| = 0.2, squared 0.04
    assert connected(a, b, 0.25) and not connected(a, b, 0.15)
    assert connected(a, b, 0.05, "sq") and not connected(a, b, 0.03, "sq")
    b.cls = 1
    assert not connected(a, b, 0.25)
    b.cls = -1
    assert connected(a, b, 0.25)
    assert not connected(a, OracleNode(t32(0, 0)), 0.0)  # strict <: minwd = 0 gives no edges


def test_round_half_away_from_zero():
    assert [round_half_away(v) for v in (0.5, 1.5, 2.5, 1.49, -2.5, 0.0)] == [1, 2, 3, 1, -3, 0]


# ---------------------------------------------------------------- online steps (§2)
def test_two_samples_far_one_inserted_then_winner_and_neighbour_update():
    o = online(minwd=0.1)
    o.present([0.2, 0.2])
    o.present([0.8, 0.8])  # a = 2 / (2 + sqrt(0.72)) = 0.702 < 0.8 -> insert
    assert o.n_nodes_ == 2
    assert [(e["node"], e["source"]) for e in kinds(o, "insert")] == [(0, "init"), (1, "unsup")]
    close(o.prototypes_, [[0.2, 0.2], [0.8, 0.8]])
    assert o.deltas_.tolist() == [[0, 0], [0, 0]] and o.relevances_.tolist() == [[1, 1], [1, 1]]
    assert o.wins_.tolist() == [0, 0] and o.classes_.tolist() == [-1, -1]
    assert o.adjacency_.tolist() == [[False, True], [True, False]]  # equal omegas, dist 0 < 0.1
    o.present([0.3, 0.3])  # winner 0 (a = 0.934), neighbour 1; eb = 0.2, e_n = 0.1
    assert o.wins_.tolist() == [1, 0]
    close(o.prototypes_, [[0.22, 0.22], [0.75, 0.75]])
    close(o.deltas_, [[0.02 * 0.1] * 2, [0.01 * 0.5] * 2])
    assert o.t_ == 3 and o.n_nodes_ == 2


def test_insertion_respects_max_nodes_and_count_all_wins():
    o = online(max_nodes=1, count_all_wins=True)
    o.present([0.2, 0.2])
    o.present([0.8, 0.8])  # low activation, K = max_nodes: nothing but wins_s += 1
    assert o.n_nodes_ == 1 and o.wins_.tolist() == [1]
    o2 = online(max_nodes=1)
    o2.present([0.2, 0.2])
    o2.present([0.8, 0.8])
    assert o2.wins_.tolist() == [0]


def test_removal_at_window_end():
    o = online(age_wins=4.0, lp=0.3)  # N = 1 -> age_wins = 4; threshold lp * t = 1.2
    for x in ([0.2, 0.2], [0.8, 0.8], [0.2, 0.2], [0.2, 0.2]):
        o.present(x)
    assert o.n_nodes_ == 1
    close(o.prototypes_, [[0.2, 0.2]])
    assert [e["nodes"] for e in kinds(o, "remove")] == [[1]]
    assert [e["t"] for e in kinds(o, "window")] == [4]
    assert o.t_ == 0 and o.wins_.tolist() == [0]


def test_removal_keeps_one_node_most_wins_then_lowest_index():
    o = online(age_wins=4.0, lp=1.0)  # threshold 4: every node fails
    for x in ([0.2, 0.2], [0.8, 0.8], [0.8, 0.8], [0.8, 0.8]):
        o.present(x)
    close(o.prototypes_, [[0.8, 0.8]])  # node 1 had 2 wins
    assert kinds(o, "remove")[0]["nodes"] == [0]
    o = online(age_wins=2.0, lp=1.0)
    o.present([0.2, 0.2])
    o.present([0.8, 0.8])  # both 0 wins -> keep the lowest index
    close(o.prototypes_, [[0.2, 0.2]])


def test_supervised_compatible_step_labels_the_winner():
    o = online(minwd=0.5)
    o.present([0.2, 0.2])
    o.present([0.8, 0.8])
    o.present([0.25, 0.2], 1)
    assert o.classes_.tolist() == [1, -1] and o.wins_.tolist() == [1, 0]
    assert o.adjacency_.tolist() == [[False, True], [True, False]]  # 1 vs -1 stays connected
    o.present([0.8, 0.8], 0)
    assert o.classes_.tolist() == [1, 0]
    assert not o.adjacency_.any()  # incident edges of node 1 recomputed after labelling
    o.present([0.85, 0.8], 0)  # compatible, low activation? no: a = 0.976 -> update
    # both relevances are now ~(0, 1): only dimension 1 counts
    o.present([0.2, -0.4], 1)  # winner 0 (class 1), a = 0.625 < at -> insert with class 1
    assert o.classes_.tolist() == [1, 0, 1] and kinds(o, "insert")[-1]["source"] == "sup"


@pytest.mark.parametrize("minwd", [0.0, 0.5])
def test_supervised_conflict_push_and_pull(minwd):
    o = online(minwd=minwd, eb=0.2, epush=0.5, en=0.5, beta=0.1)
    o.present([0.2, 0.2], 0)
    o.present([0.8, 0.8])
    o.present([0.45, 0.45], 1)  # winner 0 (class 0) conflicts; s' = 1 (a = 0.8016 >= 0.8)
    assert o.n_nodes_ == 2 and o.classes_.tolist() == [0, -1]  # class of s' not changed
    assert o.wins_.tolist() == [0, 1]
    ep, en = 0.1, 0.1  # e_push = 0.5 * 0.2, e_n = 0.5 * 0.2
    d0, c0 = -ep * 0.1 * 0.25, 0.2 - ep * 0.25  # push of node 0 (old centre 0.2)
    if minwd > 0:  # node 0 (class 0) is a neighbour of s' (class -1): pulled after its push
        d0 = (1 - en * 0.1) * d0 + en * 0.1 * abs(0.45 - c0)
        c0 = c0 + en * (0.45 - c0)
    close(o.deltas_, [[d0, d0], [0.2 * 0.1 * 0.35] * 2])
    close(o.prototypes_, [[c0, c0], [0.73, 0.73]])


def test_supervised_conflict_without_candidate_inserts():
    o = online()
    o.present([0.2, 0.2], 0)
    o.present([0.3, 0.3], 1)  # winner 0 (a = 0.934, class 0), no s' -> insert, class 1
    assert o.classes_.tolist() == [0, 1]
    close(o.prototypes_, [[0.2, 0.2], [0.3, 0.3]])
    assert kinds(o, "insert")[-1]["source"] == "conflict" and o.wins_.tolist() == [0, 0]


def test_connection_refresh_always_reads_fresh_edges():
    kw = dict(minwd=0.5, beta=0.5, s=0.05)
    ev, al = online(**kw), online(connection_refresh="always", **kw)
    for o in (ev, al):
        o.present([0.2, 0.2])
        o.present([0.8, 0.8])
        o.present([0.2, 0.3])  # node 0's omega becomes non-uniform; edges stale under events
    assert ev.adjacency_[0, 1]
    # ||omega_0 - omega_1|| is now about 1 > 0.5: "always" drops the edge before the next update
    assert not connected(al.nodes[0], al.nodes[1], 0.5)
    before_ev, before_al = ev.prototypes_[1], al.prototypes_[1]
    ev.present([0.2, 0.2])
    al.present([0.2, 0.2])
    assert not np.allclose(ev.prototypes_[1], before_ev)  # stale edge: neighbour pulled
    np.testing.assert_array_equal(al.prototypes_[1], before_al)
    assert not al.adjacency_.any()


# ---------------------------------------------------------------- outputs (§2)
def labelled_map(**kw):
    o = online(**kw)
    o.present([0.2, 0.2])  # node 0, class -1
    o.present([0.8, 0.8], 1)  # a = 0.702 < 0.8: node 1, class 1
    assert o.classes_.tolist() == [-1, 1]
    return o


def test_predict_label_fallback_and_noise():
    X = [[0.2, 0.2], [0.8, 0.8], [3.0, 3.0]]
    o = labelled_map()
    assert o.predict(X).tolist() == [1, 1, 1]  # fallback "any", no noise filter
    assert o.predict_cluster(X).tolist() == [1, 1, 1]
    o.label_fallback = "within_at"  # a_1([0.2, 0.2]) = 0.702 < at: no labelled node qualifies
    assert o.predict(X).tolist() == [-1, 1, 1]
    assert o.predict_cluster(X).tolist() == [0, 1, 1]
    o.filter_noise = True
    assert o.predict(X).tolist() == [-1, 1, -1]
    assert o.predict_cluster(X).tolist() == [-1, 1, -1]
    o.label_fallback = "any"  # noise filtered, fallback still applies to non-noise
    assert o.predict(X).tolist() == [1, 1, -1]


def test_predict_without_labels_returns_cluster_ids():
    o = online()
    o.present([0.2, 0.2])
    o.present([0.8, 0.8])
    X = [[0.8, 0.8], [0.21, 0.2], [3.0, 3.0]]
    assert not o.saw_label_
    assert o.predict(X).tolist() == [1, 0, 1]
    o.filter_noise = True
    assert o.predict(X).tolist() == [1, 0, -1]
    assert o.predict_cluster(X).tolist() == [1, 0, -1]


def test_argmax_ties_go_to_lowest_index():
    o = online(at=0.5)
    o.present([0.25, 0.5], 5)
    o.present([0.75, 0.5], 7)  # a = 0.889 >= 0.5: conflict, no s' -> node 1, class 7
    assert o.classes_.tolist() == [5, 7]
    assert o.predict_cluster([[0.5, 0.5]]).tolist() == [0]  # exact tie: both at 0.25
    assert o.predict([[0.5, 0.5]]).tolist() == [5]
    o.nodes[0].cls = -1  # fallback among labelled nodes only
    assert o.predict([[0.5, 0.5]]).tolist() == [7]
    o.nodes[0].cls, o.nodes[1].cls = 5, 5
    o.present([0.5, 0.5], 6)  # conflict: no s' among class {6, -1}; both tie as winner
    assert o.classes_.tolist() == [5, 5, 6]
    o.nodes[1].cls = -1
    before = o.prototypes_
    o.present([0.5, 0.5], 5)  # winner 2 (a = 1, class 6) conflicts; s' tie 0 vs 1 -> node 0
    assert o.wins_.tolist()[:2] == [1, 0]
    assert not np.array_equal(o.prototypes_[0], before[0])
    np.testing.assert_array_equal(o.prototypes_[1], before[1])


# ---------------------------------------------------------------- schedule and randomness
def test_fit_stream_permutations_and_random_init():
    X = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    o = OracleSSSOM(at=0.9, epochs=2, convergence="none", seed=42, init="random").fit(X)
    g = torch.Generator().manual_seed(42)
    x0 = torch.rand(3, generator=g)
    perms = torch.randperm(5, generator=g).tolist() + torch.randperm(5, generator=g).tolist()
    assert o.presented_ == perms
    assert o.events_[0]["source"] == "init_random"
    o2 = OracleSSSOM(at=0.9, epochs=0, convergence="none", seed=42, init="random").fit(X)
    close(o2.prototypes_, [x0.tolist()])
    o3 = OracleSSSOM(at=0.9, epochs=2, convergence="none", seed=7, sampling="replacement").fit(X)
    g = torch.Generator().manual_seed(7)
    draws = [torch.randint(0, 5, (5,), generator=g).tolist() for _ in range(2)]
    assert o3.presented_ == draws[0] + draws[1]
    b = OracleBatchSSSOM(at=0.9, epochs=2, convergence="none", seed=42, batch_size=2).fit(X)
    g = torch.Generator().manual_seed(42)
    perms = torch.randperm(5, generator=g).tolist() + torch.randperm(5, generator=g).tolist()
    assert b.presented_ == perms and b.n_steps_ == 6  # ceil(5 / 2) = 3 batches per epoch


def test_convergence_phase_a_b_c():
    X = np.random.default_rng(1).random((10, 2)).astype(np.float32)
    kw = dict(at=0.99, lp=0.0, age_wins=0.3, epochs=1, seed=3, max_nodes=50)
    o = OracleSSSOM(**kw).fit(X)  # age_wins = 3: windows at 3, 6, 9; t = 1 after 10 samples
    g = torch.Generator().manual_seed(3)
    stream = torch.randperm(10, generator=g).tolist() + torch.randperm(10, generator=g).tolist()
    assert o.age_wins_ == 3
    assert o.presented_ == stream[:15]  # 10 + (a) 2 + (c) 3, same stream
    wins = kinds(o, "window")
    assert [e["step"] for e in wins] == [3, 6, 9, 12, 15]
    assert o.max_nodes_ == len([e for e in o.events_ if e["kind"] == "insert" and e["step"] < 12])
    assert not [e for e in kinds(o, "insert") if e["step"] >= 12]  # no insertion in (c)
    b = OracleBatchSSSOM(**kw, batch_size=4).fit(X)  # batches of 4,4,2; window at t >= 3
    assert [e["t"] for e in kinds(b, "window")] == [4, 4, 6, 4]
    assert b.presented_ == stream[:18]  # (a) one batch (t = 2 -> 6), (c) one batch (t = 4)


# ---------------------------------------------------------------- batch rules (§3)
def test_batch_empty_map_init_one_node_per_label():
    b = batch()
    X = [[0.1, 0.1], [0.9, 0.9], [0.5, 0.5], [0.3, 0.1]]
    b.present_batch(X, [1, -1, 0, 1])
    assert b.classes_.tolist() == [0, 1, -1]
    close(b.prototypes_, [[0.5, 0.5], [0.2, 0.1], [0.9, 0.9]])
    assert b.t_ == 4 and b.wins_.tolist() == [0, 0, 0]
    c = batch(count_unit="batch", max_nodes=2)
    c.present_batch(X, [1, -1, 0, 1])
    assert c.classes_.tolist() == [0, 1] and c.t_ == 1


@pytest.mark.parametrize("clone_wins", ["zero", "copy"])
def test_batch_clone_for_several_labels_on_unlabelled_winner(clone_wins):
    b = batch(clone_wins=clone_wins, minwd=0.5)
    b.present_batch([[0.5, 0.5]], [-1])
    b.present_batch([[0.5, 0.5]], [-1])  # stage U: wins 1, x = c leaves the node unchanged
    b.present_batch([[0.5, 0.52], [0.5, 0.48], [0.52, 0.5]], [2, 0, 2])
    assert b.classes_.tolist() == [0, 2]
    assert [(e["node"], e["of"], e["cls"]) for e in kinds(b, "clone")] == [(1, 0, 2)]
    assert b.wins_.tolist() == [2, 2 if clone_wins == "zero" else 3]
    close(b.prototypes_, [[0.5, 0.496], [0.502, 0.502]])
    close(b.deltas_, [[0.0, 0.0004], [0.0002, 0.0002]])
    close(b.relevances_[0], [sig(10.0), sig(-10.0)], atol=1e-5)  # q = 0.05 * 0.0004
    assert not b.adjacency_.any()  # classes 0 and 2
    c = batch(max_nodes=1)
    c.present_batch([[0.5, 0.5]], [-1])
    c.present_batch([[0.5, 0.52], [0.5, 0.48], [0.52, 0.5]], [2, 0, 2])
    assert c.n_nodes_ == 1 and c.classes_.tolist() == [0]  # label 2 dropped (no capacity)
    close(c.prototypes_, [[0.5, 0.496]])


def test_batch_conflict_candidate_class_read_after_step3():
    b = batch()
    b.present_batch([[0.3, 0.3], [0.5, 0.5]], [0, -1])
    b.present_batch([[0.36, 0.36], [0.5, 0.5]], [1, 2])
    # node 1 takes label 2 in step 3, so the conflict sample has no s' and becomes a node
    assert b.classes_.tolist() == [0, 2, 1]
    close(b.prototypes_, [[0.3, 0.3], [0.5, 0.5], [0.36, 0.36]])
    o = batch()
    o.present_batch([[0.3, 0.3], [0.5, 0.5]], [0, -1])
    o.present_batch([[0.36, 0.36]], [1])  # alone: s' = node 1 (class -1), push + pull
    assert o.classes_.tolist() == [0, -1] and o.wins_.tolist() == [0, 1]
    close(o.prototypes_, [[0.3 - 0.1 * 0.06] * 2, [0.5 - 0.2 * 0.14] * 2])


@pytest.mark.parametrize("mode", ["grouped", "per_sample"])
def test_batch_conflict_grouped_vs_per_sample(mode):
    b = batch(conflict_update=mode)
    b.present_batch([[0.3, 0.3], [0.5, 0.5]], [0, -1])
    xs = [[0.36, 0.36], [0.34, 0.36]]
    b.present_batch(xs, [1, 1])
    n0, n1 = OracleNode(t32(0.3, 0.3), 0), OracleNode(t32(0.5, 0.5))
    if mode == "grouped":
        xm = (t32(*xs[0]) + t32(*xs[1])) / 2
        node_update(n0, xm, -0.1, 0.1, 0.05)
        node_update(n1, xm, 0.2, 0.1, 0.05)
    else:
        for x in xs:
            node_update(n0, t32(*x), -0.1, 0.1, 0.05)
        for x in xs:
            node_update(n1, t32(*x), 0.2, 0.1, 0.05)
    assert b.wins_.tolist() == [0, 2]
    close(b.prototypes_, [n0.c.tolist(), n1.c.tolist()])
    close(b.deltas_, [n0.delta.tolist(), n1.delta.tolist()])


def test_batch_unsupervised_insertion_order_and_capacity():
    X = [[0.9, 0.5], [0.5, 0.0], [0.7, 0.5]]  # a = 0.833, 0.800, 0.909 (< at = 0.95)
    g = batch(at=0.95, unsup_insert="per_sample", max_nodes=3)
    g.present_batch([[0.5, 0.5]], [-1])
    g.present_batch(X, [-1, -1, -1])
    close(g.prototypes_, [[0.5, 0.5], [0.5, 0.0], [0.9, 0.5]])  # most novel first, greedy
    a = batch(at=0.95, unsup_insert="per_sample", max_nodes=3, capacity="all_or_nothing")
    a.present_batch([[0.5, 0.5]], [-1])
    a.present_batch(X, [-1, -1, -1])
    assert a.n_nodes_ == 1  # K + 3 = 4 >= 3: none
    a5 = batch(at=0.95, unsup_insert="per_sample", max_nodes=5, capacity="all_or_nothing")
    a5.present_batch([[0.5, 0.5]], [-1])
    a5.present_batch(X, [-1, -1, -1])
    close(a5.prototypes_, [[0.5, 0.5], [0.5, 0.0], [0.9, 0.5], [0.7, 0.5]])
    gr = batch(at=0.95)
    gr.present_batch([[0.5, 0.5]], [-1])
    gr.present_batch(X, [-1, -1, -1])
    close(gr.prototypes_, [[0.5, 0.5], [0.7, 1.0 / 3.0]])  # one node at the group mean


def test_batch_grouped_unsupervised_update_and_count_unit():
    X = [[0.5, 0.52], [0.5, 0.48], [0.54, 0.5]]
    for unit, wins, t in (("sample", 3, 4), ("batch", 1, 2)):
        b = batch(count_unit=unit)
        b.present_batch([[0.5, 0.5]], [-1])
        b.present_batch(X, [-1, -1, -1])
        assert b.wins_.tolist() == [wins] and b.t_ == t
        xm = [(0.5 + 0.5 + 0.54) / 3, (0.52 + 0.48 + 0.5) / 3]  # one group, mean pulled once
        close(b.prototypes_, [[0.5 + 0.2 * (xm[0] - 0.5), 0.5 + 0.2 * (xm[1] - 0.5)]])


def test_batch_stage_s_insertions_sorted_by_novelty_across_steps_2_and_4():
    # node 0 (class 0) at (0.2, 0.2); at = 0.9. A: label 0, a = 0.741 -> step-2 candidate.
    # B: label 1, a = 0.727, conflict without s' -> step-4 candidate (more novel, goes first).
    X, y = [[0.9, 0.2], [0.2, 0.95]], [0, 1]
    g = batch(at=0.9, max_nodes=2)
    g.present_batch([[0.2, 0.2]], [0])
    g.present_batch(X, y)
    assert g.classes_.tolist() == [0, 1]
    close(g.prototypes_, [[0.2, 0.2], [0.2, 0.95]])
    g3 = batch(at=0.9, max_nodes=3)
    g3.present_batch([[0.2, 0.2]], [0])
    g3.present_batch(X, y)
    assert g3.classes_.tolist() == [0, 1, 0]
    assert [e["source"] for e in kinds(g3, "insert")] == ["init", "conflict", "sup"]
    # all_or_nothing: calls per (step, winner), step 2 first -> A fits, then B does not
    a = batch(at=0.9, max_nodes=2, capacity="all_or_nothing")
    a.present_batch([[0.2, 0.2]], [0])
    a.present_batch(X, y)
    assert a.classes_.tolist() == [0, 0]
    close(a.prototypes_, [[0.2, 0.2], [0.9, 0.2]])


def test_batch_stage_u_sees_nodes_inserted_by_stage_s():
    b = batch()
    b.present_batch([[0.2, 0.2]], [-1])
    b.present_batch([[0.9, 0.9], [0.9, 0.9]], [-1, 1])  # S inserts (0.9, 0.9), U then wins it
    assert b.classes_.tolist() == [-1, 1] and b.wins_.tolist() == [0, 1]
    assert [e["source"] for e in kinds(b, "insert")] == ["init", "sup"]


def test_batch_labelled_conflict_clone_mode():
    b = batch(labelled_conflict="clone")
    b.present_batch([[0.5, 0.5]], [0])
    b.present_batch([[0.5, 0.52], [0.5, 0.48], [0.52, 0.5]], [2, 0, 2])
    assert b.classes_.tolist() == [0, 2] and b.wins_.tolist() == [1, 2]
    assert not kinds(b, "push")
    close(b.prototypes_, [[0.5, 0.496], [0.502, 0.502]])
    p = batch()  # push mode: the label-2 samples conflict; no s' -> one step-4 candidate
    p.present_batch([[0.5, 0.5]], [0])
    p.present_batch([[0.5, 0.52], [0.5, 0.48], [0.52, 0.5]], [2, 0, 2])
    assert p.classes_.tolist() == [0, 2]
    close(p.prototypes_, [[0.5, 0.496], [0.51, 0.51]])


# ---------------------------------------------------------------- B = 1 reduces to §2
def _data(seed, n=26, m=3, frac_unlabelled=0.5):
    rng = np.random.default_rng(seed)
    centres = rng.random((3, m))
    y = rng.integers(0, 3, n)
    X = np.clip(centres[y] + 0.12 * rng.standard_normal((n, m)), 0, 1).astype(np.float32)
    y[rng.random(n) < frac_unlabelled] = -1
    return X, y


BATCH_ONLY = {
    "batch_size",
    "capacity",
    "unsup_insert",
    "conflict_update",
    "count_unit",
    "clone_wins",
    "labelled_conflict",
}
B1_PARAMS = dict(at=0.9, lp=0.05, beta=0.3, age_wins=0.7, eb=0.2, en=0.4, s=0.05, minwd=0.4)
B1_PARAMS.update(epochs=3, epush=0.6, max_nodes=40)
B1_FLAGS = [
    {},
    {"minwd": 1.0},
    {"distance": "weighted_sq", "conn_metric": "sq", "count_all_wins": True},
    {"connection_refresh": "always", "label_fallback": "within_at", "filter_noise": True},
    {"connection_refresh": "always", "minwd": 1.0, "age_wins": 2.0, "lp": 0.1},
    {"init": "random", "sampling": "replacement", "max_nodes": 5, "capacity": "all_or_nothing"},
    {"convergence": "none", "unsup_insert": "per_sample", "conflict_update": "per_sample"},
    {"count_unit": "batch", "clone_wins": "copy", "max_nodes": 4, "minwd": 1.0},
]


def _fit_pair(X, y, seed, flags):
    kw_b = {**B1_PARAMS, "seed": seed, **flags}
    kw_o = {k: v for k, v in kw_b.items() if k not in BATCH_ONLY}
    return OracleSSSOM(**kw_o).fit(X, y), OracleBatchSSSOM(**kw_b, batch_size=1).fit(X, y)


def _assert_same(o, b, seed):
    assert o.presented_ == b.presented_
    assert o.n_nodes_ == b.n_nodes_
    np.testing.assert_allclose(o.prototypes_, b.prototypes_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(o.prototypes_, b.prototypes_)  # in fact bit for bit
    np.testing.assert_array_equal(o.relevances_, b.relevances_)
    np.testing.assert_array_equal(o.deltas_, b.deltas_)
    assert o.classes_.tolist() == b.classes_.tolist()
    assert o.wins_.tolist() == b.wins_.tolist()
    assert o.adjacency_.tolist() == b.adjacency_.tolist()
    assert o.events_ == b.events_
    assert o.update_counts_ == b.update_counts_
    Xt = np.random.default_rng(100 + seed).random((15, o.n_features_in_)).astype(np.float32)
    assert o.predict(Xt).tolist() == b.predict(Xt).tolist()
    assert o.predict_cluster(Xt).tolist() == b.predict_cluster(Xt).tolist()


@pytest.mark.parametrize("flags", B1_FLAGS, ids=lambda f: ",".join(f) or "defaults")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_size_one_reduces_to_online(seed, flags):
    X, y = _data(seed)
    _assert_same(*_fit_pair(X, y, seed, flags), seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_size_one_reduces_to_online_unlabelled(seed):
    X, _ = _data(seed)  # LARFDSSOM as in C++: no labels, sq distance, random node, replacement
    flags = dict(distance="weighted_sq", count_all_wins=True, init="random", filter_noise=True)
    o, b = _fit_pair(X, None, seed, {**flags, "sampling": "replacement", "at": 0.95})
    _assert_same(o, b, seed)
    assert not o.saw_label_ and (o.classes_ == -1).all()
    Xt = np.random.default_rng(seed).random((20, 3)).astype(np.float32)
    assert o.predict(Xt).tolist() == o.predict_cluster(Xt).tolist()


def test_b1_equivalence_runs_exercise_every_rule():
    counts = {"push": 0, "winner": 0, "neighbour": 0, "insert": 0, "remove": 0}
    sources = set()
    for seed in range(4):
        X, y = _data(seed)
        o, _ = _fit_pair(X, y, seed, {"minwd": 1.0})
        for k, v in o.update_counts_.items():
            counts[k] += v
        counts["insert"] += len(kinds(o, "insert"))
        counts["remove"] += len(kinds(o, "remove"))
        sources |= {e["source"] for e in kinds(o, "insert")}
        assert (o.classes_ >= 0).any() and (o.predict(X) >= 0).any()
    assert min(counts.values()) >= 5, counts
    assert sources == {"init", "unsup", "sup", "conflict"}
