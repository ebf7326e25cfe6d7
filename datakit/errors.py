"""The errors a user sees: they carry a message meant to be read, not a traceback.

The CLI prints each as one line and exits with a code saying what kind of failure it was (README,
"When things go wrong"); `--debug` or DATAKIT_DEBUG=1 shows the traceback instead.
"""

from __future__ import annotations

import errno
import os

EXIT_BAD_INPUT = 2  # DatakitError: the user's input, flags or settings
EXIT_SYSTEM = 3  # OSError: disk full, no permission, a file that cannot be read or written
EXIT_BACKEND = 4  # BackendError: a teacher or judge server or engine that kept failing
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it

OUT_OF_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # EFBIG: a file-size limit (ulimit -f) hit
NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}
MACHINE_FAULTS = OUT_OF_SPACE | NOT_ALLOWED | {errno.EIO}


class DatakitError(Exception):
    """A problem with the user's input, flags or environment; the CLI prints it and exits with 2."""

    exit_code = EXIT_BAD_INPUT


class BackendError(DatakitError):
    """A server or engine that still failed after its retries; what finished is kept, so a re-run
    resumes once it is healthy. The CLI exits with 4."""

    exit_code = EXIT_BACKEND


class RowError(ValueError):
    """One input row that cannot be used, and the field at fault (None: the whole row)."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def exit_code(e: DatakitError | OSError) -> int:
    """The CLI's exit code for a failure. A reader that names an input file it could not read raises a
    DatakitError from the OSError; a machine fault under it (no permission, full disk, I/O error) is
    still a 3, so scripts can tell "fix the machine" from "fix the input"."""
    if isinstance(e, OSError) or (isinstance(e.__cause__, OSError) and e.__cause__.errno in MACHINE_FAULTS):
        return EXIT_SYSTEM
    return e.exit_code


def describe_os_error(e: OSError) -> str:
    """One line for a failure of the machine rather than the input: the path, the cause and what to do."""
    where = f"{e.filename}: " if e.filename else ""
    cause = os.strerror(e.errno) if e.errno else str(e)
    if e.errno in OUT_OF_SPACE:
        return f"{where}cannot write ({cause}); free space, then re-run the same command to resume"
    if e.errno in NOT_ALLOWED:
        return f"{where}{cause}; fix the permissions or choose another path, then re-run the same command"
    return f"{where}{cause}"
