"""Parameter settings for the sweeps: Latin hypercube draws (SPEC.md §1 K7) over the ranges of
the Batch SS-SOM paper's Table I (SPEC.md §10), and the SS-SOM authors' own 500 settings.

A setting is a dict of estimator keyword arguments of the relevance maps
(:class:`somlab.relevance.BatchSSSOM` and friends)::

    at, lp, beta, age_wins, eb, en, s, minwd, epochs, epush, random_state

``random_state`` is the per-setting seed (the 11th coordinate of a draw, row 11 of the authors'
file), so a run depends on its setting only.
"""

from __future__ import annotations

import math
from types import MappingProxyType

import numpy as np

__all__ = [
    "PARAM_NAMES",
    "TABLE_I_RANGES",
    "authors_settings",
    "draw_settings",
    "lhs_unit",
    "round_half_away",
]

#: Estimator parameter names of a setting, in the order of the paper's Table I (seed last).
PARAM_NAMES: tuple[str, ...] = (
    "at",
    "lp",
    "beta",
    "age_wins",
    "eb",
    "en",
    "s",
    "minwd",
    "epochs",
    "epush",
    "random_state",
)

#: ``name -> (low, high, integer)``: the "000 Table I" column of SPEC.md §10, plus the seed
#: coordinate (an integer in [1, 10000], SPEC.md "Randomness").
TABLE_I_RANGES = MappingProxyType(
    {
        "at": (0.90, 0.999, False),
        "lp": (0.001, 0.01, False),
        "beta": (0.001, 0.5, False),
        "age_wins": (1, 100, True),
        "eb": (0.001, 0.2, False),
        "en": (0.002, 1.0, False),
        "s": (0.01, 0.1, False),
        "minwd": (0.0, 0.5, False),
        "epochs": (1, 100, True),
        "epush": (0.01, 1.0, False),
        "random_state": (1, 10000, True),
    }
)

# Column names of the authors' parameter file (somlab.datasets.load_sssom_params) -> estimator
_AUTHORS_COLUMNS = {
    "at": "at",
    "lp": "lp",
    "beta": "beta",
    "age_wins": "age_wins",
    "e_b": "eb",
    "e_n": "en",
    "s": "s",
    "minwd": "minwd",
    "epochs": "epochs",
    "push": "epush",
    "seed": "random_state",
}


def round_half_away(x):
    """Round half away from zero, as C++ ``round`` (numpy rounds half to even).

    >>> round_half_away(np.array([0.5, 1.5, 2.5, -0.5])).tolist()
    [1.0, 2.0, 3.0, -1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def lhs_unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    """``n`` Latin hypercube points in [0, 1)^d, shape (n, d) (SPEC.md K7).

    Each coordinate is stratified in ``n`` equal intervals, one point per interval, uniform
    inside it, with independent permutations per coordinate:
    ``scipy.stats.qmc.LatinHypercube(d, scramble=True)`` driven by
    ``numpy.random.default_rng(seed)`` (the same stream under scipy's old ``seed=`` and new
    ``rng=`` keywords, so draws do not change with the scipy version).
    """
    from scipy.stats import qmc

    n, d = int(n), int(d)
    if n < 1 or d < 1:
        raise ValueError(f"a Latin hypercube needs n >= 1 and d >= 1, got n={n}, d={d}")
    gen = np.random.default_rng(int(seed))
    try:
        sampler = qmc.LatinHypercube(d=d, rng=gen)
    except TypeError:  # scipy < 1.15
        sampler = qmc.LatinHypercube(d=d, seed=gen)
    return sampler.random(n)


def draw_settings(n: int, seed: int = 0, ranges=TABLE_I_RANGES) -> list[dict]:
    """Draw ``n`` parameter settings by Latin hypercube (SPEC.md §1 K7, §10).

    Parameters
    ----------
    n : int
        Number of settings (the paper: 500).
    seed : int, default 0
        Seed of the draw (not of the runs: every setting carries its own ``random_state``).
    ranges : mapping, default :data:`TABLE_I_RANGES`
        ``name -> (low, high, integer)``; one hypercube coordinate per entry, in order.
        Each unit coordinate u is scaled to ``low + u * (high - low)``; integer parameters are
        then rounded half away from zero.

    Returns
    -------
    list of dict
        ``n`` settings, each ``{name: value}`` with python ints for integer parameters.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of settings must be a positive integer, got {n!r}")
    names = list(ranges)
    lows = np.array([float(ranges[k][0]) for k in names])
    highs = np.array([float(ranges[k][1]) for k in names])
    if not np.all(np.isfinite(lows) & np.isfinite(highs)) or np.any(highs < lows):
        raise ValueError("every range must be finite with low <= high")
    unit = lhs_unit(int(n), len(names), seed)
    values = lows + unit * (highs - lows)
    out = []
    for row in values:
        setting = {}
        for j, name in enumerate(names):
            if ranges[name][2]:
                setting[name] = int(round_half_away(row[j]))
            else:
                setting[name] = float(row[j])
        out.append(setting)
    return out


def authors_settings(path=None) -> list[dict]:
    """The SS-SOM authors' 500 settings (``sssom_0.csv``, bundled) as estimator keyword dicts.

    File columns ``at, lp, beta, age_wins, e_b, e_n, s, minwd, epochs, push, seed`` map to
    ``at, lp, beta, age_wins, eb, en, s, minwd, epochs, epush, random_state`` (SPEC.md §3,
    "Parameters and file order"). ``path`` reads another file of the same layout.
    """
    from ..datasets import load_sssom_params

    cols = load_sssom_params(path)
    missing = [c for c in _AUTHORS_COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"parameter file lacks the columns {missing}")
    n = len(next(iter(cols.values())))
    out = []
    for i in range(n):
        setting = {}
        for col, name in _AUTHORS_COLUMNS.items():
            v = cols[col][i]
            setting[name] = int(v) if cols[col].dtype.kind in "iu" else float(v)
        out.append(setting)
    for s in out:
        if not all(math.isfinite(v) for v in s.values()):
            raise ValueError("parameter file holds a non-finite value")
    return out
