"""The peers Butterfly is measured against, each answering ``/demo_api/hello?str_info=x``.

All return exactly Butterfly's body, ``{"stat":"OK","str_info":"x"}``, as
``application/json``. Served by :mod:`serve` on waitress with the same thread
count as Butterfly.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

PATH = "/demo_api/hello"


def raw_app(environ, start_response):
    """The floor: a hand-written WSGI callable with no framework at all.

    :param environ: the WSGI environ
    :param start_response: the WSGI callback
    :return: the body chunks
    """
    if environ.get("PATH_INFO") != PATH:
        body = b'{"stat":"ERR_NOT_FOUND"}'
        start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    values = parse_qs(environ.get("QUERY_STRING", "")).get("str_info")
    if not values:
        body = b'{"stat":"ERR_BAD_PARAMS"}'
        start_response("400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    body = json.dumps({"stat": "OK", "str_info": values[0]}, separators=(",", ":")).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def flask_app():
    """The peer: the same endpoint in Flask (imported here so the raw server never loads Flask).

    :return: the Flask WSGI application
    """
    from flask import Flask, jsonify, request

    app = Flask("bench")

    @app.get(PATH)
    def hello():
        str_info = request.args.get("str_info")
        if str_info is None:
            return jsonify(stat="ERR_BAD_PARAMS"), 400
        return jsonify(stat="OK", str_info=str_info)

    return app


def falcon_app():
    """The fast peer: the same endpoint in Falcon (imported here so the other servers never load it).

    Idiomatic Falcon: a resource class, ``req.get_param`` and ``resp.media``, with the
    JSON handler set to compact separators so the body is byte-for-byte Butterfly's.

    :return: the Falcon WSGI application
    """
    import functools

    import falcon
    import falcon.media

    class Hello:
        def on_get(self, req, resp):
            str_info = req.get_param("str_info")
            if str_info is None:
                resp.status = falcon.HTTP_400
                resp.media = {"stat": "ERR_BAD_PARAMS"}
                return
            resp.media = {"stat": "OK", "str_info": str_info}

    app = falcon.App()
    compact = falcon.media.JSONHandler(dumps=functools.partial(json.dumps, separators=(",", ":")))
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = compact
    app.add_route(PATH, Hello())
    return app
