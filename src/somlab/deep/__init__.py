"""Deep clustering estimators built on the layers of :mod:`somlab.nn`."""

from .dcsomrl import DCSOMRL, PRESETS

__all__ = ["DCSOMRL", "PRESETS"]
