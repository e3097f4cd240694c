"""The compiled winner search (core/_winners.pyx, used by best_matching_units on CPU float32/64)
against the torch loops it replaces (torch.argmin semantics: ties to the lowest index, a NaN
counts as the minimum, unit after unit with the units before set to +inf) and a float64 cdist
oracle: ties, NaN rows, masks, float64, k = 1, 2, 3, odd node counts, one row, one node."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from somlab.core import distances as D

kernel = D._winners_module()
needs_kernel = pytest.mark.skipif(kernel is None, reason="core._winners not built")


def torch_loops(X, W, **kw):
    """best_matching_units with the compiled module hidden (the torch loops)."""
    keep = D._WINNERS[:]
    D._WINNERS[:] = [None]
    try:
        return D.best_matching_units(X, W, **kw)
    finally:
        D._WINNERS[:] = keep


def argmin_oracle(d: torch.Tensor, k: int, mask=None):
    """The k units of each row of d by repeated argmin (the ranking's definition)."""
    e = d.clone()
    if mask is not None:
        e[:, ~mask] = float("inf")
    out = []
    for _ in range(k):
        j = e.argmin(1)
        out.append(j)
        e.scatter_(1, j[:, None], float("inf"))
    return torch.stack(out, 1)


@needs_kernel
def test_the_extension_is_used_on_cpu_float(monkeypatch):
    calls = []
    real = D._bmu_compiled
    monkeypatch.setattr(D, "_bmu_compiled", lambda *a: calls.append(1) or real(*a))
    X, W = torch.rand(50, 3), torch.rand(7, 3)
    D.best_matching_units(X, W, k=2)
    D.best_matching_units(X.double(), W.double(), k=3)
    assert len(calls) == 2
    D.best_matching_units(X, W, k=2, missing=True)  # masked distances: the torch loops
    D.best_matching_units(X, W, k=9)  # beyond MAXK: the torch loops
    assert len(calls) == 2


def test_import_does_not_load_the_extension():
    code = "import sys, somlab, somlab.core.distances; print('somlab.core._winners' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize(
    "n,nodes,m", [(1, 1, 1), (1, 5, 3), (7, 1, 2), (37, 3, 5), (300, 101, 7), (1000, 400, 16)]
)
def test_kernel_matches_torch_loops_and_the_oracle(dtype, k, n, nodes, m):
    g = torch.Generator().manual_seed(n * 1000 + nodes + k)
    X = torch.rand(n, m, generator=g, dtype=torch.float64) * 4 + 100.0  # centring matters
    W = torch.rand(nodes, m, generator=g, dtype=torch.float64) * 4 + 100.0
    X, W = X.to(dtype), W.to(dtype)
    idx, dist = D.best_matching_units(X, W, k=k)
    idx_t, dist_t = torch_loops(X, W, k=k)
    ref = cdist(X.double().numpy(), W.double().numpy())
    rows = np.arange(n)[:, None]
    kk = min(k, nodes)
    # float32: the expansion's rounding where it is not refined (the torch loops err alike:
    # 3.2e-6 on one of these rows)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    # the nearest units up to float near-ties, the best unit's distance exact to rounding
    np.testing.assert_allclose(
        ref[rows, idx[:, :kk].numpy()], np.sort(ref, 1)[:, :kk], rtol=rtol, atol=0
    )
    np.testing.assert_allclose(dist[:, 0].double().numpy(), ref.min(1), rtol=rtol)
    # the same values: the product, |xb|^2, the refinement and the roots are the torch loops'
    # ops (SOMEnsemble's maps, which use them, must equal SOM's bit for bit)
    np.testing.assert_array_equal(dist.numpy(), dist_t.numpy())
    if dtype == torch.float64:
        np.testing.assert_array_equal(idx[:, 0].numpy(), ref.argmin(1))
    # the same product rounding as the torch loops (one matrix product of the same centred
    # data): the same units
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    if k > nodes:  # a slot no node fills: node 0 at +inf, as argmin of an all-inf row
        assert (idx[:, nodes:] == 0).all() and torch.isinf(dist[:, nodes:]).all()


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("nodes", [1, 2, 17, 64, 100, 257])
def test_ties_go_to_the_lowest_index(dtype, k, nodes):
    """Integer data on a coarse grid: many exact ties in every row (the expansion is exact on
    small integers), ranked as repeated argmin on the exact squared distances."""
    g = torch.Generator().manual_seed(nodes + 10 * k)
    X = torch.randint(0, 3, (203, 4), generator=g).to(dtype)
    W = torch.randint(0, 3, (nodes, 4), generator=g).to(dtype)
    idx, dist = D.best_matching_units(X, W, k=k, ref=torch.zeros(4, dtype=dtype))
    d2 = ((X[:, None, :] - W[None]) ** 2).sum(-1)
    want = argmin_oracle(d2, min(k, nodes))
    np.testing.assert_array_equal(idx[:, : min(k, nodes)].numpy(), want.numpy())
    np.testing.assert_array_equal(
        idx.numpy(), torch_loops(X, W, k=k, ref=torch.zeros(4, dtype=dtype))[0].numpy()
    )


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_nan_and_inf_rows_rank_as_argmin(dtype, k):
    g = torch.Generator().manual_seed(k)
    X = torch.rand(60, 5, generator=g).to(dtype)
    W = torch.rand(40, 5, generator=g).to(dtype)
    X[3, 2] = float("nan")  # all distances NaN: units 0, 1, 2 (NaN counts as the minimum)
    X[10] = float("nan")
    X[20, 0] = float("inf")  # +-inf products: the first -inf distance wins
    idx, dist = D.best_matching_units(X, W, k=k)
    idx_t, dist_t = torch_loops(X, W, k=k)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    for r in (3, 10):
        assert idx[r].tolist() == list(range(k))
    assert torch.isnan(dist[[3, 10, 20]]).all() and torch.isnan(dist_t[[3, 10, 20]]).all()
    ok = torch.ones(60, dtype=torch.bool)
    ok[[3, 10, 20]] = False
    # the finite rows are unharmed (the scale is 1 here, as in the torch loops)
    np.testing.assert_allclose(dist[ok].numpy(), dist_t[ok].numpy(), rtol=3e-6)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_nan_node_and_node_mask(dtype, k):
    g = torch.Generator().manual_seed(7 + k)
    X = torch.rand(150, 6, generator=g).to(dtype)
    W = torch.rand(99, 6, generator=g).to(dtype)
    mask = torch.rand(99, generator=g) > 0.4
    mask[5] = True
    idx, dist = D.best_matching_units(X, W, k=k, node_mask=mask)
    idx_t, dist_t = torch_loops(X, W, k=k, node_mask=mask)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    # (the refined winner distance is summed in float64 by the kernel, in float32 by torch)
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=3e-6)
    assert mask[idx].all()
    ref = cdist(X.double().numpy(), W.double().numpy())
    ref[:, ~mask.numpy()] = np.inf
    np.testing.assert_array_equal(idx[:, 0].numpy(), ref.argmin(1))
    # a NaN node (with a finite reference point; W's mean would be NaN) is the minimum of
    # every row, as in argmin, unless masked out
    Wn = W.clone()
    Wn[5, 1] = float("nan")
    z = torch.zeros(6, dtype=dtype)
    idx, _ = D.best_matching_units(X, Wn, k=k, ref=z)
    np.testing.assert_array_equal(idx.numpy(), torch_loops(X, Wn, k=k, ref=z)[0].numpy())
    assert (idx[:, 0] == 5).all()
    mask[5] = False
    idx, _ = D.best_matching_units(X, Wn, k=k, node_mask=mask, ref=z)
    np.testing.assert_array_equal(
        idx.numpy(), torch_loops(X, Wn, k=k, node_mask=mask, ref=z)[0].numpy()
    )
    assert mask[idx].all()
    ref[:, 5] = np.inf
    np.testing.assert_array_equal(idx[:, 0].numpy(), ref.argmin(1))


