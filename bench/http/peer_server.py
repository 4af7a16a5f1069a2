"""The waitress settings ``kernel/server.py`` uses, for the benchmarks' peer servers (only the app differs)."""

from __future__ import annotations

import warnings
from typing import Any

from waitress import create_server

from kernel.defaults import SEND_BUFFER


def peer_server(app: Any, port: int, threads: int, *, waitress_defaults: bool = False) -> Any:
    """``app`` on waitress at ``127.0.0.1:port`` with Butterfly's waitress settings.

    :param waitress_defaults: keep waitress's own ``send_bytes`` (what ``waitress-serve``
        gives) instead of ``[server] send_buffer``'s default
    """
    knobs = {} if waitress_defaults else {"send_bytes": SEND_BUFFER}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # send_bytes: see kernel/server.py
        return create_server(
            app,
            host="127.0.0.1",
            port=port,
            threads=threads,
            ident="",
            connection_limit=1000,
            channel_timeout=120,
            **knobs,
        )
