"""The one error a user sees as a message, without a traceback."""
from __future__ import annotations



class UserError(RuntimeError):
    """An error caused by input or environment, with a message that says what to do.

    The command line prints it without a traceback and exits with status 2.
    """
