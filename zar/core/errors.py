"""The one error a user sees as a message, without a traceback."""
from __future__ import annotations



class UserError(RuntimeError):
    """An error caused by input or environment, with a message that says what to do.

    The command line prints it without a traceback and exits with status 2.
    """


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (or its type), at most ``limit`` characters."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]
