"""demo_api: the JSON handlers of the five-minute guide.

Every public function whose first parameter is ``req`` is a route:
``ping`` → ``/demo_api/ping``, ``hello`` → ``/demo_api/hello``. Undecorated
functions are ``@api`` (JSON) handlers; their parameters are the request's
parameters, type hints convert and check them.

It imports ``funcattr`` like the original Butterfly's demo, so the original's
five-minute guide works verbatim: copy this app to ``handlers/test_app`` and append
a ``@funcattr.api`` handler.
"""

import base64
import secrets

from butterfly_router import funcattr, retstat

#: Every demo reply carries this header, like the original's ``(__info, __version)``.
DEMO_HEADERS = [("demo", "1.0.1")]


def _random_string() -> str:
    """64–127 random bytes, base64 with ``()`` for ``+/`` and no ``=`` padding."""
    raw = secrets.token_bytes(64 + secrets.randbelow(64))
    return base64.b64encode(raw, altchars=b"()").rstrip(b"=").decode("ascii")


def ping(req):
    """``/demo_api/ping`` → ``{"stat": "OK", "randstr": "..."}``.

    :param req: the request
    :return: ``(stat, data, headers)``
    """
    return retstat.OK, {"randstr": _random_string()}, DEMO_HEADERS


def hello(req, str_info):
    """``/demo_api/hello?str_info=x`` → ``{"stat": "OK", "str_info": "x"}``.

    Without ``str_info`` the router answers 400 ``ERR_BAD_PARAMS``.

    :param req: the request
    :param str_info: any text; echoed back as given
    :return: ``(stat, data, headers)``
    """
    return retstat.OK, {"str_info": str_info}, DEMO_HEADERS


@funcattr.api
def add(req, a: int, b: int = 1):
    """``/demo_api/add?a=2&b=3`` → ``{"stat": "OK", "sum": 5}``.

    The type hints make the router convert ``"2"`` to ``2`` and answer 400
    ``ERR_BAD_PARAMS`` naming the parameter for ``a=two``.

    :param req: the request
    :param a: first addend (required)
    :param b: second addend (default 1)
    :return: ``(stat, data)``
    """
    return retstat.OK, {"sum": a + b}


def steps(req, rounds: int = 3):
    """``/demo_api/steps?rounds=3``: shows timing points.

    ``req.timing("name")`` records the milliseconds since the previous point;
    ``with req.timer("name"):`` times a block. Both appear in the access log's
    ``talk`` field and in the ``Server-Timing`` response header.

    :param req: the request
    :param rounds: how many hashing rounds to time (1–1000)
    :return: ``(stat, data, headers)``; ``ERR_BAD_PARAMS`` when ``rounds`` is out of range
    """
    if not 1 <= rounds <= 1000:
        return retstat.ERR_BAD_PARAMS, {"errors": [{"param": "rounds", "reason": "must be 1..1000"}]}
    req.timing("prepare")
    digest = b"butterfly"
    with req.timer("hash"):
        for _ in range(rounds * 100):
            digest = base64.b64encode(digest[:32])
    req.timing("finish")
    return retstat.OK, {"rounds": rounds, "timings": sorted(req.timings)}, DEMO_HEADERS
