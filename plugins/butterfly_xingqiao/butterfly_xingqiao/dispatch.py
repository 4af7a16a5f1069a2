"""Everything xingqiao asks of the MQ: send a task's message, look one up, withdraw one.

Each task attempt is one message to the task's route, with a deterministic id
(``xq.<job>.<token>.<task>.<attempt>``), ``retries=0`` (xingqiao retries tasks
itself, so a business error stat can be retried too) and the job's reqid as the
producer reqid, so every run's access-log line names the job's request as parent.
Every task of a job runs in the job's W3C trace (:func:`job_trace`): its messages
carry it as ``traceparent``, so tracing tools show a job as one trace. The job's trace
is not the creating request's, so the request's ``tracestate`` stays behind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger("butterfly.xingqiao")

#: MQ message states that will still run (or are running)
LIVE_STATES = ("queued", "scheduled", "started")


@dataclass
class Dispatch:
    """One message to send once the transaction that decided it has committed."""

    route: str
    params: dict[str, Any]
    msg_id: str
    reqid: str
    delay: float = 0.0


def send_batch(kernel: Any, dispatches: list[Dispatch]) -> list[tuple[Dispatch, str]]:
    """Enqueue messages of one route, reqid and delay in one round trip (idempotent by
    each ``msg_id``: a message still kept is not sent twice).

    :return: the messages the MQ refused for their params, each with the reason
    :raises kernel.BadRequest: the whole batch was refused (a bad route name)
    :raises butterfly_mq.errors.MQError: the MQ is off or Redis did not answer
    """
    from butterfly_mq import enqueue_many

    first = dispatches[0]
    # NOTE: the producer reqid of a message is the reqid bound in the log context; bind
    # the job's, so a task enqueued by another task's end still names the job as parent.
    # The same for the trace: the job's, whoever sends the task; it has no tracestate
    # (Ellipsis is structlog's "unset"), whatever the sender's trace had.
    trace = job_trace_of(first.msg_id)
    lineage = {"trace_id": trace[0], "span_id": trace[1], "tracestate": ...} if trace else {}
    with structlog.contextvars.bound_contextvars(reqid=first.reqid, **lineage):
        result = enqueue_many(
            first.route,
            [dispatch.params for dispatch in dispatches],
            kernel=kernel,
            msg_ids=[dispatch.msg_id for dispatch in dispatches],
            delay=first.delay or None,
            retries=0,
        )
    return [(dispatches[item.index], reason_of(item.errors, item.reason)) for item in result.invalid]


def batches(dispatches: list[Dispatch]) -> list[list[Dispatch]]:
    """``dispatches`` grouped by route, reqid, delay and job (what one ``enqueue_many`` shares), in order."""
    groups: dict[tuple[str, str, float, str], list[Dispatch]] = {}
    for dispatch in dispatches:
        job = dispatch.msg_id.rsplit(".", 2)[0]  # xq.<job>.<token>: the trace is the job's
        groups.setdefault((dispatch.route, dispatch.reqid, dispatch.delay, job), []).append(dispatch)
    return list(groups.values())


def job_trace(job_id: int | str, token: str) -> tuple[str, str]:
    """The W3C trace every task of a job runs in: ``(trace_id, span_id)`` of the job's root
    span, derived from its id and token — the same on every instance and for every attempt."""
    digest = hashlib.sha256(f"xingqiao:{job_id}.{token}".encode()).hexdigest()
    return digest[:32], digest[32:48]


def job_trace_of(msg_id: str) -> tuple[str, str] | None:
    """:func:`job_trace` of the job a task message (``xq.<job>.<token>.<task>.<attempt>``) belongs to."""
    parts = msg_id.split(".")
    if len(parts) != 5 or parts[0] != "xq":
        return None
    return job_trace(parts[1], parts[2])


def reason_of(errors: list[dict[str, Any]], reason: str) -> str:
    """One line naming each bad param (``n: expected an integer; x: unknown``), else ``reason``."""
    return "; ".join(f"{e.get('param')}: {e.get('reason')}" for e in errors) or reason


def mq_service(kernel: Any) -> Any:
    """The kernel's running MQ service, or ``None`` when ``[mq] redis_url`` is unset."""
    return kernel.extensions.get("mq")


def message_of(kernel: Any, route: str, msg_id: str) -> dict[str, Any] | None:
    """A message's metadata and result from the MQ (``None`` when it is not kept)."""
    from butterfly_mq import get_message

    return get_message(msg_id, topic=route, kernel=kernel)


def withdraw(kernel: Any, route: str, msg_id: str) -> bool:
    """Delete a message that has not started yet (``queued`` or ``scheduled``).

    A message a worker already took keeps running; its report is ignored because its
    task is no longer ``pending`` or ``started``.

    :return: ``True`` when a waiting message was deleted
    """
    from butterfly_mq.queue import Queue

    service = mq_service(kernel)
    if service is None:
        return False
    queue = Queue(service.client, route, service.config.prefix)
    message = queue.get(msg_id)
    if message is None or message.get("state") not in ("queued", "scheduled"):
        return False
    return queue.delete(msg_id)
