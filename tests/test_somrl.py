"""SOMRL layer (SPEC.md §6): a plain loop reference, gradients, insertion, removal, persistence."""

import math

import numpy as np
import pytest
import torch
from scipy.special import expit

from somlab.nn import SOMRL

# --------------------------------------------------------------------------- plain reference


def _k3(delta, s):
    q = s * (delta.max() - delta.min())
    if q > 0 and math.isfinite(q):
        return expit(-(delta - delta.mean()) / q)
    return np.ones_like(delta)


def _act(x, c, om, kernel):
    S = float(np.sum(om * (x - c) ** 2))
    D = S if kernel == "weighted_sq" else math.sqrt(S)
    return om.sum() / (om.sum() + D + 1e-7)


def ref_step(st, X, p):
    """SPEC.md §6 forward, one sample/group/node at a time, float64; returns event counts."""
    C, Dl, Om, life, act = (st[k].copy() for k in ("C", "D", "Om", "life", "act"))
    ev = dict(insert=0, repel=0, merge=0, capped=0, ranked=0, full=0, dead=0)
    if not act.any():
        C[0], Dl[0], Om[0], life[0], act[0] = X.mean(0), 0.0, 1.0, 1.0, True
        return dict(C=C, D=Dl, Om=Om, life=life, act=act), ev
    nodes = [j for j in range(len(act)) if act[j]]
    high, low, winners = {}, {}, []
    for x in X:
        acts = [_act(x, C[j], Om[j], p["kernel"]) for j in nodes]
        best = max(range(len(nodes)), key=lambda r: (acts[r], -r))
        j, a = nodes[best], acts[best]
        winners.append((j, a))
        (high if a >= p["at"] else low).setdefault(j, []).append(x)
    novel = sorted(
        (_act(np.mean(xs, 0), C[j], Om[j], p["kernel"]), j, np.mean(xs, 0)) for j, xs in low.items()
    )

    def insert():
        for _, _, xg in novel:
            free = [j for j in range(len(act)) if not act[j]]
            if not free:
                ev["full"] += 1
                break
            C[free[0]], Dl[free[0]], Om[free[0]], life[free[0]], act[free[0]] = xg, 0, 1, 1, True
            ev["insert"] += 1

    old_nodes = nodes
    if p["order"] == "insert_first":  # the update sees the new nodes
        insert()
        nodes = [j for j in range(len(act)) if act[j]]
    cbar = np.mean([C[j] for j in nodes], axis=0)
    if p["ranks"] == "sample":
        groups = [(j, x) for j in sorted(high) for x in high[j]]
    else:
        groups = [(j, np.mean(high[j], axis=0)) for j in sorted(high)]
    contrib = {}
    for j, xg in groups:
        a = {k: _act(xg, C[k], Om[k], p["kernel"]) for k in nodes}
        others = sorted((k for k in nodes if k != j and a[k] >= p["at"]), key=lambda k: (-a[k], k))
        ev["ranked"] += len(others) >= 2
        for r, k in enumerate([j] + others):
            h = math.exp(-p["gamma"] * r) if p["neigh"] == "exp_mul" else math.exp(-r / p["gamma"])
            contrib.setdefault(k, []).append((p["lr"] * h, xg))
    newC = C.copy()
    for k, items in contrib.items():
        W = sum(e for e, _ in items)
        if W == 0:
            continue
        xt = sum(e * x for e, x in items) / W
        e = min(W, 1.0)
        c = C[k]
        R = np.empty_like(c)
        for d in range(len(c)):
            dd = cbar[d] - c[d]
            if p["repel_rule"] == "signed":
                R[d] = np.sign(dd) * max(1 - 2 * abs(dd), 0.0)
            else:
                R[d] = max(1 - 2 * dd, 0.0)
        newC[k] = c + e * ((xt - c) - p["repel"] * R)
        ref = newC[k] if p["delta_rule"] == "new" else c
        Dl[k] = (1 - p["beta"] * e) * Dl[k] + p["beta"] * e * np.abs(xt - ref)
        Om[k] = _k3(Dl[k], p["s"])
        ev["merge"] += len(items) >= 2
        ev["capped"] += W > 1
        ev["repel"] += bool(p["repel"] > 0 and np.any(R != 0))
    C[:] = newC
    if p["order"] == "update_first":
        insert()
    won = {j for j, a in winners if p["life_rule"] == "argmax" or a >= p["at"]}
    for j in old_nodes:  # nodes inserted in this call are kept
        if j in won:
            life[j] = 1.0
        else:
            life[j] -= p["life_decay"]
            if life[j] <= 1e-6:
                C[j], Dl[j], Om[j], life[j], act[j] = 0, 0, 1, 0, False
                ev["dead"] += 1
    return dict(C=C, D=Dl, Om=Om, life=life, act=act), ev


