"""沧海 canghai: the JSON API under ``/canghai/api/`` (the HTML pages use it too).

Reads answer from O(1) Redis work per queue (LLEN/ZCARD, one pipelined round trip
for all queues). Actions (requeue, delete, empty, pause, resume, enqueue) are
admin routes that take a JSON body only: a cross-site HTML form cannot send
``application/json``, so they are safe from CSRF without tokens.
"""

from __future__ import annotations

from typing import Any

from butterfly_mq.keys import STATES, check_msg_id, check_topic
from butterfly_mq.queue import Queue, counts_for, find_message, registered_topics
from kernel.errors import BadRequest, NotFound, ServiceUnavailable
from kernel.response import Response

MAX_PAGE_SIZE = 200


def service_of(request: Any):
    """The kernel's MQ service; 503 when the MQ is off."""
    service = request.kernel.extensions.get("mq")
    if service is None:
        raise ServiceUnavailable("the MQ is off: set [mq] redis_url")
    return service


def _text(params: dict[str, Any], name: str, default: str | None = None) -> str:
    value = params.get(name, default)
    if isinstance(value, list):  # a repeated query parameter (the last wins), or a JSON list
        value = value[-1] if value else None
    if value is None or value == "":
        raise BadRequest(f"missing parameter {name}", data={"errors": [{"param": name, "reason": "required"}]})
    return str(value)


def _int(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name, default)
    last: Any = (raw[-1] if raw else None) if isinstance(raw, list) else raw  # a repeated parameter: the last wins
    try:
        value = int(last)
    except (TypeError, ValueError):
        raise BadRequest(
            f"{name} must be an integer",
            data={"errors": [{"param": name, "reason": f"expected an integer, got {raw!r}"}]},
        ) from None
    if not low <= value <= high:
        raise BadRequest(
            f"{name} must be between {low} and {high}",
            data={"errors": [{"param": name, "reason": f"out of range {low}..{high}"}]},
        )
    return value


def _topic(params: dict[str, Any], name: str = "queue") -> str:
    try:
        return check_topic(_text(params, name))
    except ValueError as exc:
        raise BadRequest(str(exc), data={"errors": [{"param": name, "reason": str(exc)}]}) from None


def _state(params: dict[str, Any]) -> str:
    state = _text(params, "state", "queued")
    if state not in STATES:
        raise BadRequest(
            f"unknown state {state!r}", data={"errors": [{"param": "state", "reason": f"one of {', '.join(STATES)}"}]}
        )
    return state


def _action_params(request: Any) -> dict[str, Any]:
    if not request.content_type.endswith("json"):
        raise BadRequest("send the parameters as a JSON object (Content-Type: application/json)")
    payload = request.json
    if not isinstance(payload, dict):
        raise BadRequest("JSON body must be an object")
    return payload


# -- reads ---------------------------------------------------------------------------------


def consumers_of(service: Any, topic: str, instances: list[dict[str, Any]] | None = None) -> int:
    """How many live instances consume ``topic`` (and do not have it paused locally).

    :param instances: the instance list, if already read
    """
    instances = service.registry_list() if instances is None else instances
    return sum(
        1
        for instance in instances
        if instance["alive"]
        and topic in instance.get("queues", ())
        and topic not in (instance.get("counters") or {}).get("paused", ())
    )


def paused_on(topic: str, instances: list[dict[str, Any]]) -> list[str]:
    """Live instances consuming ``topic`` that pause it on their own (``[mq] paused``), by name."""
    return [
        instance["name"]
        for instance in instances
        if instance["alive"]
        and topic in instance.get("queues", ())
        and topic in (instance.get("counters") or {}).get("paused", ())
    ]


def pause_facts(topic: str, flagged: bool, instances: list[dict[str, Any]]) -> dict[str, Any]:
    """How ``topic`` is paused, and who still pops it.

    :param flagged: the queue's pause flag in Redis (canghai's or ``butterfly mq pause``)
    :param instances: the instance list (:meth:`MQService.registry_list`)
    :return: ``paused_cluster`` (the flag: no instance pops it), ``paused_on`` (live instances
        consuming it that pause it by ``[mq] paused``), ``consumed_on`` (the other live instances
        consuming it), ``consumers`` (how many those are) and ``paused`` (either pause holds)
    """
    local = paused_on(topic, instances)
    consumed = [
        instance["name"]
        for instance in instances
        if instance["alive"] and topic in instance.get("queues", ()) and instance["name"] not in local
    ]
    return {
        "paused": flagged or bool(local),
        "paused_cluster": flagged,
        "paused_on": local,
        "consumed_on": consumed,
        "consumers": len(consumed),
    }


