"""Decay schedules for sigma and the learning rate.

A schedule maps training progress ``p = t / T`` in [0, 1] to a value between ``start`` (p = 0)
and ``end`` (p = 1):

* constant:      start
* asymptotic:    start / (1 + 2 p)              (MiniSom's asymptotic_decay; ignores ``end``)
* linear:        start + (end - start) p        (MiniSom's linear_decay_to_zero / _to_one)
* exponential:   start * (end / start) ** p
* inverse_time:  start / (1 + p (start / end - 1))  (MiniSom's inverse_decay_to_one; with
  end = start / 101 it is MiniSom's inverse_decay_to_zero)
"""

from __future__ import annotations

import math

SCHEDULES = ("asymptotic", "linear", "exponential", "inverse_time", "constant")


def decay(name: str, start: float, end: float, t: float, total: float) -> float:
    """Value of schedule ``name`` at step ``t`` of ``total``."""
    p = 0.0 if total <= 0 else float(t) / float(total)
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
