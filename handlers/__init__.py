"""Root handlers: every public ``req``-first function here is served at ``/<function>``.

The demo apps live in the sub-packages (``handlers/demo_api`` → ``/demo_api/...``).
"""

from butterfly_router import retstat


def ping(req):
    """``GET /ping`` → ``{"stat": "OK"}``: the cheapest "is it up?" check.

    :param req: the request
    :return: ``retstat.OK``
    """
    return retstat.OK
