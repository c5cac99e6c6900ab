"""Errors that mean "the user asked for something that cannot be done".

The CLI turns an :class:`InputError` into a one-line message and a non-zero exit code; anything
else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from the user: the message names the culprit and says what to do."""


class FrameFailure(RuntimeError):
    """A single frame could not be labelled (e.g. its SCF did not converge)."""
