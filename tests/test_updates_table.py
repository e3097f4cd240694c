"""The fit-long neighbourhood table (core.updates.GridTable, issue 18.4): the rows of H built
from it are the old formula's bit for bit (from coordinates, every epoch), on every grid and
neighbourhood; spread and whole fits are unchanged by it."""

import numpy as np
import pytest
import torch

from somlab import SOM
from somlab.core import updates as U
from somlab.core.grids import Grid
from somlab.core.neighbourhoods import NEIGHBOURHOODS, CutOff, gaussian, of_squared
from somlab.som._multi import SOMEnsemble

GRIDS = {
    "rect": Grid(6, 7),
    "hex": Grid(6, 7, "hexagonal"),
    "rect-torus": Grid(5, 5, toroidal=True),
    "hex-torus": Grid(6, 8, "hexagonal", True),
    "cube": Grid(3, 4, layers=2),
    "cube-torus": Grid(3, 3, toroidal=True, layers=4),
}
FNS = {
    **NEIGHBOURHOODS,
    "cut-gaussian": CutOff(NEIGHBOURHOODS["gaussian"], 0.8),
    "cut-mexican": CutOff(NEIGHBOURHOODS["mexican_hat"], 1.5),
    "cut-bubble": CutOff(NEIGHBOURHOODS["bubble"], 1.2),
}


def _old_rows(coords, centres, fn, sigma, periods, dtype):
    """The rows of H as every epoch built them before the table: displacements from the
    coordinates (minimum image on a torus), the neighbourhood, then the float cast that
    flushes subnormals; the gaussian written out as exp(-(dr^2 + dc^2 (+ dl^2)) / (2 sigma^2))."""
    d = coords.unsqueeze(0) - coords[centres].unsqueeze(1)
    if periods is not None:
        p = torch.tensor(periods, dtype=d.dtype)
        d = d - p * torch.round(d / p)
    if fn is gaussian:
        sq = d[..., 0] * d[..., 0]
        for axis in range(1, d.shape[-1]):
            sq.add_(d[..., axis] * d[..., axis])
        h = (sq / -(2.0 * sigma * sigma)).exp_()
    else:
        h = fn(d, sigma)
    h = h.to(dtype)
    fi = torch.finfo(dtype)
    return h.masked_fill_(h.abs() < fi.tiny / fi.eps, 0.0)


@pytest.mark.parametrize("fn_name", list(FNS))
@pytest.mark.parametrize("grid_name", list(GRIDS))
def test_rows_from_the_table_are_the_old_formula_bit_for_bit(grid_name, fn_name):
    grid, fn = GRIDS[grid_name], FNS[fn_name]
    coords, periods = grid.coordinates(torch.float64), grid.periods()
    table = U.grid_table(coords, fn, periods)
    assert table is not None and table.squared == (of_squared(fn) is not None)
    n = grid.n_nodes
    every = torch.arange(n)  # all nodes won something: rows are a view of the table
    some = torch.tensor([0, 2, 3, 7, n - 1])  # a copy of some rows
    for dtype in (torch.float32, torch.float64):
        for sigma in (0.3, 1.0, 2.7, 9.0):
            for centres in (every, some, every[5:9]):
                old = _old_rows(coords, centres, fn, sigma, periods, dtype)
                new = U.neighbourhood_rows(coords, centres, fn, sigma, periods, dtype, table)
                assert new.dtype == dtype and torch.equal(new, old)
                assert torch.equal(
                    U.neighbourhood_rows(coords, centres, fn, sigma, periods, dtype), old
                )
    before = table.values.clone()
    U.neighbourhood_rows(coords, every, fn, 1.0, periods, torch.float32, table)
    assert torch.equal(table.values, before)  # the table is never written to