def queues_overview(service: Any, instances: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Counts of every registered queue (one pipelined round trip), each with :func:`pause_facts`:
    ``consumers`` is how many live instances pop it (0: messages wait until one does).

    Pauses: ``paused_cluster`` is the queue's flag in Redis (canghai or ``butterfly mq pause``:
    no instance pops it); ``paused_on`` lists the live instances that pause it on their own
    (``[mq] paused``), ``consumed_on`` the live instances that pop it; ``paused`` is true when
    either pause holds — a resume lifts both.
    """
    rows = counts_for(service.client, registered_topics(service.client, service.config.prefix), service.config.prefix)
    instances = service.registry_list() if instances is None else instances
    for row in rows:
        row.update(pause_facts(row["name"], row["paused"], instances))
    return rows


def queue_detail(service: Any, topic: str, instances: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One queue's row as in :func:`queues_overview` (counts and :func:`pause_facts`)."""
    row = Queue(service.client, topic, service.config.prefix).counts()
    instances = service.registry_list() if instances is None else instances
    row.update(pause_facts(topic, row["paused"], instances))
    return row


def api_queues(request: Any) -> Response:
    """``GET /canghai/api/queues``: counts by state, oldest age, throughput, live consumers and
    pauses per queue."""
    service = service_of(request)
    return Response.json({"stat": "OK", "queues": queues_overview(service)})


def api_queue(request: Any) -> Response:
    """``GET /canghai/api/queue?queue=``: one queue's row as in ``/canghai/api/queues`` (the
    queue page's facts; a queue nobody used yet answers zeros, as its page does)."""
    service = service_of(request)
    return Response.json({"stat": "OK", "queue": queue_detail(service, _topic(request.query))})


def api_instances(request: Any) -> Response:
    """``GET /canghai/api/instances``: live and dead instances with their last heartbeat."""
    service = service_of(request)
    return Response.json({"stat": "OK", "instances": service.registry_list()})


