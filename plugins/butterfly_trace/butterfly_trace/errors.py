"""Rendering handler exceptions for err.log."""

from __future__ import annotations

import traceback

#: A traceback longer than this is cut (deep recursion); the innermost part is kept.
MAX_TRACEBACK_CHARS = 32 * 1024


def format_traceback(exc: BaseException) -> str:
    """The exception's traceback as text, chained causes included, locals never.

    :param exc: the exception that escaped a handler
    :return: at most :data:`MAX_TRACEBACK_CHARS` characters
    """
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…(traceback cut)\n" + text[-MAX_TRACEBACK_CHARS:]
    return text
