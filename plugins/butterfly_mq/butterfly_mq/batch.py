"""``enqueue_many()``: many messages of one topic in one round trip, each checked on its own.

Every message is checked like :func:`butterfly_mq.enqueue` checks one — params a JSON object,
against the handler's signature when this kernel serves the topic, a valid ``msg_id`` — and
a message that fails is reported in its place while the others are sent. The valid ones go
to Redis in one pipelined round trip: one ENQUEUE_MANY script per :data:`SCRIPT_MESSAGES`
messages (all keys of the queue share its hashtag) and one ready mark (the ``{ready}``
hashtag), so it works through Twemproxy and on Redis Cluster like a single enqueue.

Idempotent by ``msg_id``: an id already stored is left alone (``exists``), an id repeated
within the batch is sent once (later copies are ``duplicate``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from butterfly_mq.keys import check_msg_id
from butterfly_mq.producer import (
    _queue,
    check_options,
    params_json,
    resolve,
    send,
    shared_info_fields,
    valid_topic,
    validate_params,
)
from kernel.errors import BadRequest

#: Messages per ENQUEUE_MANY script: each script blocks Redis while it runs, so a huge
#: batch is cut into scripts of this size (all still sent in the same round trip).
SCRIPT_MESSAGES = 1000
#: Statuses of one message of a batch.
ENQUEUED, EXISTS, DUPLICATE, INVALID = "enqueued", "exists", "duplicate", "invalid"


@dataclass
class ItemResult:
    """What happened to one message of a batch.

    ``msg_id`` is the message's id (for an invalid message: the id it asked for, or ``None``).
    ``status``: ``enqueued`` (stored now), ``exists`` (a message with this id was already
    kept — an earlier send of the same message), ``duplicate`` (its id repeats an earlier
    message of this batch, which was sent instead) or ``invalid`` (not sent; ``reason`` and
    ``errors`` say why, as an ``ERR_BAD_PARAMS`` reply would).
    """

    index: int
    msg_id: str | None
    status: str
    reason: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``reason`` for invalid and duplicate messages, ``errors`` when known)."""
        row: dict[str, Any] = {"index": self.index, "msg_id": self.msg_id, "status": self.status}
        if self.reason:
            row["reason"] = self.reason
        if self.errors:
            row["errors"] = self.errors
        return row


@dataclass
class BatchResult:
    """The outcome of :func:`enqueue_many`, one :class:`ItemResult` per message, in order."""

    topic: str
    items: list[ItemResult]

    @property
    def msg_ids(self) -> list[str | None]:
        """Each message's id (``None`` for an invalid one), in order."""
        return [None if item.status == INVALID else item.msg_id for item in self.items]

    def count(self, status: str) -> int:
        """How many messages ended with ``status``."""
        return sum(1 for item in self.items if item.status == status)

    @property
    def invalid(self) -> list[ItemResult]:
        """The messages that were not sent."""
        return [item for item in self.items if item.status == INVALID]

    @property
    def ok(self) -> bool:
        """True when every message is stored (enqueued now, or already there)."""
        return not self.invalid

    def summary(self) -> dict[str, int]:
        """``{"enqueued": n, "exists": n, "duplicate": n, "invalid": n}``."""
        return {status: self.count(status) for status in (ENQUEUED, EXISTS, DUPLICATE, INVALID)}


