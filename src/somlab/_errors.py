"""Exceptions raised for bad input. The CLI turns these into a one-line message and exit code 2."""


class SomlabError(Exception):
    """Base class of somlab's own errors."""


class DataError(SomlabError, ValueError):
    """Bad input data: wrong shape, NaN or inf, empty data, unknown label, unreadable file."""


class ModelFileError(SomlabError, ValueError):
    """A model file that is missing, truncated, corrupt or of an unknown format version."""
