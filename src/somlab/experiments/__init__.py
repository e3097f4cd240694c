"""Reproduction experiments: parameter settings (Latin hypercube, the authors' file), a resumable
parallel sweep runner, and the paper tables (``somlab reproduce table2``).

Modules: :mod:`~somlab.experiments.lhs` (:func:`draw_settings`, :func:`authors_settings`),
:mod:`~somlab.experiments.runner` (:func:`run_sweep`), :mod:`~somlab.experiments.table2`
(:func:`reproduce_table2`).
"""

from .lhs import TABLE_I_RANGES, authors_settings, draw_settings
from .runner import read_results, run_sweep
from .table2 import Table2Config, reproduce_table2

__all__ = [
    "TABLE_I_RANGES",
    "Table2Config",
    "authors_settings",
    "draw_settings",
    "read_results",
    "reproduce_table2",
    "run_sweep",
]
