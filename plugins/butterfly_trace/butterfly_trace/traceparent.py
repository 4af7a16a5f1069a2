"""W3C Trace Context (``traceparent``): parse, continue, start and format traces.

Every request is one *span* of a *trace*: it keeps the trace id it was given (an
HTTP ``traceparent`` header, the context an MQ message carries, the request that
made an in-process call) or starts a new trace, and always gets a span id of its
own. ``x-reqid`` is kept beside it, unchanged. The caller's ``tracestate`` goes with
its trace (:mod:`butterfly_trace.tracestate`); a new trace has none.

An incoming value is checked as the specification says
(https://www.w3.org/TR/trace-context/#traceparent-header): version ``00`` is exactly
``00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>``, lower-case, neither id
all zeros; a later version (``01``–``fe``) is read by its version-00 prefix; ``ff``
and anything else is invalid. An invalid value is ignored — the request starts a
new trace — and never fails the request.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

#: Where a request keeps its :class:`TraceContext` (``request.ctx``).
TRACE_CONTEXT = "trace.context"
_HEX_PREFIX = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: The flags of a trace this process starts: "sampled" (every request is logged).
SAMPLED = "01"
#: Longest header value looked at (a version-00 value is 55 characters).
MAX_LENGTH = 512


class Incoming(NamedTuple):
    """A valid incoming ``traceparent``: the caller's trace, its span, its flags."""

    trace_id: str
    parent_id: str
    flags: str


class TraceContext(NamedTuple):
    """The trace a request belongs to and its own span.

    ``parent_id`` is the caller's span (``None`` when the request started the
    trace); ``flags`` are the caller's sampled bit, or :data:`SAMPLED`; ``tracestate``
    is the caller's checked ``tracestate`` (:mod:`butterfly_trace.tracestate`), sent on
    unchanged, or ``None``.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    flags: str
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        """This span as a ``traceparent`` value: what a callee receives."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse(value: object) -> Incoming | None:
    """The trace context in a ``traceparent`` value, or ``None`` when it is not valid.

    :param value: the header value (surrounding blanks are allowed, as in HTTP)
    """
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        return None
    value = value.strip(" \t")
    match = _HEX_PREFIX.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff":
        return None
    if version == "00":
        if len(value) != 55:
            return None
    elif len(value) > 55 and value[55] != "-":  # a later version may append fields after a dash
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return Incoming(trace_id, parent_id, flags)


def new_span_id() -> str:
    """16 lower-case hex characters, never all zeros."""
    while True:
        span_id = os.urandom(8).hex()
        if span_id != _ZERO_SPAN:
            return span_id


def start() -> TraceContext:
    """A new trace with this request as its root span."""
    # PERF: one urandom call for both ids (~1 µs).
    while True:
        ids = os.urandom(24).hex()
        trace_id, span_id = ids[:32], ids[32:]
        if trace_id != _ZERO_TRACE and span_id != _ZERO_SPAN:
            return TraceContext(trace_id, span_id, None, SAMPLED)


def continue_from(incoming: Incoming, tracestate: str | None = None) -> TraceContext:
    """A new span in the caller's trace, keeping the caller's sampled bit.

    :param tracestate: the caller's checked ``tracestate``, if any
    """
    sampled = "01" if int(incoming.flags, 16) & 1 else "00"
    return TraceContext(incoming.trace_id, new_span_id(), incoming.parent_id, sampled, tracestate)


def child_of(trace_id: str, span_id: str, flags: str = SAMPLED, tracestate: str | None = None) -> TraceContext:
    """A new span under span ``span_id`` of trace ``trace_id`` (an in-process call).

    :param tracestate: the trace's checked ``tracestate``, if any
    """
    return TraceContext(trace_id, new_span_id(), span_id, flags, tracestate)
