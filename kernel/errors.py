"""The kernel's small exception hierarchy.

Every error Butterfly raises on purpose derives from :class:`ButterflyError`.
:class:`HTTPError` and its subclasses carry an HTTP status and a ``stat`` code and
render themselves as the JSON envelope every client sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel.response import Response


class ButterflyError(Exception):
    """Base class of every error Butterfly raises on purpose."""


class ConfigError(ButterflyError):
    """A setting is unknown, has a bad value, or the config file cannot be read."""


class PluginLoadError(ButterflyError):
    """A plugin could not be imported, registered or validated.

    :param plugin_name: the entry-point name of the plugin
    :param dist: the distribution that provides it (``name version``), if known
    """

    def __init__(self, message: str, *, plugin_name: str = "", dist: str = "") -> None:
        super().__init__(message)
        self.plugin_name = plugin_name
        self.dist = dist


class HTTPError(ButterflyError):
    """An error that ends a request with a JSON reply and a real HTTP status.

    :param reason: short, human readable; also sent in the ``x-reason`` header
    :param data: extra fields merged into the JSON body (e.g. ``errors``)
    :param headers: extra response headers
    """

    status = 500
    stat = "ERR_SERVER_EXCEPTION"

    def __init__(
        self,
        reason: str = "",
        *,
        data: dict[str, Any] | None = None,
        headers: list[tuple[str, str]] | None = None,
        stat: str | None = None,
    ) -> None:
        super().__init__(reason or self.stat)
        self.reason = reason or self.stat
        self.data = data or {}
        self.headers = headers or []
        if stat is not None:
            self.stat = stat

    def to_response(self) -> Response:
        """Render the error as a JSON :class:`~kernel.response.Response`."""
        from kernel.response import Response

        body = {"stat": self.stat, **self.data}
        response = Response.json(body, status=self.status, headers=list(self.headers))
        response.stat = self.stat
        response.set_reason(self.reason)
        return response


class BadRequest(HTTPError):
    """The request is malformed or its parameters do not fit the handler (400)."""

    status = 400
    stat = "ERR_BAD_PARAMS"


class Unauthorized(HTTPError):
    """No valid credentials were presented (401)."""

    status = 401
    stat = "ERR_UNAUTHORIZED"


class Forbidden(HTTPError):
    """The caller is known but not allowed (403)."""

    status = 403
    stat = "ERR_FORBIDDEN"


class NotFound(HTTPError):
    """No route, file or object at this address (404)."""

    status = 404
    stat = "ERR_NOT_FOUND"


class MethodNotAllowed(HTTPError):
    """The route exists but not for this HTTP method (405)."""

    status = 405
    stat = "ERR_METHOD_NOT_ALLOWED"


class PayloadTooLarge(HTTPError):
    """The request body is larger than ``[server] max_body`` (413)."""

    status = 413
    stat = "ERR_PAYLOAD_TOO_LARGE"


class HeadersTooLarge(HTTPError):
    """The request line and headers are larger than the server accepts (431)."""

    status = 431
    stat = "ERR_HEADERS_TOO_LARGE"


class TooManyRequests(HTTPError):
    """The caller is rate limited (429)."""

    status = 429
    stat = "ERR_TOO_MANY_REQUESTS"


class ServerError(HTTPError):
    """The handler or a plugin raised; details go to the error log only (500)."""

    status = 500
    stat = "ERR_SERVER_EXCEPTION"


class ServerNotImplemented(HTTPError):
    """The request needs something the server does not do, e.g. a ``Transfer-Encoding`` (501)."""

    status = 501
    stat = "ERR_NOT_IMPLEMENTED"


class ServiceUnavailable(HTTPError):
    """A dependency is down or the server is shutting down (503)."""

    status = 503
    stat = "ERR_SERVICE_UNAVAILABLE"
