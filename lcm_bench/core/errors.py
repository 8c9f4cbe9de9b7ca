"""The one exception type that reaches the user as a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input: a suite field, a CLI flag, a model path, a dataset. Printed without a traceback."""

    exit_code = 2


class MissingResourceError(UserError):
    """Something that must exist locally (weights, a dataset) is absent; the message says how to provide it."""
