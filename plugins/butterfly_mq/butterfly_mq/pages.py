"""沧海 canghai HTML pages: server-rendered with Jinja2, no CDN, refreshing themselves."""

from __future__ import annotations

import datetime
import json
from functools import cache
from typing import Any

from butterfly_mq.dashboard import lookup_message, message_page, queues_overview, service_of
from butterfly_mq.keys import STATES
from kernel.response import Response

HTML_TYPE = "text/html; charset=utf-8"


def format_time(ms: Any) -> str:
    """Epoch milliseconds → ``2024-05-01 12:00:03.120`` (local time); ``-`` when missing."""
    if not isinstance(ms, int | float) or ms <= 0:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_age(seconds: Any) -> str:
    """Seconds → ``4s``, ``3m 20s``, ``2h 5m``, ``3d 4h``; ``-`` when missing."""
    if seconds is None:
        return "-"
    seconds = int(seconds)
    for size, unit, small, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"), (60, "m", 1, "s")):
        if seconds >= size:
            return f"{seconds // size}{unit} {seconds % size // small}{small_unit}"
    return f"{seconds}s"


@cache
def environment():
    """The Jinja2 environment (autoescaping on), built on first use."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("butterfly_mq", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    env.filters["time"] = format_time
    env.filters["age"] = format_age
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return env


def render(name: str, **context: Any) -> Response:
    """Render template ``name`` into an HTML response."""
    body = environment().get_template(name).render(states=STATES, **context).encode("utf-8")
    return Response(200, [("Content-Type", HTML_TYPE), ("Cache-Control", "no-store")], body)


def page_overview(request: Any) -> Response:
    """``/canghai/``: queues × states, instances; refreshes itself every few seconds."""
    service = service_of(request)
    instances = service.registry_list()
    return render(
        "overview.html", queues=queues_overview(service, instances), instances=instances, title="沧海 canghai"
    )


def page_queue(request: Any) -> Response:
    """``/canghai/queue?queue=&state=&page=``: one page of messages with actions."""
    page = message_page(service_of(request), request.query)
    return render("queue.html", page=page, title=f"{page['queue']} · {page['state']}")


def page_msg(request: Any) -> Response:
    """``/canghai/msg?msg_id=``: everything about one message."""
    message = lookup_message(service_of(request), request.query)
    return render("msg.html", msg=message, title=f"message {message['id']}")
