"""Decay schedules for sigma and the learning rate.

A schedule maps training progress ``p = t / T`` in [0, 1] to a value between ``start`` (p = 0)
and ``end`` (p = 1):

* constant:      start
* asymptotic:    start / (1 + 2 p)              (MiniSom's asymptotic_decay; ignores ``end``)
* linear:        start + (end - start) p        (MiniSom's linear_decay_to_zero / _to_one)
* exponential:   start * (end / start) ** p
* inverse_time:  start / (1 + p (start / end - 1))  (MiniSom's inverse_decay_to_one; with
  end = start / 101 it is MiniSom's inverse_decay_to_zero)

Staircases: ``"<name>@<k>"`` (e.g. ``"linear@5"``) holds the value of schedule ``name``
constant over ``k`` equal parts of training and steps down between them (NeuPy's "reduce every
n epochs": with ``epochs=E``, ``k = E / n``).  Stair ``i = min(floor(p k), k - 1)`` takes the
value at ``p = i / (k - 1)``, so the first stair is ``start`` and the last is the schedule's end
value (``k = 1``: constant ``start``).

A schedule from 0 to 0 is 0 whatever its name (sigma of winner-only training).
"""

from __future__ import annotations

import math
from functools import lru_cache

SCHEDULES = ("asymptotic", "linear", "exponential", "inverse_time", "constant")


@lru_cache(maxsize=64)
def parse_schedule(name: str) -> tuple[str, int | None]:
    """``(base, stairs)`` of a schedule name: ``"linear"`` -> ``("linear", None)``,
    ``"linear@5"`` -> ``("linear", 5)``; ValueError naming the options otherwise."""
    base, at, k = str(name).partition("@")
    stairs = None
    if at:
        try:
            stairs = int(k)
        except ValueError:
            stairs = 0
        if stairs < 1 or str(stairs) != k.strip():
            raise ValueError(
                f"a staircase schedule is '<schedule>@<number of stairs >= 1>', like 'linear@5', "
                f"got {name!r}"
            )
    if base not in SCHEDULES:
        raise ValueError(
            f"decay schedule must be one of {SCHEDULES}, or one of them with '@<stairs>' "
            f"(a staircase, e.g. 'linear@5'), got {name!r}"
        )
    return base, stairs


def decay(name: str, start: float, end: float, t: float, total: float) -> float:
    """Value of schedule ``name`` at step ``t`` of ``total`` (see the module docstring)."""
    p = 0.0 if total <= 0 else float(t) / float(total)
    if start == 0 and end == 0:
        return 0.0
    if "@" in name:
        name, k = parse_schedule(name)
        i = min(math.floor(p * k + 1e-9), k - 1)
        p = i / (k - 1) if k > 1 else 0.0
    if name == "constant":
        return float(start)
    if name == "asymptotic":
        return start / (1.0 + 2.0 * p)
    if name == "linear":
        return start + (end - start) * p
    if name == "exponential":
        if start <= 0 or end <= 0:
            raise ValueError("exponential decay needs positive start and end values")
        return start * math.exp(p * math.log(end / start))
    if name == "inverse_time":
        if end <= 0:
            raise ValueError("inverse_time decay needs a positive end value")
        return start / (1.0 + p * (start / end - 1.0))
    raise ValueError(f"decay schedule must be one of {SCHEDULES}, got {name!r}")
