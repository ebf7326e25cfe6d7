"""The errors a user sees: they carry a message meant to be read, not a traceback."""


class DatakitError(Exception):
    """A problem with the user's input, flags or environment; the CLI prints it and exits with 2."""


class RowError(ValueError):
    """One input row that cannot be used, and the field at fault (None: the whole row)."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason
