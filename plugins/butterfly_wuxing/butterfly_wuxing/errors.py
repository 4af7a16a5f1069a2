"""The one exception the wuxing API raises on purpose."""

from __future__ import annotations

from typing import Any


class WuxingError(Exception):
    """A wuxing call was refused; nothing it would have written was kept.

    :param stat: the ``stat`` code (see :mod:`butterfly_wuxing.stats`)
    :param reason: a human explanation naming the offending value
    :param data: extra reply fields (e.g. the current value after a failed
        compare-and-set)
    """

    def __init__(self, stat: str, reason: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{stat}: {reason}")
        self.stat = stat
        self.reason = reason
        self.data = data or {}