def ref_loss(st, X, p):
    nodes = [j for j in range(len(st["act"])) if st["act"][j]]
    terms = []
    for x in X:
        acts = [_act(x, st["C"][j], st["Om"][j], p["kernel"]) for j in nodes]
        best = max(range(len(nodes)), key=lambda r: (acts[r], -r))
        if acts[best] >= p["at"]:
            j = nodes[best]
            terms.append(float(np.sum(st["Om"][j] * (x - st["C"][j]) ** 2)))
    return float(np.mean(terms)) if terms else 0.0


def empty_state(n_max, m):
    return dict(
        C=np.zeros((n_max, m)),
        D=np.zeros((n_max, m)),
        Om=np.ones((n_max, m)),
        life=np.zeros(n_max),
        act=np.zeros(n_max, bool),
    )


BASE = dict(
    at=0.88,
    lr=0.8,
    repel=0.5,
    life_decay=0.5,
    beta=0.4,
    gamma=0.7,
    s=0.3,
    n_max=6,
    kernel="weighted_sq",
    neigh="exp_mul",
    repel_rule="signed",
    life_rule="argmax",
    order="update_first",
    ranks="group",
    delta_rule="new",
)


def scenario(seed):
    """Random batches in [0,1]^3, then batches crowded in one corner so that other nodes die."""
    rng = np.random.default_rng(seed)
    batches = [rng.random((int(rng.integers(5, 25)), 3)) for _ in range(6)]
    batches += [0.15 * rng.random((10, 3)) for _ in range(3)]
    batches += [rng.random((15, 3)) for _ in range(3)]
    return batches


@pytest.mark.parametrize(
    "flags",
    [
        {},
        dict(kernel="weighted", neigh="exp_div", gamma=2.0),
        dict(repel_rule="literal", life_rule="above_at", repel=0.2, at=0.85),
        dict(order="insert_first", ranks="sample", delta_rule="old", n_max=4),
        dict(ranks="sample", lr=0.3),
    ],
)
def test_matches_plain_reference(flags):
    p = {**BASE, **flags}
    som = SOMRL(3, **p, dtype=torch.float64)
    st = empty_state(p["n_max"], 3)
    events = dict(insert=0, repel=0, merge=0, capped=0, ranked=0, full=0, dead=0)
    for seed in (0, 1):
        for X in scenario(seed):
            st, ev = ref_step(st, X, p)
            events = {k: events[k] + ev[k] for k in events}
            loss = som(torch.from_numpy(X))
            np.testing.assert_array_equal(som.active.numpy(), st["act"])
            np.testing.assert_allclose(som.centres.numpy(), st["C"], atol=1e-6, rtol=0)
            np.testing.assert_allclose(som.delta.numpy(), st["D"], atol=1e-6, rtol=0)
            np.testing.assert_allclose(som.omega.numpy(), st["Om"], atol=1e-6, rtol=0)
            np.testing.assert_allclose(som.life.numpy(), st["life"], atol=1e-6, rtol=0)
            assert float(loss) == pytest.approx(ref_loss(st, X, p), abs=1e-9)
    # the scenario exercised every rule (counts from the reference)
    assert all(v > 0 for v in events.values()), str(events)


