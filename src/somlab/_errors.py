"""Exceptions raised for bad input. The CLI turns these into a one-line message and exit code 2."""


class SomlabError(Exception):
    """Base class of somlab's own errors."""


class DataError(SomlabError, ValueError):
    """Bad input data: wrong shape, NaN or inf, empty data, unknown label, unreadable file."""


class ModelFileError(SomlabError, ValueError):
    """A model file that is missing, truncated, corrupt or of an unknown format version."""


class WriteError(SomlabError, OSError):
    """A file (a model, a report) that could not be written, e.g. on a full disk; the message
    names the path, and a file already there is left as it was."""

    def __str__(self) -> str:  # the message we wrote, not OSError's "[Errno N] ..." form
        return str(self.args[0]) if self.args else super().__str__()
