"""The one error type a user sees: it carries a message meant to be read, not a traceback."""


class DatakitError(Exception):
    """A problem with the user's input, flags or environment; the CLI prints it and exits with 2."""
