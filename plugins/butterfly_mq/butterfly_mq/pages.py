"""沧海 canghai HTML pages, in the shared layout of every Butterfly page (server-rendered, no CDN).

* ``/canghai/``: queues × states; idle queues hidden unless ``?all=1``; a throughput
  sparkline per queue; a warning for queues whose messages wait with no live consumer
  (when the queue rows carry ``consumers``); "paused" (the flag) or "paused on N of M
  instances" (``[mq] paused``); live and dead instances.
* ``/canghai/queue?queue=&state=&page=``: how the queue is paused (its flag: everywhere;
  ``[mq] paused``: on which instances, and which still pop it) with pause / resume, then
  one page of its messages, with requeue / delete / empty buttons.
* ``/canghai/msg?msg_id=``: everything about one message.
* With the MQ off, ``/canghai/`` explains how to turn it on.

The buttons POST JSON to the admin API (:mod:`butterfly_mq.dashboard`); the pages
refresh their live parts every few seconds.
"""

from __future__ import annotations

from typing import Any

from butterfly_mq.dashboard import _topic, lookup_message, message_page, queue_detail, queues_overview, service_of
from butterfly_mq.keys import STATES, TERMINAL_STATES
from butterfly_router import ui
from kernel.response import Response

SOURCE = "butterfly_mq"
TITLE = "沧海 canghai"
REFRESH_SECONDS = 5
#: States that mean work is waiting or running.
WAITING_STATES = ("queued", "started", "scheduled")
#: States an operator may requeue a message from.
REQUEUEABLE = ("finished", "failed", "dead", "scheduled")


def is_active(queue: dict[str, Any]) -> bool:
    """A queue worth showing by default: work waiting or running, failures to look at,
    recent throughput, or paused by someone."""
    busy = any(queue.get(state) for state in (*WAITING_STATES, "failed", "dead"))
    return bool(busy or queue.get("throughput_per_min") or queue.get("paused"))


def lacks_consumer(queue: dict[str, Any]) -> bool:
    """True when the row says no live instance consumes the queue (rows without the field: unknown)."""
    return "consumers" in queue and not queue["consumers"]


def page_overview(request: Any) -> Response:
    """``/canghai/``: the queues that matter (``?all=1``: every queue), instances."""
    service = service_of(request)
    show_all = ui.query_flag(request, "all")
    instances = service.registry_list()
    queues = queues_overview(service, instances)
    shown = queues if show_all else [queue for queue in queues if is_active(queue)]
    unconsumed = [q for q in queues if lacks_consumer(q) and any(q.get(state) for state in ("queued", "scheduled"))]
    return ui.render(
        request,
        "overview.html",
        source=SOURCE,
        title=TITLE,
        refresh=REFRESH_SECONDS,
        states=STATES,
        queues=shown,
        total_queues=len(queues),
        hidden=len(queues) - len(shown),
        show_all=show_all,
        unconsumed=unconsumed,
        instances=instances,
    )


#: Without ``state``, a queue's page opens the first of these that has messages.
OPENING_STATES = ("queued", "started", "scheduled", "failed", "dead", "finished")


def page_queue(request: Any) -> Response:
    """``/canghai/queue?queue=&state=&page=``: one page of messages with actions.

    Without ``state`` it shows the first state (in :data:`OPENING_STATES` order) that has messages.
    Above them: how the queue is paused (:func:`~butterfly_mq.dashboard.pause_facts`) and who pops it.
    """
    service = service_of(request)
    params = dict(request.query)
    counts = queue_detail(service, _topic(params))
    if not params.get("state"):
        params["state"] = next((state for state in OPENING_STATES if counts.get(state)), "queued")
    page = message_page(service, params)
    return ui.render(
        request,
        "queue.html",
        source=SOURCE,
        title=page["queue"],
        refresh=REFRESH_SECONDS,
        states=STATES,
        page=page,
        counts=counts,
        requeueable=REQUEUEABLE,
        emptiable=tuple(state for state in STATES if state != "started"),
    )


def page_msg(request: Any) -> Response:
    """``/canghai/msg?msg_id=``: everything about one message."""
    message = lookup_message(service_of(request), request.query)
    return ui.render(
        request,
        "msg.html",
        source=SOURCE,
        title=f"message {message['id']}",
        refresh=REFRESH_SECONDS if message.get("state") in WAITING_STATES else 0,
        msg=message,
        requeueable=REQUEUEABLE,
        terminal=TERMINAL_STATES,
    )


def page_off(request: Any) -> Response:
    """``/canghai/`` with the MQ off: how to turn it on."""
    return ui.render(request, "off.html", source=SOURCE, title=TITLE)
