"""What waitress answers on its own, made to follow the HTTP contract; and the file budget.

Waitress rejects some requests before the kernel ever sees them: a malformed request
line or header (400), a body whose ``Content-Length`` is over the limit — checked
from the header, so the body is never read — or a chunked body that grows past it
(413), headers that are too large (431), an unsupported ``Transfer-Encoding`` (501).
Its own replies are plain text; :func:`use_json_errors` makes them the same JSON
envelope with ``x-reason`` that every framework error has.
"""

from __future__ import annotations

import resource
from typing import Any

import structlog
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from kernel.errors import (
    BadRequest,
    HeadersTooLarge,
    HTTPError,
    PayloadTooLarge,
    ServerError,
    ServerNotImplemented,
)
from kernel.response import Response, status_line

log = structlog.get_logger("butterfly.server")

#: waitress error status → the kernel's error class for it.
ERRORS_BY_STATUS: dict[int, type[HTTPError]] = {
    400: BadRequest,
    413: PayloadTooLarge,
    431: HeadersTooLarge,
    500: ServerError,
    501: ServerNotImplemented,
}
#: File descriptors kept free for everything that is not a client connection
#: (log files, the database, Redis, the listening sockets).
RESERVED_FILES = 128


def envelope_for(error: Any, max_body: int) -> Response:
    """The JSON reply for one of waitress's error objects (``waitress.utilities.Error``).

    :param error: what waitress put on ``request.error``; its ``code`` and ``body``
        are the documented attributes used here
    :param max_body: ``[server] max_body``, to word the 413 like the kernel does
    :return: a finalised :class:`Response`
    """
    status = int(getattr(error, "code", 500) or 500)
    error_class = ERRORS_BY_STATUS.get(status)
    reason = str(getattr(error, "body", "") or "") or getattr(error, "reason", "")
    if status == 413:
        reason = f"body is larger than max_body ({max_body} bytes)"
    elif status == 500:
        reason = "server exception"  # NOTE: never waitress's text: it may hold a traceback
    if error_class is None:
        exc = HTTPError(reason, stat="ERR_BAD_REQUEST" if status < 500 else "ERR_SERVER_EXCEPTION")
        exc.status = status
    else:
        exc = error_class(reason)
    response = exc.to_response()
    response.finalize()
    return response


# NOTE: waitress has no documented hook for its error replies. ErrorTask and the
# channel's ``error_task_class`` attribute are the seams it uses itself (its own
# InternalServerError path goes through them too); we override only ``execute``
# and set only the public attributes waitress's ErrorTask sets.
class JSONErrorTask(ErrorTask):
    """Waitress's error task, answering with the kernel's JSON envelope."""

    def execute(self) -> None:
        """Write the JSON error reply and close the connection afterwards."""
        max_body = max(0, int(self.channel.server.adj.max_request_body_size) - 1)
        response = envelope_for(self.request.error, max_body)
        body = response.body
        assert isinstance(body, bytes)  # finalize() encoded the JSON envelope
        self.status = status_line(response.status)
        self.response_headers.extend(response.headers)
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JSONErrorChannel(HTTPChannel):
    """An HTTP channel whose transport errors are JSON (:class:`JSONErrorTask`)."""

    error_task_class = JSONErrorTask


def use_json_errors(server: Any) -> None:
    """Make every listening server of ``waitress.create_server(...)`` answer errors as JSON.

    :param server: what ``create_server`` returned (one server, or a
        ``MultiSocketServer`` whose ``map`` holds one per socket)
    """
    servers = [server] if isinstance(server, BaseWSGIServer) else list(getattr(server, "map", {}).values())
    for candidate in servers:
        if isinstance(candidate, BaseWSGIServer):
            candidate.channel_class = JSONErrorChannel


def fit_connection_limit(wanted: int) -> int:
    """Raise the open-file limit for ``wanted`` connections; return what fits.

    Each connection is a file descriptor. The soft ``RLIMIT_NOFILE`` is raised up to
    the hard limit when needed; when even that is too small, the connection limit
    is lowered (with a warning) so ``accept`` never fails with "too many open files".

    :param wanted: ``[server] connection_limit``
    :return: the connection limit to give waitress
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit", wanted=target, error=str(exc))
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(1, soft - RESERVED_FILES)
        log.warning(
            "connection_limit lowered to fit the open-file limit",
            connection_limit=wanted,
            lowered_to=fitted,
            open_file_limit=soft,
        )
        return fitted
    return wanted