@needs_kernel
def test_one_active_node_leaves_the_other_slots_at_node_zero():
    X, W = torch.rand(20, 3), torch.rand(10, 3)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[6] = True
    idx, dist = D.best_matching_units(X, W, k=3, node_mask=mask)
    idx_t, dist_t = torch_loops(X, W, k=3, node_mask=mask)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    assert (idx[:, 0] == 6).all() and (idx[:, 1:] == 0).all() and torch.isinf(dist[:, 1:]).all()


@needs_kernel
@pytest.mark.parametrize("scale", [1e-21, 1e-3, 1e15])
def test_tiny_huge_and_offset_data_keep_the_torch_loops_result(scale):
    g = torch.Generator().manual_seed(3)
    X = (torch.rand(400, 8, generator=g, dtype=torch.float64) - 0.5) * scale + 1e3 * scale
    W = (torch.rand(120, 8, generator=g, dtype=torch.float64) - 0.5) * scale + 1e3 * scale
    ref = cdist(X.numpy(), W.numpy())
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 3e-6)):
        Xt, Wt = X.to(dtype), W.to(dtype)
        idx, dist = D.best_matching_units(Xt, Wt, k=2)
        idx_t, dist_t = torch_loops(Xt, Wt, k=2)
        np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
        r = cdist(Xt.double().numpy(), Wt.double().numpy()) if dtype == torch.float32 else ref
        np.testing.assert_allclose(dist[:, 0].double().numpy(), r.min(1), rtol=rtol)


