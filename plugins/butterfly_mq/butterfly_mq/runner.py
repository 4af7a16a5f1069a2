"""Run one message through the kernel and decide what its run ended with.

A message runs as ``kernel.call(topic, params, source="mq", parent_reqid=<producer
reqid>, reqid=<msg_id>)``: the same hooks as HTTP (reqid, access log with method
``QUEUE``, authorization, error logging). The producer's W3C ``traceparent`` (and
``tracestate``, when the message has one) is bound in the log context around the call,
so the run continues the producer's trace.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import structlog

from butterfly_mq.backoff import backoff_delay
from butterfly_mq.config import MQConfig
from butterfly_mq.queue import Outcome, Popped
from kernel.response import dumps

#: Stats that make a run *failed*; every other stat (business errors included) is finished.
FAILED_STATS = frozenset({"ERR_BAD_PARAMS", "ERR_SERVER_EXCEPTION", "ERR_TIMEOUT", "ERR_NOT_FOUND"})
#: Failed stats that another run cannot fix.
NEVER_RETRIED = frozenset({"ERR_BAD_PARAMS", "ERR_NOT_FOUND"})
MAX_RESULT_BYTES = 1024 * 1024

# The request of the call running on this thread, noted by the plugin's
# ``butterfly_request_finished`` so the error text (traceback summary) reaches the message.
_last_request = threading.local()


def note_request(request: Any) -> None:
    """Remember an MQ request's stat and error for the thread that runs it."""
    _last_request.reqid, _last_request.error = request.reqid, request.error


def decode_params(text: str) -> tuple[dict[str, Any] | None, str]:
    """Message params JSON → dict, or ``(None, reason)`` for a malformed message."""
    try:
        params = json.loads(text)
    except ValueError as exc:
        return None, f"malformed message: params are not JSON ({exc}): {text[:120]!r}"
    if not isinstance(params, dict):
        return None, f"malformed message: params must be a JSON object, got {type(params).__name__}"
    return params, ""


def retry_delay(failures: int, config: MQConfig) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped at ``backoff_max``."""
    return backoff_delay(failures, config.backoff_base, config.backoff_max)


def _result_json(response: Any) -> str:
    if isinstance(response.data, dict):
        text = dumps(response.data).decode("utf-8")
        if len(text) <= MAX_RESULT_BYTES:
            return text
        return json.dumps({"stat": response.stat, "truncated": True, "size": len(text)})
    body = response.body if isinstance(response.body, bytes | bytearray) else b""
    return json.dumps(
        {
            "status": response.status,
            "content_type": response.get_header("content-type"),
            "size": len(body),
            "body": bytes(body[:2000]).decode("utf-8", "replace"),
        }
    )


def run_message(kernel: Any, message: Popped, config: MQConfig, worker: str) -> Outcome:
    """Run ``message`` and classify it: finished, failed, or retry (scheduled).

    :param kernel: the kernel serving the topic
    :param message: what the consumer popped
    :param config: ``[mq]`` settings (retries, timeout, backoff)
    :param worker: this instance's name (the lease owner)
    :return: the :class:`Outcome` to record
    """
    started = time.perf_counter()
    info = message.info
    params, problem = decode_params(message.params_text)
    result_json, status = "", 200
    if params is None:
        stat, error = "ERR_BAD_PARAMS", problem
    else:
        structlog.contextvars.clear_contextvars()
        _last_request.reqid = _last_request.error = None
        traceparent = info.get("traceparent")
        if isinstance(traceparent, str):
            # NOTE: the trace plugin continues this trace in the call (it validates both values)
            tracestate = info.get("tracestate")
            if isinstance(tracestate, str):
                structlog.contextvars.bind_contextvars(traceparent=traceparent, tracestate=tracestate)
            else:
                structlog.contextvars.bind_contextvars(traceparent=traceparent)
        try:
            response = kernel.call(
                message.topic, params, source="mq", parent_reqid=info.get("reqid"), reqid=message.msg_id
            )
        finally:
            structlog.contextvars.clear_contextvars()
        status = response.status
        data_stat = response.data.get("stat") if isinstance(response.data, dict) else None
        stat = str(response.stat or data_stat or status)
        error = ""
        if stat in FAILED_STATS or status >= 500:
            noted = _last_request.error if _last_request.reqid == message.msg_id else None
            error = noted or response.get_header("x-reason") or stat
            if isinstance(response.data, dict) and response.data.get("errors"):
                error = f"{error}: {json.dumps(response.data['errors'], default=str)[:1000]}"
        result_json = _result_json(response)
    cost = time.perf_counter() - started
    timeout = float(config.topic_option(message.topic, "timeout") or 0)
    if timeout and cost > timeout and stat not in FAILED_STATS:
        stat, error = "ERR_TIMEOUT", f"ran {cost:.1f} s, longer than the {timeout:g} s timeout"
    failed = stat in FAILED_STATS or status >= 500
    outcome = Outcome(message.msg_id, worker, message.attempt, "finished", result_json, error, stat, int(cost * 1000))
    if failed:
        retries = info.get("retries")
        retries = int(config.topic_option(message.topic, "retries") if retries is None else retries)
        failures = int(info.get("failures", 0))
        if stat not in NEVER_RETRIED and failures < retries:
            outcome.outcome = "retry"
            outcome.retry_delay_ms = int(retry_delay(failures, config) * 1000)
        else:
            outcome.outcome = "failed"
    return outcome
