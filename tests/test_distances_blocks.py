"""The blocked winner search of core.distances (issue 18, point 4): first_min against
``torch.argmin`` and best_matching_units against a float64 cdist oracle, on shapes that span
several cache blocks, partial argmin blocks, ties, masks, NaN and inf."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from somlab.core import distances as D


@pytest.mark.parametrize("k", [1, 63, 64, 127, 128, 200, 1600, 1601])
def test_first_min_is_argmin_with_ties(k):
    g = torch.Generator().manual_seed(k)
    d = torch.randint(0, 5, (300, k), generator=g).float()  # many ties in every row
    v, j = D.first_min(d)
    np.testing.assert_array_equal(j.numpy(), d.argmin(1).numpy())
    np.testing.assert_array_equal(v.numpy(), d.amin(1).numpy())


def test_first_min_nan_inf_and_the_last_partial_block():
    d = torch.rand(6, 200)
    d[0, 150] = float("nan")  # a NaN counts as the minimum, as in argmin
    d[1, 199] = float("nan")  # ... in the partial block too
    d[2] = float("inf")  # all masked: index 0
    d[3, 197] = -1.0  # the minimum in the partial block
    d[4, 5] = d[4, 196] = -2.0  # a tie across a full and the partial block: the first
    d[5, 130] = d[5, 3] = -3.0
    _, j = D.first_min(d)
    assert j.tolist() == d.argmin(1).tolist() == [150, 199, 0, 197, 5, 3]


@pytest.mark.parametrize(
    "n,k,m", [(1000, 1600, 8), (700, 100, 5), (300, 200, 784), (5, 1601, 3), (0, 70, 4)]
)
def test_blocked_winners_match_an_exact_oracle(n, k, m):
    rng = np.random.default_rng(n + k)
    X = rng.random((n, m)) * 3 + 50.0  # far from zero: the centring matters
    W = rng.random((k, m)) * 3 + 50.0
    for dtype, rtol in ((torch.float64, 1e-12), (torch.float32, 3e-6)):
        Xt, Wt = torch.tensor(X, dtype=dtype), torch.tensor(W, dtype=dtype)
        idx, dist = D.best_matching_units(Xt, Wt, k=3)
        ref = cdist(Xt.double().numpy(), Wt.double().numpy())
        if n == 0:
            assert idx.shape == (0, 3)
            continue
        rows = np.arange(n)[:, None]
        # the units found are the nearest ones up to float32 near-ties, their distances exact
        np.testing.assert_allclose(ref[rows, idx.numpy()], np.sort(ref, 1)[:, :3], rtol=rtol)
        np.testing.assert_allclose(dist[:, 0].double().numpy(), ref.min(1), rtol=rtol)
        if dtype == torch.float64:
            np.testing.assert_array_equal(idx[:, 0].numpy(), ref.argmin(1))


def test_blocked_winners_honour_the_node_mask_and_ties():
    W = torch.zeros(300, 2)  # every node at the same place: ties everywhere
    X = torch.rand(400, 2)
    mask = torch.ones(300, dtype=torch.bool)
    mask[:137] = False
    idx, _ = D.best_matching_units(X, W, k=2, node_mask=mask)
    assert (idx[:, 0] == 137).all() and (idx[:, 1] == 138).all()


def test_block_size_does_not_change_the_result(monkeypatch):
    g = torch.Generator().manual_seed(0)
    X, W = torch.rand(2000, 16, generator=g), torch.rand(900, 16, generator=g)
    a = D.best_matching_units(X, W, k=2)
    monkeypatch.setattr(D, "_CACHE_BLOCK", 1 << 12)  # 64-row blocks instead of 286
    b = D.best_matching_units(X, W, k=2)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u.numpy(), v.numpy())


@pytest.mark.parametrize("k", [64, 128, 400, 1600, 2500])
def test_first_two_min_is_two_argmins_with_ties_and_nan(k):
    g = torch.Generator().manual_seed(k)
    d = torch.randint(0, 4, (200, k), generator=g).float()
    d[3, 7] = float("nan")
    d[5, k - 1] = -1.0  # winner in the last block, second best anywhere
    (v1, j1), (v2, j2) = D.first_two_min(d)
    e = d.clone()
    a1 = e.argmin(1)
    e.scatter_(1, a1[:, None], float("inf"))
    a2 = e.argmin(1)
    np.testing.assert_array_equal(j1.numpy(), a1.numpy())
    np.testing.assert_array_equal(j2.numpy(), a2.numpy())
    np.testing.assert_array_equal(v2.numpy(), e.gather(1, a2[:, None])[:, 0].numpy())