def enqueue_many(
    topic: str,
    params_list: Sequence[dict[str, Any]],
    *,
    redis_url: str | None = None,
    redis_cluster: bool | None = None,
    msg_ids: Sequence[str | None] | None = None,
    delay: float | None = None,
    ttl: float | None = None,
    retries: int | None = None,
    kernel: Any = None,
    prefix: str | None = None,
) -> BatchResult:
    """Queue many messages for ``topic`` in one round trip; returns once Redis stored them.

    :param topic: ``/app/handler``
    :param params_list: each message's params (a JSON object each)
    :param redis_url: Redis to use (default: the running kernel's, else ``BUTTERFLY_MQ_REDIS_URL``)
    :param redis_cluster: ``redis_url`` is a Redis Cluster node (default ``BUTTERFLY_MQ_REDIS_CLUSTER``)
    :param msg_ids: each message's id (idempotency key), as long as ``params_list``; an
        entry ``None`` (or no list) gets a random id
    :param delay: seconds before every message of the batch may run
    :param ttl: seconds each may wait in the queue
    :param retries: retries of failed runs (default ``[mq] retries`` of the consumer)
    :param kernel: the kernel to use (default: the most recently started one)
    :param prefix: key prefix outside a kernel (default ``bc``)
    :return: a :class:`BatchResult` — per message ``enqueued``, ``exists``, ``duplicate``
        or ``invalid`` (with the reason); invalid messages do not stop the others
    :raises kernel.BadRequest: a bad topic, options, or list (``ERR_BAD_PARAMS``) — nothing sent
    :raises MQNotConfigured: no Redis URL anywhere
    :raises MQUnavailable: Redis did not answer (nothing or all of it was stored: send the
        same batch again with the same ``msg_ids``)
    """
    try:
        topic = valid_topic(topic)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    check_options(delay, ttl, retries)
    if isinstance(params_list, str | bytes | dict) or not isinstance(params_list, Sequence):
        raise BadRequest(
            "params_list must be a list of JSON objects",
            data={"errors": [{"param": "params_list", "reason": "expected a list"}]},
        )
    if msg_ids is not None and (
        isinstance(msg_ids, str | bytes) or not isinstance(msg_ids, Sequence) or len(msg_ids) != len(params_list)
    ):
        raise BadRequest(
            f"msg_ids must be a list as long as params_list ({len(params_list)})",
            data={"errors": [{"param": "msg_ids", "reason": "one id (or null) per message"}]},
        )
    service, client, key_prefix = resolve(redis_url, kernel, prefix, redis_cluster)
    items, to_send = _check_items(service, topic, params_list, msg_ids)
    if to_send:
        queue = _queue(client, key_prefix, topic)
        shared = "{" + shared_info_fields(topic, ttl, retries) + "}"
        delay_ms = int((delay or 0) * 1000)
        calls = [
            queue.enqueue_many_call(
                [(msg_id, text) for _, msg_id, text in to_send[start : start + SCRIPT_MESSAGES]], shared, delay_ms
            )
            for start in range(0, len(to_send), SCRIPT_MESSAGES)
        ]
        replies = send(client, key_prefix, topic, calls, what=f"{len(to_send)} messages")
        statuses = [status for reply in replies for status in reply]
        for (index, _msg_id, _text), stored in zip(to_send, statuses, strict=True):
            items[index].status = ENQUEUED if int(stored) == 1 else EXISTS
        if service is not None:
            service.wake(topic)
    return BatchResult(topic, items)


def _check_items(
    service: Any, topic: str, params_list: Sequence[Any], msg_ids: Sequence[str | None] | None
) -> tuple[list[ItemResult], list[tuple[int, str, str]]]:
    """Check every message; returns the per-message results (``enqueued`` is provisional)
    and ``(index, msg_id, params JSON)`` of the messages to send."""
    items: list[ItemResult] = []
    to_send: list[tuple[int, str, str]] = []
    first_of: dict[str, int] = {}
    for index, params in enumerate(params_list):
        wanted = msg_ids[index] if msg_ids is not None else None
        try:
            msg_id = check_msg_id(wanted) if wanted is not None else os.urandom(16).hex()
            text = params_json(params)
            if service is not None:
                validate_params(service.kernel, topic, params)
        except ValueError as exc:  # a bad msg_id
            items.append(ItemResult(index, wanted, INVALID, str(exc), [{"param": "msg_id", "reason": str(exc)}]))
            continue
        except BadRequest as exc:
            errors = list((exc.data or {}).get("errors") or [])
            items.append(ItemResult(index, wanted, INVALID, exc.reason, errors))
            continue
        if msg_id in first_of:
            items.append(ItemResult(index, msg_id, DUPLICATE, f"same msg_id as message {first_of[msg_id]}"))
            continue
        first_of[msg_id] = index
        items.append(ItemResult(index, msg_id, ENQUEUED))
        to_send.append((index, msg_id, text))
    return items, to_send
