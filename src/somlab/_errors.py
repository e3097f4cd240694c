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


def check_readable_file(path, error: type[SomlabError], *, missing: str, folder: str,
                        unreadable: str) -> None:  # fmt: skip
    """Raise ``error`` unless ``path`` is a file this process can open for reading: missing,
    a folder, and unreadable (``{why}``: permission denied, or the OS's reason) each get their
    own message, formatted with ``{path}``."""
    import stat

    def why(exc: OSError) -> str:
        if isinstance(exc, PermissionError):
            return "permission denied"
        return exc.strerror or " ".join(str(exc).split()) or type(exc).__name__

    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(missing.format(path=path)) from None
    except OSError as exc:  # PermissionError too: a folder on the way we may not enter
        raise error(unreadable.format(path=path, why=why(exc))) from None
    if stat.S_ISDIR(st.st_mode):
        raise error(folder.format(path=path))
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise error(unreadable.format(path=path, why=why(exc))) from None
