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


@pytest.fixture(autouse=True, params=["row-major", "node-major"])
def orientation(request, monkeypatch):
    """Every test runs with both products: the row-major ``xb.wc^T`` (rank) and the node-major
    ``wc.xb^T`` (rank2t, k <= 2), for the compiled search and the torch loops alike."""
    monkeypatch.setattr(D, "_NODE_MAJOR_NODES", 0 if request.param == "row-major" else 10**6)
    monkeypatch.setattr(D, "_NODE_MAJOR_THREADS", 10**6)  # whatever torch's thread count
    return request.param


def test_the_orientation_rule_takes_threads_into_account(monkeypatch):
    """Node-major up to _NODE_MAJOR_NODES nodes for k <= 2 on one torch thread only (on two,
    MKL's node-major product is the slower one); the torch loops ask the same rule."""
    monkeypatch.setattr(D, "_NODE_MAJOR_NODES", 128)
    monkeypatch.setattr(D, "_NODE_MAJOR_THREADS", 1)
    cpu = torch.device("cpu")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert D._node_major(2, 100, cpu) and D._node_major(1, 128, cpu)
        assert not D._node_major(3, 100, cpu) and not D._node_major(2, 129, cpu)
        torch.set_num_threads(2)
        assert not D._node_major(2, 100, cpu)
        seen = []
        real = D._node_major
        monkeypatch.setattr(D, "_node_major", lambda *a: seen.append(real(*a)) or seen[-1])
        X, W = torch.rand(300, 8), torch.rand(100, 8)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            idx = D.best_matching_units(X, W, k=2)[0]
            idx_t = torch_loops(X, W, k=2)[0]
            assert torch.equal(idx, idx_t)
    finally:
        torch.set_num_threads(old)
    assert seen == [True, True, False, False]  # (compiled search, torch loops) per count


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
    # the same values to rounding: the same product and d, |xb|^2 summed in another order
    # (the share of a cancelled expansion kept, 2**-6, bounds what that order costs)
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=rtol)
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
@pytest.mark.parametrize("nodes", [1, 3, 17, 100, 401, 700])
def test_both_orientations_find_the_same_units(orientation, k, nodes):
    """rank2t (node-major product) and rank (row-major): the same units as the torch loops
    (which take the same orientation) on integer data full of ties, a NaN row included, and on
    random data; distances equal to rounding."""
    g = torch.Generator().manual_seed(nodes + k)
    X = torch.randint(0, 3, (300, 5), generator=g).float()
    W = torch.randint(0, 3, (nodes, 5), generator=g).float()
    X[7, 1] = float("nan")
    z = torch.zeros(5)
    idx, dist = D.best_matching_units(X, W, k=k, ref=z)
    idx_t, dist_t = torch_loops(X, W, k=k, ref=z)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=1e-6)
    d2 = ((X[:, None, :] - W[None]) ** 2).sum(-1)
    ok = torch.ones(300, dtype=torch.bool)
    ok[7] = False
    want = argmin_oracle(d2[ok], min(k, nodes))
    np.testing.assert_array_equal(idx[ok][:, : min(k, nodes)].numpy(), want.numpy())
    X = torch.rand(1000, 64, generator=g)
    W = torch.rand(nodes, 64, generator=g)
    idx, dist = D.best_matching_units(X, W, k=k)
    idx_t, dist_t = torch_loops(X, W, k=k)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=1e-5)
    ref = cdist(X.double().numpy(), W.double().numpy())
    np.testing.assert_allclose(dist[:, 0].double().numpy(), ref.min(1), rtol=1e-5)


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