def test_rank_ties_go_to_the_lower_slot():
    # nodes 1 and 2 sit symmetrically around node 0 (dyadic values: an exact activation tie)
    p = {**BASE, "at": 0.95}
    st = empty_state(p["n_max"], 2)
    st["C"][:3] = [[0.5, 0.5], [0.625, 0.5], [0.375, 0.5]]
    st["life"][:3], st["act"][:3] = 1.0, True
    som = SOMRL(2, **p, dtype=torch.float64)
    names = dict(centres="C", delta="D", omega="Om", life="life", active="act")
    som.load_state_dict({k: torch.from_numpy(st[v]) for k, v in names.items()})
    X = np.array([[0.5, 0.5], [0.5, 0.5]])
    st, _ = ref_step(st, X, p)
    som(torch.from_numpy(X))
    np.testing.assert_allclose(som.centres.numpy(), st["C"], atol=1e-12, rtol=0)
    # slot 1 got rank 1 (rate lr h(1)), slot 2 rank 2: their moves are not mirror images
    assert abs(st["C"][1, 0] - 0.625) > abs(st["C"][2, 0] - 0.375) > 0


# --------------------------------------------------------------------------------- gradients


def trained(seed=0, **kw):
    torch.manual_seed(seed)
    som = SOMRL(3, **{**BASE, **kw})
    for _ in range(8):
        som(torch.rand(30, 3))
    return som


def test_gradcheck_of_loss():
    som = trained().double()
    Z = torch.rand(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a = som._activations(Z).max(1).values
    assert (a >= som.at).any(), "crafted Z must have samples inside the threshold"
    Z.requires_grad_(True)
    assert torch.autograd.gradcheck(som.loss, (Z,), eps=1e-6, atol=1e-7)


def test_invariants_over_many_batches():
    torch.manual_seed(1)
    som = SOMRL(4, at=0.95, n_max=12, life_decay=0.3)
    for t in range(80):
        n = int(torch.randint(1, 40, ()))
        Z = torch.rand(n, 4) ** (1 + t % 3)  # drifting distributions
        loss = som(Z)
        assert 1 <= som.n_active <= som.n_max
        om = som.relevances
        assert ((om >= 0) & (om <= 1)).all()
        assert torch.isfinite(loss) and loss >= 0
        life = som.life[som.active]
        assert ((life > 0) & (life <= 1)).all()
        pred = som.predict(Z)
        assert pred.dtype == torch.long and 0 <= pred.min() and pred.max() < som.n_active


# ---------------------------------------------------------------------- insertion and removal


def test_insertion_at_far_cluster_and_capacity():
    som = SOMRL(2, at=0.95, n_max=2, life_decay=0.1)
    A = torch.tensor([[0.10, 0.10], [0.12, 0.08], [0.09, 0.11]])
    B = torch.tensor([[0.90, 0.85], [0.88, 0.90], [0.92, 0.88]])
    som(A)
    assert som.n_active == 1
    torch.testing.assert_close(som.prototypes[0], A.mean(0))
    som(torch.cat([A, B]))
    assert som.n_active == 2
    torch.testing.assert_close(som.prototypes[1], B.mean(0))  # inserted, not updated this call
    assert som.active[:2].all()  # lowest free slot
    som(torch.tensor([[0.1, 0.9], [0.12, 0.88]]))  # a third far cluster: no room
    assert som.n_active == 2
    assert som.predict(torch.cat([A, B])).tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("ld", [0.25, 0.3, 0.5])
def test_loser_decays_and_is_removed_after_ceil_one_over_ld_calls(ld):
    som = SOMRL(2, at=0.95, n_max=4, life_decay=ld)
    near = torch.tensor([[0.1, 0.1], [0.11, 0.1]])
    som(near)
    som(torch.cat([near, torch.tensor([[0.9, 0.9]])]))  # node 1 inserted at (0.9, 0.9)
    assert som.n_active == 2 and som.life[1] == 1.0
    calls = math.ceil(1 / ld)
    for t in range(1, calls + 1):
        som(near)
        if t < calls:
            assert som.n_active == 2
            assert float(som.life[1]) == pytest.approx(1 - t * ld, abs=1e-6)
            assert som.life[0] == 1.0
    assert som.n_active == 1 and not som.active[1]


def test_node_inserted_in_the_call_is_kept():
    som = SOMRL(2, at=0.95, n_max=4, life_decay=1.0)
    som(torch.tensor([[0.1, 0.1]]))
    som(torch.tensor([[0.1, 0.1], [0.9, 0.9]]))
    assert som.n_active == 2
    # (0.5, 0.1) wins node 0 below at: inserted (step 5, into slot 2 as slot 1 is still in use);
    # then node 1, which won nothing, dies (step 6) while the new node, which won nothing, stays
    som(torch.tensor([[0.1, 0.1], [0.5, 0.1]]))
    assert som.active.tolist() == [True, False, True, False]
    torch.testing.assert_close(som.centres[2], torch.tensor([0.5, 0.1]))
    assert som.life[2] == 1.0


def test_topology_is_mutual_activation():
    som = trained(2)
    adj = som.topology()
    C, om = som.prototypes, som.relevances
    K = som.n_active
    for i in range(K):
        for j in range(K):
            aij = om[j].sum() / (om[j].sum() + (om[j] * (C[i] - C[j]) ** 2).sum() + 1e-7)
            aji = om[i].sum() / (om[i].sum() + (om[i] * (C[j] - C[i]) ** 2).sum() + 1e-7)
            assert bool(adj[i, j]) == (i != j and bool(aij >= som.at) and bool(aji >= som.at))


# ------------------------------------------------------------------------------ persistence


def test_state_dict_round_trip():
    som = trained(4)
    assert 1 < som.n_active < som.n_max or som.n_active == som.n_max
    other = SOMRL(3, **BASE)
    other.load_state_dict(som.state_dict())
    Z = torch.rand(50, 3, generator=torch.Generator().manual_seed(5))
    assert other.n_active == som.n_active
    assert torch.equal(other.predict(Z), som.predict(Z))
    assert torch.equal(other.loss(Z), som.loss(Z))
    assert torch.equal(other.topology(), som.topology())
    assert set(som.state_dict()) == {"centres", "delta", "omega", "life", "active"}


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_features=0),
        dict(at=0.0),
        dict(at=1.5),
        dict(lr=0.0),
        dict(repel=-0.1),
        dict(life_decay=2.0),
        dict(beta=0.0),
        dict(gamma=0.0),
        dict(s=-1.0),
        dict(n_max=0),
        dict(n_max=2.5),
        dict(kernel="euclid"),
        dict(neigh="gauss"),
        dict(repel_rule="abs"),
        dict(life_rule="never"),
        dict(at=float("nan")),
    ],
)
def test_invalid_parameters(kw):
    name = next(iter(kw))
    args = {"n_features": 3, **kw}
    with pytest.raises(ValueError, match=name):
        SOMRL(**args)