@needs_kernel
def test_sqeuclidean_and_a_non_contiguous_x():
    g = torch.Generator().manual_seed(11)
    X, W = torch.rand(500, 12, generator=g), torch.rand(64, 12, generator=g)
    i1, d1 = D.best_matching_units(X, W, "sqeuclidean", k=2)
    i2, d2 = torch_loops(X, W, metric="sqeuclidean", k=2)
    np.testing.assert_array_equal(i1.numpy(), i2.numpy())
    np.testing.assert_allclose(d1.numpy(), d2.numpy(), rtol=1e-6)
    Xs = torch.rand(12, 500, generator=g).T  # a transposed view: the torch loops
    np.testing.assert_array_equal(
        D.best_matching_units(Xs, W, k=2)[0].numpy(), torch_loops(Xs, W, k=2)[0].numpy()
    )


@needs_kernel
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("nodes", [1, 3, 17, 100, 401])
def test_node_major_ranking_finds_the_same_units(monkeypatch, k, nodes):
    """rank2t (off by default, see _NODE_MAJOR_FEATURES): the same units as the torch loops on
    integer data full of ties, NaN rows included; distances equal to rounding."""
    monkeypatch.setattr(D, "_NODE_MAJOR_FEATURES", 128)
    g = torch.Generator().manual_seed(nodes + k)
    X = torch.randint(0, 3, (300, 5), generator=g).float()
    W = torch.randint(0, 3, (nodes, 5), generator=g).float()
    X[7, 1] = float("nan")
    z = torch.zeros(5)
    idx, dist = D.best_matching_units(X, W, k=k, ref=z)
    idx_t, dist_t = torch_loops(X, W, k=k, ref=z)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=1e-6)
    X = torch.rand(1000, 64, generator=g)
    W = torch.rand(nodes, 64, generator=g)
    idx, dist = D.best_matching_units(X, W, k=k)
    idx_t, dist_t = torch_loops(X, W, k=k)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=1e-6)


@needs_kernel
@pytest.mark.parametrize(
    "make_ref",
    [
        lambda m: torch.tensor(3.0),  # a scalar broadcasts
        lambda m: torch.full((1,), 1e4),
        lambda m: torch.zeros(1, m),  # 2-D
        lambda m: torch.zeros(1).expand(m),  # stride 0
        lambda m: torch.arange(2.0 * m)[::2],  # strided
    ],
)
def test_any_broadcastable_ref_gives_the_torch_loops_result(make_ref):
    """``ref`` is public: a scalar, a [1, m], an expanded or a strided one ranks as the torch
    loops do (the C passes read m contiguous values: such refs once read past the buffer)."""
    g = torch.Generator().manual_seed(5)
    X = torch.rand(300, 8, generator=g) * 5
    W = torch.rand(20, 8, generator=g) * 5
    ref = make_ref(8).to(torch.float32)
    got = D.best_matching_units(X, W, k=2, ref=ref)
    want = torch_loops(X, W, k=2, ref=ref)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], want[1])
    if float(ref.abs().max()) < 100:  # (a far ref costs float32 digits, the loops' too)
        oracle = torch.as_tensor(cdist(X.double().numpy(), W.double().numpy())).argmin(1)
        assert (got[0][:, 0] == oracle).float().mean() > 0.98
