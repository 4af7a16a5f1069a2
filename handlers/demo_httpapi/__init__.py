"""demo_httpapi: raw ``@http`` handlers that choose their own status codes.

A raw handler returns ``(status, body)`` or ``(status, body, headers)``: a dict
body is sent as JSON, ``str``/``bytes`` as ``text/html`` unless a header says
otherwise. Missing or badly typed parameters still get the router's 400.
"""

import base64
import secrets
from urllib.parse import quote

from butterfly_router import http

DEMO_HEADERS = [("demo", "1.0.1")]


@http
def ping(req):
    """``/demo_httpapi/ping`` → 200 ``{"stat": "OK", "randstr": "..."}``.

    :param req: the request
    :return: ``(200, dict, headers)``
    """
    randstr = base64.b64encode(secrets.token_bytes(48), altchars=b"()").rstrip(b"=").decode("ascii")
    return 200, {"stat": "OK", "randstr": randstr}, DEMO_HEADERS


@http
def hello(req, str_info: str):
    """``/demo_httpapi/hello?str_info=x`` → 200 ``{"stat": "OK", "str_info": "x"}``.

    :param req: the request
    :param str_info: echoed back
    :return: ``(200, dict, headers)``
    """
    return 200, {"stat": "OK", "str_info": str_info}, DEMO_HEADERS


@http(methods=("POST",))
def create(req, name: str):
    """``POST /demo_httpapi/create name=x`` → 201 Created with a ``Location``.

    Nothing is stored: it shows how a handler answers with 201 and points at the
    new resource.

    :param req: the request
    :param name: the new item's name (1–64 characters)
    :return: 201 with ``{"stat": "OK", "name": ...}``, or 422 for a bad name
    """
    if not 1 <= len(name) <= 64:
        return 422, {"stat": "ERR_BAD_PARAMS", "errors": [{"param": "name", "reason": "1..64 characters"}]}
    location = "/demo_httpapi/hello?str_info=" + quote(name, safe="")
    return 201, {"stat": "OK", "name": name}, [("Location", location), *DEMO_HEADERS]


@http
def nothing(req):
    """``/demo_httpapi/nothing`` → 204 No Content, empty body.

    :param req: the request
    :return: ``(204, b"")``
    """
    return 204, b""


@http
def moved(req):
    """``/demo_httpapi/moved`` → 302 Found, redirecting to ``/demo_api/ping``.

    :param req: the request
    :return: ``(302, body, headers)`` with ``Location``
    """
    return 302, b"", [("Location", "/demo_api/ping")]


@http
def teapot(req):
    """``/demo_httpapi/teapot`` → 418 with a plain-text body (RFC 2324).

    :param req: the request
    :return: ``(418, str, headers)`` with ``Content-Type: text/plain``
    """
    return 418, "I'm a teapot: this server does not brew coffee.\n", [("Content-Type", "text/plain; charset=utf-8")]
