"""Errors reported to the user as one line (the CLI turns them into ``Error: ...``, exit 1).

Anything else is a bug and keeps its traceback.
"""


class DenSNetError(Exception):
    """A failure the user can act on; the message says what happened and what to do."""


class InputError(DenSNetError, ValueError):
    """Bad input from the user: the message names the culprit and says what to do."""


class FrameFailure(RuntimeError):
    """A single frame could not be labelled (e.g. its SCF did not converge)."""