def test_invalid_inputs():
    som = SOMRL(3)
    with pytest.raises(ValueError, match="2-D"):
        som(torch.rand(3))
    with pytest.raises(ValueError, match="n_features=3"):
        som(torch.rand(4, 2))
    with pytest.raises(ValueError, match="2-D"):
        som(torch.rand(0, 3))
    with pytest.raises(ValueError, match="NaN"):
        som(torch.tensor([[0.1, float("nan"), 0.2]]))
    with pytest.raises(ValueError, match="squared distances overflow"):
        som(torch.rand(4, 3) * 1e20)  # finite, but its squares are not in float32
    with pytest.raises(RuntimeError, match="empty"):
        som.predict(torch.rand(2, 3))
    assert som.n_active == 0  # rejected inputs did not touch the map


# --------------------------------------------------------------------------- inside a network


def test_trains_inside_a_network():
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.Sigmoid())
    som = SOMRL(3, at=0.9, n_max=10)
    assert list(som.parameters()) == []
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    X = torch.rand(64, 5)
    before = enc[0].weight.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        loss = som(enc(X))
        loss.backward()
        assert enc[0].weight.grad is not None and enc[0].weight.grad.abs().sum() > 0
        opt.step()
    assert not torch.equal(before, enc[0].weight)
    assert not som.prototypes.requires_grad and not som.centres.requires_grad
    assert float(som.loss(enc(X)).detach()) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu = SOMRL(3, **BASE, dtype=torch.float64)
    gpu = SOMRL(3, **BASE, dtype=torch.float64).to("cuda")
    for X in scenario(0):
        Z = torch.from_numpy(X)
        lc, lg = cpu(Z), gpu(Z.cuda())
        assert torch.equal(cpu.active, gpu.active.cpu())
        torch.testing.assert_close(gpu.centres.cpu(), cpu.centres)
        torch.testing.assert_close(lg.cpu(), lc)


