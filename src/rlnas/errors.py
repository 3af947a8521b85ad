"""The one exception type the command line turns into a one-line message."""


class RlnasError(Exception):
    """A user-facing error: bad input, missing file, mismatched run. Printed as one line."""