@needs_kernel
@pytest.mark.parametrize(
    "dtype,far",
    [(torch.float32, f) for f in (1e-9, 1e-3, 1.0, 1e4, 1e12)]
    + [(torch.float64, f) for f in (1e-150, 1e-9, 1.0, 1e12, 1e150)],
)
def test_data_far_from_the_prototypes_size_rank_as_the_torch_loops(dtype, far):
    """The search keeps the prototypes' scale where the rows fit it (up to 2**20 times it in
    float32, 2**200 in float64) and starts again at the data's (spread) where they do not:
    the same units as the torch loops (which always take the data's range too), distances
    to rounding, and the float64 oracle's winners where W's differences show at X's size."""
    g = torch.Generator().manual_seed(int(far > 1) + 7)
    W = (torch.rand(90, 6, generator=g, dtype=torch.float64) - 0.5) * 1e-3
    X = (torch.rand(700, 6, generator=g, dtype=torch.float64) - 0.5) * 1e-3 * far
    X[::50] *= 3.0  # a few rows further out
    X, W = X.to(dtype), W.to(dtype)
    ref = torch.zeros(6, dtype=dtype)  # |X - ref| is X's own size
    spreads = []

    class Counting:  # the compiled module, counting the calls of spread
        MAXK = kernel.MAXK

        def __getattr__(self, name):
            return getattr(kernel, name)

        def spread(self, *a):
            spreads.append(1)
            return kernel.spread(*a)

    idx, dist = D._bmu_compiled(Counting(), X, W, "euclidean", 2, None, ref)
    fits = far <= (1e4 if dtype == torch.float32 else 1e12)  # (smaller rows always fit)
    assert bool(spreads) == (not fits)
    idx_t, dist_t = torch_loops(X, W, k=2, ref=ref)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=rtol)
    oracle = cdist(X.double().numpy(), W.double().numpy())
    np.testing.assert_allclose(dist[:, 0].double().numpy(), oracle.min(1), rtol=rtol)
    if far <= 1e4:
        assert (idx[:, 0].numpy() == oracle.argmin(1)).mean() > 0.99


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_threaded_passes_give_the_one_thread_result(monkeypatch, dtype, k):
    """The passes on torch's threads (OpenMP) rank the rows as one thread does, bit for bit,
    with the rows left to the direct form (rows on top of a node, far from zero) and NaN rows
    collected in row order; odd block sizes leave partial ranges."""
    g = torch.Generator().manual_seed(k)
    W = torch.rand(37, 9, generator=g, dtype=torch.float64) + 1e3
    X = torch.rand(1001, 9, generator=g, dtype=torch.float64) + 1e3
    X[::7] = W[torch.arange(0, 1001, 7) % 37] + 1e-9  # on top of a node: the direct form
    X[5, 3] = float("nan")
    X, W = X.to(dtype), W.to(dtype)
    monkeypatch.setattr(D, "_KERNEL_BLOCK_BYTES", 997 * 8)  # several blocks
    one = D.best_matching_units(X, W, k=k)
    monkeypatch.setattr(D, "_PASS_PARALLEL", 0)
    monkeypatch.setattr(D, "_LOAD", [float("inf"), 2])  # two cores free, whatever the load
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        if D._pass_threads(kernel, 10**6) < 2:
            pytest.skip("the passes run on one thread here (no OpenMP shared with torch)")
        two = D.best_matching_units(X, W, k=k)
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(one[0], two[0], rtol=0, atol=0)
    torch.testing.assert_close(one[1], two[1], rtol=0, atol=0, equal_nan=True)
    ref = cdist(X.double().numpy()[::7], W.double().numpy())
    np.testing.assert_allclose(one[1][::7, 0].double().numpy(), ref.min(1), rtol=1e-3)


@needs_kernel
def test_the_passes_take_one_thread_beside_a_busy_core(monkeypatch):
    """Threads for the passes: torch's count where the cores are free, one where the load
    (choose_threads, looked at again after _LOAD_EVERY) leaves one, one for small blocks."""
    if not kernel.OPENMP:
        pytest.skip("built without OpenMP")
    import somlab._utils as U

    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(D, "_LOAD", [-float("inf"), 1])
        monkeypatch.setattr(U, "choose_threads", lambda work, dev: 1)
        assert D._pass_threads(kernel, 10**6) == 1
        monkeypatch.setattr(D, "_LOAD", [-float("inf"), 1])
        monkeypatch.setattr(U, "choose_threads", lambda work, dev: 2)
        want = 2 if D._OPENMP_SHARED and D._OPENMP_SHARED[0] else 1
        assert D._pass_threads(kernel, 10**6) == want
        assert D._pass_threads(kernel, 100) == 1  # a small block: one thread
    finally:
        torch.set_num_threads(old)


@needs_kernel
@pytest.mark.parametrize("where", [0, 100, 199])
def test_a_nan_row_anywhere_takes_the_data_scale(monkeypatch, where):
    """A NaN row sends the search to the data's scale (1, as the torch loops take) wherever it
    sits in its block: the other rows of tiny data rank as the torch loops rank them (the
    largest |xb|^2 of a block stays NaN once a NaN row is seen, also across threads)."""
    g = torch.Generator().manual_seed(1)
    X = torch.rand(200, 2, generator=g) * 1e-25
    W = torch.rand(30, 2, generator=g) * 1e-25
    X[where, 0] = float("nan")
    monkeypatch.setattr(D, "_PASS_PARALLEL", 0)  # two threads on this block where they can
    monkeypatch.setattr(D, "_LOAD", [float("inf"), 2])
    for threads in (1, 2):
        with torch.no_grad():
            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                idx, dist = D.best_matching_units(X, W, k=2)
            finally:
                torch.set_num_threads(old)
        idx_t, dist_t = torch_loops(X, W, k=2)
        np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())
        np.testing.assert_allclose(dist.numpy(), dist_t.numpy(), rtol=1e-5)
    Xn, z = torch.tensor([[float("nan"), 0.0], [1.0, 1.0]]), torch.zeros(2)
    xb, xsq = torch.empty(2, 2), torch.empty(2)
    top = kernel.prep(
        1, True, Xn.data_ptr(), 2, 2, z.data_ptr(), 1.0, xb.data_ptr(), xsq.data_ptr()
    )
    assert np.isnan(top)  # NaN, not the next row's 2.0