# --------------------------------------------------------------------------- refine (issue 15)
def _trained_map(kernel, seed=0):
    g = torch.Generator().manual_seed(seed)
    Z = torch.rand(400, 3, generator=g, dtype=torch.float64)
    som = SOMRL(3, at=0.9, n_max=10, kernel=kernel, dtype=torch.float64)
    for _ in range(20):
        som(Z[torch.randperm(400, generator=g)[:64]])
    return som, Z


def _plain_cost(som, Z):
    """sum_i D_w^2 / Omega_w^p with w the argmax activation, one sample at a time (float64)."""
    C, Om = som.prototypes.numpy(), som.relevances.numpy()
    total = 0.0
    for z in Z.numpy():
        acts = [_act(z, C[j], Om[j], som.kernel) for j in range(len(C))]
        j = int(np.argmax(acts))
        S = float(np.sum(Om[j] * (z - C[j]) ** 2))
        total += S / Om[j].sum() ** (1 if som.kernel == "weighted_sq" else 2)
    return total


@pytest.mark.parametrize("metric", ["relevance", "euclidean"])
@pytest.mark.parametrize("kernel", ["weighted_sq", "weighted"])
def test_refine_never_increases_the_weighted_within_cluster_cost(kernel, metric):
    som, Z = _trained_map(kernel)
    assert som.n_active >= 3
    assert som.refine(Z, 0, metric) == 0
    if metric == "euclidean":  # omega = 1 from the first call on; the rest is the same
        assert (som.omega == 1).all()
    om, life, act, delta = (som.omega.clone(), som.life.clone(), som.active.clone(),
                            som.delta.clone())  # fmt: skip
    costs = [float(som.assignment_cost(Z))]
    assert costs[0] == pytest.approx(_plain_cost(som, Z), rel=1e-12)
    for _ in range(15):
        assert som.refine(Z, 1) == 1
        costs.append(float(som.assignment_cost(Z)))
        assert costs[-1] == pytest.approx(_plain_cost(som, Z), rel=1e-12)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(costs, costs[1:]))
    assert costs[-1] < costs[0]
    # only the centres move: relevances, distance averages, life and the active set stay
    for before, now in ((om, som.omega), (life, som.life), (act, som.active), (delta, som.delta)):
        torch.testing.assert_close(now, before, rtol=0, atol=0)


def test_refine_moves_each_winner_to_the_mean_of_its_rows_and_stops_at_a_fixed_point():
    som, Z = _trained_map("weighted_sq", seed=1)
    before = som.centres.clone()
    w = som._activations(Z).argmax(1)
    assert som.refine(Z, 1) == 1
    for j in range(som.n_max):
        rows = Z[w == j]
        want = rows.mean(0) if len(rows) else before[j]  # a node that wins nothing stays
        torch.testing.assert_close(som.centres[j], want, rtol=0, atol=1e-12)
    ran = som.refine(Z, 500)
    assert ran < 500  # converged: the assignment stopped changing
    c = som.centres.clone()
    assert som.refine(Z, 3) == 1  # at the fixed point one pass moves nothing ...
    torch.testing.assert_close(som.centres, c, rtol=0, atol=1e-12)
    assert som.refine(Z, 0) == 0  # ... and n_iter=0 is a no-op
    with pytest.raises(ValueError, match="n_iter"):
        som.refine(Z, -1)
    with pytest.raises(RuntimeError, match="empty"):
        SOMRL(3).refine(Z)
    with pytest.raises(ValueError, match="metric"):
        som.refine(Z, 1, "cosine")
