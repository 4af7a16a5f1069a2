"""``[router] stat_adaptor``: derive extra fields from ``stat`` in every JSON reply.

Made for front-ends (AMIS and friends) that want ``{"success": true, "message": ...}``
next to Butterfly's ``stat``. Registered as its own small plugin only when the
setting is on, so it costs nothing otherwise.
"""

from __future__ import annotations

from typing import Any

from kernel import hookimpl


class StatAdaptor:
    """Adds ``ok_field`` (bool) and ``message_field`` (the stat) to JSON replies.

    :param ok_field: name of the boolean field (``success``)
    :param message_field: name of the field that repeats ``stat``, or ``None``;
        a ``message`` the handler set itself is kept
    :param ok_stats: the stats that count as success (default ``["OK"]``)
    """

    def __init__(self, ok_field: str, message_field: str | None = None, ok_stats: list[str] | None = None) -> None:
        self.ok_field = ok_field
        self.message_field = message_field
        self.ok_stats = frozenset(ok_stats or ["OK"])

    def apply(self, data: dict[str, Any]) -> None:
        """Add the fields to one JSON body that carries ``stat``.

        :param data: the reply's data dict, changed in place
        """
        stat = data.get("stat")
        if stat is None:
            return
        data[self.ok_field] = isinstance(stat, str) and stat in self.ok_stats
        if self.message_field is not None:
            data.setdefault(self.message_field, stat)

    @hookimpl
    def butterfly_response_headers(self, request, response):
        """Apply to every JSON response still holding its ``data`` (errors included)."""
        if isinstance(response.data, dict):
            self.apply(response.data)
