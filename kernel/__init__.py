"""Butterfly's microkernel: hookspecs, plugin manager, settings, request path, server.

Plugins write ``from kernel import hookimpl``.
"""

from kernel.app import Kernel
from kernel.errors import (
    BadRequest,
    ButterflyError,
    ConfigError,
    Forbidden,
    HeadersTooLarge,
    HTTPError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PluginLoadError,
    ServerError,
    ServerNotImplemented,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from kernel.fasthooks import for_routes
from kernel.markers import hookimpl, hookspec
from kernel.request import Request
from kernel.response import Response

#: The one place butterfly-kernel's version is written (pyproject.toml reads it).
__version__ = "0.2.0"
#: Tells ``_butterfly_cli`` that ``import kernel`` found this package, not the PyPI ``kernel``.
__butterfly_distribution__ = "butterfly-kernel"

__all__ = [
    "BadRequest",
    "ButterflyError",
    "ConfigError",
    "Forbidden",
    "HTTPError",
    "HeadersTooLarge",
    "Kernel",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PluginLoadError",
    "Request",
    "Response",
    "ServerError",
    "ServerNotImplemented",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "for_routes",
    "hookimpl",
    "hookspec",
]
