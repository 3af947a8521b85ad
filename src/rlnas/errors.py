"""The one exception type the command line turns into a one-line message."""


class RlnasError(Exception):
    """A user-facing error: bad input, missing file, mismatched run. Printed as one line."""


class UserCodeError(RlnasError):
    """An exception raised by the user's own code (a space's module, factory, stem, head or op
    constructor): the message says, in one line, which space and which part of it failed; the
    original exception is the ``__cause__``, whose traceback (the user's code) the command line
    prints after that line."""