def message_page(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    """One page of a queue's messages in a state (shared by the API and the HTML page)."""
    topic, state = _topic(params), _state(params)
    page = _int(params, "page", 1, 1, 10**6)
    size = _int(params, "page_size", 20, 1, MAX_PAGE_SIZE)
    total, msgs = Queue(service.client, topic, service.config.prefix).page(state, (page - 1) * size, size)
    return {
        "queue": topic,
        "state": state,
        "page": page,
        "page_size": size,
        "total": total,
        "pages": max(1, -(-total // size)),
        "msgs": msgs,
    }


def api_msgs(request: Any) -> Response:
    """``GET /canghai/api/msgs?queue=&state=&page=&page_size=``: a page of messages."""
    return Response.json({"stat": "OK", **message_page(service_of(request), request.query)})


def lookup_message(service: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The message named by ``msg_id`` (and optional ``queue``); 404 when unknown."""
    msg_id = _text(params, "msg_id")
    try:
        check_msg_id(msg_id)
    except ValueError as exc:
        raise BadRequest(str(exc), data={"errors": [{"param": "msg_id", "reason": str(exc)}]}) from None
    prefix = service.config.prefix
    if params.get("queue"):
        message = Queue(service.client, _topic(params), prefix).get(msg_id)
    else:
        message = find_message(service.client, msg_id, registered_topics(service.client, prefix), prefix)
    if message is None:
        raise NotFound(f"no message {msg_id}")
    return message


def api_msg(request: Any) -> Response:
    """``GET /canghai/api/msg?msg_id=``: params, result, error, attempts, lineage."""
    return Response.json({"stat": "OK", "msg": lookup_message(service_of(request), request.query)})


# -- actions (admin) -------------------------------------------------------------------------


def _queue_of_message(service: Any, params: dict[str, Any]) -> tuple[Queue, str]:
    message = lookup_message(service, params)
    return Queue(service.client, message["topic"], service.config.prefix), message["id"]


def api_requeue(request: Any) -> Response:
    """``POST /canghai/api/requeue {"msg_id"}``: run a finished/failed/dead/scheduled message again."""
    service = service_of(request)
    queue, msg_id = _queue_of_message(service, _action_params(request))
    if queue.requeue(msg_id) != 1:
        raise BadRequest(
            f"message {msg_id} is queued or running; only finished, failed, dead and scheduled messages can be requeued"
        )
    service.wake(queue.topic)
    return Response.json({"stat": "OK", "msg_id": msg_id})


def api_delete(request: Any) -> Response:
    """``POST /canghai/api/delete {"msg_id"}``: remove a message whatever its state."""
    service = service_of(request)
    queue, msg_id = _queue_of_message(service, _action_params(request))
    return Response.json({"stat": "OK", "deleted": queue.delete(msg_id)})


def api_empty(request: Any) -> Response:
    """``POST /canghai/api/empty {"queue", "state"}``: delete every message in a state."""
    service = service_of(request)
    params = _action_params(request)
    queue = Queue(service.client, _topic(params), service.config.prefix)
    try:
        deleted = queue.empty(_state(params))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return Response.json({"stat": "OK", "deleted": deleted})


def api_pause(request: Any) -> Response:
    """``POST /canghai/api/pause {"queue"}``: stop every instance popping this queue (its flag in Redis)."""
    service = service_of(request)
    topic = _topic(_action_params(request))
    service.pause(topic)
    return Response.json({"stat": "OK", "queue": topic, "paused": True})


def api_resume(request: Any) -> Response:
    """``POST /canghai/api/resume {"queue"}``: let every instance pop it again — clears the
    queue's flag and lifts every instance's own pause (``[mq] paused``)."""
    service = service_of(request)
    topic = _topic(_action_params(request))
    service.resume(topic)
    return Response.json({"stat": "OK", "queue": topic, "paused": False})


def api_enqueue(request: Any) -> Response:
    """``POST /canghai/api/enqueue {"topic", "params", "delay", "ttl", "retries", "msg_id"}``.

    The reply names how many live instances consume the topic; with none it carries a
    ``warning`` (the message is accepted all the same).
    """
    from butterfly_mq.producer import enqueue

    service = service_of(request)
    payload = _action_params(request)
    unknown = set(payload) - {"topic", "params", "delay", "ttl", "retries", "msg_id"}
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    topic = _text(payload, "topic")
    msg_id = enqueue(
        topic,
        payload.get("params") or {},
        kernel=service.kernel,
        msg_id=payload.get("msg_id"),
        delay=payload.get("delay"),
        ttl=payload.get("ttl"),
        retries=payload.get("retries"),
    )
    reply: dict[str, Any] = {"stat": "OK", "msg_id": msg_id, "consumers": consumers_of(service, topic)}
    if not reply["consumers"]:
        reply["warning"] = f"no live instance consumes {topic}; the message was accepted and waits until one does"
    return Response.json(reply)


def api_enqueue_many(request: Any) -> Response:
    """``POST /canghai/api/enqueue_many {"topic", "messages": [{"params": {...}, "msg_id": "..."}, ...],
    "delay", "ttl", "retries"}`` (``msg_id`` optional per message).

    One round trip to Redis for the whole batch (at most ``[mq] enqueue_many_max`` messages).
    Each message is checked on its own: the reply lists every one with its ``status``
    (``enqueued``, ``exists``, ``duplicate``, ``invalid`` with ``reason``/``errors``) and the
    counts; invalid messages do not stop the others.
    """
    from butterfly_mq.batch import enqueue_many

    service = service_of(request)
    payload = _action_params(request)
    unknown = set(payload) - {"topic", "messages", "delay", "ttl", "retries"}
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    topic = _text(payload, "topic")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(message, dict) and set(message) <= {"params", "msg_id"} for message in messages
    ):
        raise BadRequest(
            'messages must be a list of {"params": {...}, "msg_id": "..."} objects',
            data={"errors": [{"param": "messages", "reason": "expected a list of message objects"}]},
        )
    most = service.config.enqueue_many_max
    if len(messages) > most:
        raise BadRequest(
            f"at most {most} messages per request ([mq] enqueue_many_max), got {len(messages)}",
            data={"errors": [{"param": "messages", "reason": f"at most {most} items"}]},
        )
    result = enqueue_many(
        topic,
        [message.get("params", {}) for message in messages],
        kernel=service.kernel,
        msg_ids=[message.get("msg_id") for message in messages],
        delay=payload.get("delay"),
        ttl=payload.get("ttl"),
        retries=payload.get("retries"),
    )
    reply: dict[str, Any] = {"stat": "OK", **result.summary(), "consumers": consumers_of(service, topic)}
    reply["items"] = [item.as_dict() for item in result.items]
    if not reply["consumers"]:
        reply["warning"] = f"no live instance consumes {topic}; the messages were accepted and wait until one does"
    return Response.json(reply)


READ_ROUTES = {"queues": api_queues, "queue": api_queue, "instances": api_instances, "msgs": api_msgs, "msg": api_msg}
ACTION_ROUTES = {
    "requeue": api_requeue,
    "delete": api_delete,
    "empty": api_empty,
    "pause": api_pause,
    "resume": api_resume,
    "enqueue": api_enqueue,
    "enqueue_many": api_enqueue_many,
}
