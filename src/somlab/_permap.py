"""What the ensembles (K maps trained together) share: per-map parameters given as sequences."""

from __future__ import annotations

import numpy as np


def is_listlike(value) -> bool:
    """A per-map sequence (list, tuple, 1-D or higher array), not a scalar."""
    if isinstance(value, np.ndarray):
        return value.ndim >= 1
    return isinstance(value, (list, tuple))


class PerMapMixin:
    """``from_settings`` and ``n_maps`` for an estimator whose parameters named in ``PER_MAP``
    may each be a scalar (shared) or a sequence of K values, one per map."""

    PER_MAP: tuple[str, ...] = ()

    def _extra_lengths(self) -> dict:
        """Lengths of per-map values outside ``PER_MAP`` (e.g. one initial map per map)."""
        return {}

    def n_maps(self) -> int:
        """K: the common length of the per-map sequences (1 when all are scalars)."""
        lengths = {
            name: len(getattr(self, name))
            for name in self.PER_MAP
            if is_listlike(getattr(self, name))
        }
        lengths.update(self._extra_lengths())
        if len(set(lengths.values())) > 1:
            found = ", ".join(f"{k} has {v}" for k, v in lengths.items())
            raise ValueError(f"per-map parameters must all have the same length K; {found}")
        K = next(iter(lengths.values()), 1)
        if K < 1:
            raise ValueError("an ensemble needs at least one map; got empty per-map parameters")
        return K

    @classmethod
    def from_settings(cls, settings, **shared):
        """An ensemble with one map per dict of ``settings`` (e.g. a ``ParameterGrid`` or the
        rows of a Latin-hypercube design).

        Keys of the dicts must be per-map parameters (``PER_MAP``); a key missing from a dict
        takes its value from ``shared`` or the default.  ``shared`` holds the rest.
        """
        settings = [dict(s) for s in settings]
        if not settings:
            raise ValueError("settings must hold at least one dict of per-map parameters")
        keys = sorted({key for s in settings for key in s})
        bad = [key for key in keys if key not in cls.PER_MAP]
        if bad:
            raise ValueError(
                f"settings may only hold per-map parameters {cls.PER_MAP}; got {bad} "
                "(pass shared parameters as keyword arguments)"
            )
        defaults = cls().get_params()
        lists = {
            key: [s.get(key, shared.get(key, defaults[key])) for s in settings] for key in keys
        }
        return cls(**{**shared, **lists})
