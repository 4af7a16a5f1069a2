"""``enqueue()``: the producer API, usable inside a running kernel or from any Python process."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from typing import Any

import redis
import structlog

from butterfly_mq.connection import ERRORS, UNAVAILABLE, shared_client
from butterfly_mq.errors import MQNotConfigured, MQUnavailable
from butterfly_mq.keys import RegistryKeys, check_msg_id, check_topic
from butterfly_mq.queue import Queue
from butterfly_mq.ready import ReadyIndex
from butterfly_mq.script_calls import run_pipelined, thread_connection
from butterfly_mq.scripts import SCRIPTS
from kernel.errors import BadRequest
from kernel.response import json_default

log = structlog.get_logger("butterfly.mq")
URL_ENV = "BUTTERFLY_MQ_REDIS_URL"
CLUSTER_ENV = "BUTTERFLY_MQ_REDIS_CLUSTER"
#: Values of ``BUTTERFLY_MQ_REDIS_CLUSTER`` that mean yes.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
#: Longest ``delay`` / ``ttl`` (10 years, in seconds); also keeps them finite.
MAX_SECONDS = 10 * 365 * 86400.0
#: Most ``retries`` a message may ask for.
MAX_RETRIES = 1000
#: Waits between attempts when Redis does not answer; the same msg_id makes retries safe.
RETRY_WAITS = (0.05, 0.25, 1.0)
_registered: set[tuple[int, str, str]] = set()
_valid_topics: set[str] = set()
_queues: dict[tuple[int, str, str], Queue] = {}
_ready_indexes: dict[str, ReadyIndex] = {}
#: Per (client, prefix, topic): the client and ENQUEUE_MARKED's keys (None: the two scripts apart).
_marked: dict[tuple[int, str, str], tuple[Any, list[str] | None]] = {}
#: A message pushed behind others is marked ready only when the queue's length is a multiple
#: of this (``lua/enqueue_marked.lua``; one behind none always is).
MARK_EVERY = 100
#: Who produced a message (host:pid), computed once per process.
PRODUCER = f"{socket.gethostname()}:{os.getpid()}"
_PRODUCER_JSON = json.dumps(PRODUCER)
#: Params are encoded like the kernel encodes replies (compact, UTF-8, datetimes as ISO text).
ENQUEUE_MARKED = SCRIPTS["ENQUEUE_MARKED"]
_params_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=json_default)
_router_missing_logged = False


def validate_params(kernel: Any, topic: str, params: dict[str, Any]) -> None:
    """Check ``params`` against the handler's signature when this kernel serves ``topic``.

    Topics of other services are not known here and are not checked.

    :raises kernel.BadRequest: with ``data["errors"]`` naming each bad parameter
    """
    global _router_missing_logged
    route = kernel.routes.lookup(topic)
    if route is None or route.prefix or route.path != topic:
        return
    try:
        from butterfly_router import check_params
    except ImportError:
        if not _router_missing_logged:
            log.info("mq_params_unchecked", reason="butterfly_router.check_params is not available")
            _router_missing_logged = True
        return
    check_params(kernel, topic, params)


def _service(kernel: Any):
    if kernel is not None:
        return kernel.extensions.get("mq")
    from butterfly_mq.service import ACTIVE

    return ACTIVE[-1] if ACTIVE else None


_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


#: Longest ``tracestate`` sent on (the trace plugin binds at most this much).
_TRACESTATE_LIMIT = 512


def _lineage() -> tuple[str | None, str | None, str | None]:
    """The producing request's reqid, W3C ``traceparent`` and ``tracestate`` (from the log
    context the trace plugin binds: ``trace_id``, ``span_id``, ``tracestate``), each
    ``None`` when unknown; no tracestate without a traceparent."""
    context = structlog.contextvars.get_contextvars()
    trace_id, span_id = context.get("trace_id"), context.get("span_id")
    traceparent = tracestate = None
    if (
        isinstance(trace_id, str)
        and isinstance(span_id, str)
        and _TRACE_ID.fullmatch(trace_id)
        and _SPAN_ID.fullmatch(span_id)
    ):
        traceparent = f"00-{trace_id}-{span_id}-01"
        # NOTE: the trace plugin checked it (W3C grammar); this only keeps the message sane.
        state = context.get("tracestate")
        if isinstance(state, str) and len(state) <= _TRACESTATE_LIMIT and state.isascii() and state.isprintable():
            tracestate = state
    return context.get("reqid"), traceparent, tracestate


def resolve(
    redis_url: str | None, kernel: Any, prefix: str | None, redis_cluster: bool | None = None
) -> tuple[Any, Any, str]:
    """The MQ service (or ``None``), Redis client and key prefix a call should use.

    Outside a kernel the URL comes from ``redis_url`` or ``BUTTERFLY_MQ_REDIS_URL``, and
    whether it names a Redis Cluster node from ``redis_cluster`` or
    ``BUTTERFLY_MQ_REDIS_CLUSTER`` (NOTE: no kernel, so no settings object to ask).

    :raises MQNotConfigured: no Redis URL anywhere
    """
    service = None if redis_url else _service(kernel)
    if service is not None:
        return service, service.client, service.config.prefix
    url = redis_url or os.environ.get(URL_ENV)
    if not url:
        raise MQNotConfigured(
            f"no Redis URL: pass redis_url=, set {URL_ENV}, or call inside a kernel with [mq] redis_url"
        )
    if redis_cluster is None:
        redis_cluster = os.environ.get(CLUSTER_ENV, "").strip().lower() in TRUE_WORDS
    return None, shared_client(url, cluster=redis_cluster), prefix or "bc"


def get_message(
    msg_id: str,
    *,
    topic: str | None = None,
    redis_url: str | None = None,
    redis_cluster: bool | None = None,
    kernel: Any = None,
    prefix: str | None = None,
) -> dict[str, Any] | None:
    """A message's metadata, params and result; ``None`` when unknown.

    :param msg_id: the id :func:`enqueue` returned
    :param topic: its topic, if known (saves a lookup across every queue)
    :param redis_url: Redis to read (default: the running kernel's, else ``BUTTERFLY_MQ_REDIS_URL``)
    :param redis_cluster: ``redis_url`` is a Redis Cluster node (default ``BUTTERFLY_MQ_REDIS_CLUSTER``)
    :return: the metadata dict with ``params`` and ``result`` added
    """
    from butterfly_mq.queue import find_message, registered_topics

    _, client, key_prefix = resolve(redis_url, kernel, prefix, redis_cluster)
    if topic:
        return Queue(client, check_topic(topic), key_prefix).get(msg_id)
    return find_message(client, msg_id, registered_topics(client, key_prefix), key_prefix)


def enqueue(
    topic: str,
    params: dict[str, Any] | None = None,
    *,
    redis_url: str | None = None,
    redis_cluster: bool | None = None,
    msg_id: str | None = None,
    delay: float | None = None,
    ttl: float | None = None,
    retries: int | None = None,
    kernel: Any = None,
    prefix: str | None = None,
) -> str:
    """Queue a message for ``topic``; returns once Redis has stored it.

    :param topic: ``/app/handler``
    :param params: the handler's parameters (a JSON object)
    :param redis_url: Redis to use; default: the running kernel's ``[mq] redis_url``,
        else ``BUTTERFLY_MQ_REDIS_URL``
    :param redis_cluster: ``redis_url`` is a Redis Cluster node (default: the
        ``BUTTERFLY_MQ_REDIS_CLUSTER`` environment variable)
    :param msg_id: your id; enqueueing the same id again is a no-op while the
        message is kept (an idempotency key)
    :param delay: seconds before it may run (it is ``scheduled`` until then)
    :param ttl: seconds it may wait in the queue; later it ends failed ``ERR_EXPIRED``
    :param retries: retries of failed runs (default ``[mq] retries`` of the consumer)
    :param kernel: the kernel to use (default: the most recently started one)
    :param prefix: key prefix outside a kernel (default ``bc``)
    :return: the message id
    :raises kernel.BadRequest: bad topic, params or options (``ERR_BAD_PARAMS``)
    :raises MQNotConfigured: no Redis URL anywhere
    :raises MQUnavailable: Redis did not answer (retry with the same ``msg_id``)
    """
    params = {} if params is None else params
    try:
        topic = valid_topic(topic)
        # PERF: 128 random bits as hex, like uuid4().hex without building a UUID object
        msg_id = check_msg_id(msg_id) if msg_id is not None else os.urandom(16).hex()
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if delay is not None or ttl is not None or retries is not None:
        check_options(delay, ttl, retries)
    params_text = params_json(params)

    service, client, key_prefix = resolve(redis_url, kernel, prefix, redis_cluster)
    if service is not None:
        validate_params(service.kernel, topic, params)

    info = f'{{"id":"{msg_id}",{shared_info_fields(topic, ttl, retries)}}}'
    delay_ms = int((delay or 0) * 1000)
    marked_keys = _marked_keys(client, key_prefix, topic)
    if marked_keys is None:
        call = _queue(client, key_prefix, topic).enqueue_call(msg_id, params_text, info, delay_ms)
        send(client, key_prefix, topic, [call], what=f"message {msg_id}")
    else:
        call = (ENQUEUE_MARKED, marked_keys, [msg_id, params_text, info, delay_ms, topic, MARK_EVERY])
        send(client, key_prefix, topic, [call], what=f"message {msg_id}", mark=False)
    if service is not None:
        service.wake(topic)
    return msg_id


def valid_topic(topic: str) -> str:
    """``topic`` if it is a valid queue name (remembered: checked once per process).

    :raises ValueError: naming the topic
    """
    if topic not in _valid_topics:
        _valid_topics.add(check_topic(topic))
    return topic


def check_options(delay: float | None, ttl: float | None, retries: int | None) -> None:
    """Refuse a ``delay``, ``ttl`` or ``retries`` that is not a number in its range.

    :raises kernel.BadRequest: naming the option and its range
    """
    for name, value, most in (
        ("delay", delay, MAX_SECONDS),
        ("ttl", ttl, MAX_SECONDS),
        ("retries", retries, MAX_RETRIES),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= most:
            raise BadRequest(
                f"{name} must be a number from 0 to {most:g}, got {value!r}",
                data={"errors": [{"param": name, "reason": f"expected 0..{most:g}"}]},
            )


def params_json(params: Any) -> str:
    """A message's params as JSON text.

    :raises kernel.BadRequest: not an object with string keys, or not JSON serialisable
    """
    if not isinstance(params, dict) or not all(isinstance(key, str) for key in params):
        raise BadRequest(
            "params must be a JSON object with string keys",
            data={"errors": [{"param": "params", "reason": "expected an object"}]},
        )
    if not params:
        return "{}"
    try:
        return _params_encoder.encode(params)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"params are not JSON serialisable: {exc}") from None


def shared_info_fields(topic: str, ttl: float | None, retries: int | None) -> str:
    """The metadata a new message starts with, but its id, as the members of a JSON object
    (no braces): the same for every message of a batch.

    PERF: formatted, not ``json.dumps``-ed: the topic and the ids are plain by construction
    (``check_topic``, ``check_msg_id``), the producer is encoded once per process.
    """
    fields = f'"topic":"{topic}","created_at":{int(time.time() * 1000)},"attempts":0,"producer":{_PRODUCER_JSON}'
    reqid, traceparent, tracestate = _lineage()
    if reqid:
        fields += f',"reqid":{json.dumps(str(reqid))}'
    if traceparent:  # hex and dashes only
        fields += f',"traceparent":"{traceparent}"'
    if tracestate:  # may hold quotes and backslashes
        fields += f',"tracestate":{json.dumps(tracestate)}'
    if ttl:
        fields += f',"ttl":{int(ttl * 1000)}'
    if retries is not None:
        fields += f',"retries":{int(retries)}'
    return fields


def send(client: Any, prefix: str, topic: str, calls: list, *, what: str, mark: bool = True) -> list[Any]:
    """Run a topic's enqueue scripts and its ready mark in one round trip; retry when Redis
    does not answer (safe: every message has its id already, and enqueue is idempotent per id).

    :param calls: ENQUEUE / ENQUEUE_MANY calls of one queue
    :param what: the messages, for the error text
    :param mark: also send the topic's MARK_READY (``False``: the calls mark it themselves)
    :return: the scripts' replies, in order
    :raises MQUnavailable: Redis did not answer after every retry
    """
    mark_call = _ready_index(prefix).mark_call(topic) if mark else None
    for attempt, wait in enumerate((*RETRY_WAITS, None)):
        try:
            _register(client, prefix, topic)
            if attempt == 0 and mark_call is not None:
                # NOTE: the messages and their ready mark in one round trip; the mark is a hint
                # (the consumers' sweep finds unmarked messages too), so its failure is not
                # the producer's and later attempts send the messages alone.
                results = run_pipelined(
                    client, [*calls, mark_call], raise_errors=False, connection=thread_connection(client)
                )[:-1]
                for result in results:
                    if isinstance(result, Exception):
                        raise result
                return results
            return run_pipelined(client, calls, connection=thread_connection(client))
        except UNAVAILABLE as exc:
            if wait is None:
                raise MQUnavailable(
                    f"Redis did not store {what} for {topic} after {attempt + 1} attempts: {exc}"
                ) from exc
            time.sleep(wait)
    raise AssertionError("unreachable")


def _ready_index(prefix: str) -> ReadyIndex:
    index = _ready_indexes.get(prefix)
    if index is None:
        index = _ready_indexes[prefix] = ReadyIndex(prefix)
    return index


def _queue(client: Any, prefix: str, topic: str) -> Queue:
    # PERF: Queue objects (key lists) are built once per topic, not per message.
    marker = (id(client), prefix, topic)
    queue = _queues.get(marker)
    if queue is None:
        if len(_queues) > 10_000:
            _queues.clear()
        queue = _queues[marker] = Queue(client, topic, prefix)
    return queue


def _marked_keys(client: Any, prefix: str, topic: str) -> list[str] | None:
    """The keys of ENQUEUE_MARKED for ``topic``, or ``None`` where it cannot run (the queue and
    the ready index on two servers: Redis Cluster, most topics of a Twemproxy pool).

    Found out once per topic and client per process (:meth:`ReadyIndex.probe_calls`); until a
    probe got an answer, ``None`` (the two scripts side by side, as always).
    """
    marker = (id(client), prefix, topic)
    known = _marked.get(marker)
    if known is not None and known[0] is client:  # NOTE: the client is kept: its id is not reused
        return known[1]
    keys: list[str] | None
    if not isinstance(client, redis.Redis):
        keys = None
    else:
        queue = _queue(client, prefix, topic)
        index = _ready_index(prefix)
        try:
            together = run_pipelined(client, index.probe_calls(queue.enqueue_keys[-1], os.urandom(8).hex()))[1]
        except UNAVAILABLE:
            return None  # NOTE: not remembered; the enqueue reports an unreachable Redis itself
        except ERRORS:
            together = 0  # NOTE: an endpoint that refuses the probe gets the two scripts apart
        keys = [*queue.enqueue_keys, *index.mark_keys] if together == 1 else None
    if len(_marked) > 10_000:
        _marked.clear()
    _marked[marker] = (client, keys)
    return keys


def _register(client: Any, prefix: str, topic: str) -> None:
    # PERF: one SADD per topic and client per process, not one per message.
    marker = (id(client), prefix, topic)
    if marker not in _registered:
        client.sadd(RegistryKeys(prefix).queues, topic)
        _registered.add(marker)
