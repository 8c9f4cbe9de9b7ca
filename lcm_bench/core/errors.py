"""The exceptions that reach the user as one-line messages and exit code 2, never a traceback."""


class UserError(Exception):
    """Bad input: a suite field, a CLI flag, a model path, a dataset. Printed without a traceback."""

    exit_code = 2

    def lines(self) -> list[str]:
        """What the user reads: one line."""
        return [" ".join(str(self).split())]


class MissingResourceError(UserError):
    """Something that must exist locally (weights, a dataset) is absent; the message says how to provide it."""


class MissingResources(MissingResourceError):
    """Several things a run needs are absent: one line each, all of them at once."""

    def __init__(self, errors: list[MissingResourceError]):
        self.errors = errors
        super().__init__(f"{len(errors)} things this suite needs are missing")

    def lines(self) -> list[str]:
        return [f"{len(self.errors)} things this suite needs are missing (offline):"] + [
            f"  - {line}" for error in self.errors for line in error.lines()
        ]


def raise_missing(errors: list[MissingResourceError]) -> None:
    """Raise what is missing: nothing, the one error, or all of them in one ``MissingResources``."""
    if len(errors) > 1:
        raise MissingResources(errors)
    if errors:
        raise errors[0]