@pytest.mark.parametrize("grid_name", ["hex-torus", "cube"])
def test_spread_with_the_table_equals_spread_without(grid_name):
    grid = GRIDS[grid_name]
    coords, periods = grid.coordinates(torch.float64), grid.periods()
    g = torch.Generator().manual_seed(0)
    X = torch.rand(90, 5, generator=g)
    bmus = torch.randint(0, grid.n_nodes, (3, 90), generator=g)
    S, C = U.winner_sums(bmus, X, grid.n_nodes)
    fns = [FNS["gaussian"], FNS["cut-gaussian"], FNS["mexican_hat"]]
    table = U.grid_table(coords, fns, periods)
    assert table.squared and table.values.shape == (grid.n_nodes, grid.n_nodes)
    sig = [2.0, 1.1, 0.7]
    a = U.spread(coords, S, C, fns, sig, periods, table=table)
    b = U.spread(coords, S, C, fns, sig, periods)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    mixed = [FNS["gaussian"], FNS["bubble"], FNS["cut-bubble"]]  # not all radial: displacements
    table = U.grid_table(coords, mixed, periods)
    assert not table.squared and table.values.shape == (grid.n_nodes, grid.n_nodes, grid.ndim)
    a = U.spread(coords, S, C, mixed, sig, periods, 7 * grid.n_nodes, table)  # 7-row blocks
    b = U.spread(coords, S, C, mixed, sig, periods, 7 * grid.n_nodes)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_large_maps_build_no_table():
    """The table holds at most _TABLE_ELEMENTS values (32 MB of float64): larger maps work from
    the coordinates every epoch, as before, with memory linear in the number of nodes."""
    big = Grid(50, 50).coordinates()  # 2,500^2 > 2^22
    assert U.grid_table(big, gaussian) is None
    assert U.grid_table(Grid(45, 45).coordinates(), gaussian) is not None  # 2,025 nodes
    assert U.grid_table(Grid(40, 40).coordinates(), NEIGHBOURHOODS["bubble"]) is None  # x 2 axes
    assert U.grid_table(Grid(4, 4).coordinates(), gaussian, max_elements=255) is None


FITS = [
    dict(grid_shape=(8, 9), sigma=3.0, sigma_end=0.3),
    dict(grid_shape=(6, 8), topology="hexagonal", toroidal=True, neighbourhood="mexican_hat"),
    dict(grid_shape=(3, 4, 3), toroidal=True, neighbourhood="bubble", sigma=2.0),
    dict(grid_shape=(7, 5), neighbourhood="triangle", sigma=2.5),
    dict(grid_shape=(7, 7), radius=2.0, sigma=3.0),
]


@pytest.mark.parametrize("mode", ["batch", "minibatch"])
@pytest.mark.parametrize("kw", FITS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_fits_with_the_table_equal_fits_without(kw, mode, monkeypatch):
    """A fit's weights are those of the old per-epoch construction bit for bit (the table
    off: every epoch builds H from the coordinates, the code before the table)."""
    X = np.random.default_rng(1).random((300, 4)).astype(np.float32)
    som_kw = dict(**kw, epochs=4, mode=mode, batch_size=32, random_state=0)
    with_table = SOM(**som_kw).fit(X)
    ens_kw = {**som_kw, "sigma": [kw.get("sigma", 2.0), 0.6]}
    ens = SOMEnsemble(**ens_kw).fit(X)
    monkeypatch.setattr(U, "_TABLE_ELEMENTS", 0)
    old = SOM(**som_kw).fit(X)
    np.testing.assert_array_equal(with_table.weights_, old.weights_)
    np.testing.assert_array_equal(with_table.labels_, old.labels_)
    np.testing.assert_array_equal(ens.weights_, SOMEnsemble(**ens_kw).fit(X).weights_)
    monkeypatch.undo()
    assert not np.array_equal(ens.weights_[0], ens.weights_[1])


@pytest.mark.parametrize("centres", [[0, 2, 1, 3], [3, 1, 2, 0], [1, 1, 2, 2], [2, 3, 4, 5]])
def test_table_rows_of_any_centre_order(centres):
    """Rows for unsorted or repeated centres whose end points span n - 1 are those centres'
    rows (a first/last test once took them for a consecutive block)."""
    coords = Grid(3, 3).coordinates()
    table = U.grid_table(coords, gaussian)
    c = torch.tensor(centres)
    got = U.neighbourhood_rows(coords, c, gaussian, 1.0, None, torch.float64, table)
    want = U.neighbourhood_rows(coords, c, gaussian, 1.0, None, torch.float64)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
