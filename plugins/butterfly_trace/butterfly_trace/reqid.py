"""Request ids and the per-request structlog context.

A request keeps an id preset by ``kernel.call(reqid=...)``; an HTTP request keeps
an incoming ``X-Request-Id`` of 1–64 safe characters; anything else gets a fresh
id. The id (and the parent id) is bound into structlog's context variables, so
every log line written on the request's thread carries it; other keys bound in
structlog's context are left alone.
"""

from __future__ import annotations

import contextvars
import os
import re
from typing import TYPE_CHECKING, Any

from structlog.contextvars import bind_contextvars, clear_contextvars, reset_contextvars

if TYPE_CHECKING:
    from kernel import Request

#: What an incoming ``X-Request-Id`` may look like (no spaces, quotes, CR/LF).
SAFE_REQID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

#: The request being traced on this thread/context (``None`` outside requests).
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("butterfly_trace_request", default=None)
_TOKENS = "trace.context_tokens"


def new_reqid() -> str:
    """A fresh request id: 16 lower-case hex characters (64 random bits)."""
    # PERF: os.urandom(8).hex() measured ~1 µs (uuid4().hex ~3 µs). Random bits keep
    # ids unique across processes and hosts without coordination, and are fork-safe.
    return os.urandom(8).hex()


def accept_reqid(value: str | None) -> str | None:
    """``value`` when it is a safe client-supplied request id, else ``None``."""
    if value and SAFE_REQID.fullmatch(value):
        return value
    return None


def assign_reqid(request: Request) -> str:
    """Give ``request`` its id (preset, incoming header, or new) and return it."""
    if not request.reqid:
        incoming = request.environ.get("HTTP_X_REQUEST_ID") if request.source == "http" else None
        request.reqid = accept_reqid(incoming) or new_reqid()
    return request.reqid


def current_request() -> Request | None:
    """The request being handled on this thread, if any (for nested calls)."""
    return _current.get()


def _structlog_vars() -> tuple[contextvars.ContextVar[Any], contextvars.ContextVar[Any]]:
    """structlog's own context variables for ``reqid`` and ``parent_reqid``.

    Binding through structlog's public API once hands back tokens, and a token
    names its variable; that way nothing here depends on structlog's internals.
    """
    tokens = bind_contextvars(reqid=Ellipsis, parent_reqid=Ellipsis)
    reset_contextvars(**tokens)
    return tokens["reqid"].var, tokens["parent_reqid"].var


# PERF: setting and resetting these two variables by token costs ~0.5 µs per request;
# clear_contextvars() + bind_contextvars() + clear_contextvars() cost 2–5 µs, because
# every clear walks all context variables of the thread. The values still live in
# structlog's context, so merge_contextvars puts them on every log line (structlog
# and foreign stdlib records alike) and get_contextvars() still sees the reqid (the
# MQ producer reads it for lineage).
_REQID_VAR, _PARENT_VAR = _structlog_vars()


def bind_request_context(request: Request) -> None:
    """Bind ``reqid`` (and ``parent_reqid``) into structlog's context for this request.

    :func:`unbind_request_context` restores what was there before, so a nested
    ``kernel.call`` made from inside a handler shows the inner ids and the outer
    request gets its own back afterwards. ``Ellipsis`` is structlog's "unset": a
    request without a parent shows none, even inside one that has one.
    """
    # PERF: one ctx entry holding all three tokens.
    request.ctx[_TOKENS] = (
        _current.set(request),
        _REQID_VAR.set(request.reqid),
        _PARENT_VAR.set(request.parent_reqid or Ellipsis),
    )


def unbind_request_context(request: Request) -> None:
    """Undo :func:`bind_request_context`: restore the context from before the request."""
    tokens = request.ctx.pop(_TOKENS, None)
    if tokens is None:
        return
    current_token, reqid_token, parent_token = tokens
    try:
        _current.reset(current_token)
    except ValueError:  # finished in another context than it started: just forget it
        _current.set(None)
    try:
        _PARENT_VAR.reset(parent_token)
        _REQID_VAR.reset(reqid_token)
    except ValueError:
        _REQID_VAR.set(Ellipsis)
        _PARENT_VAR.set(Ellipsis)
    if request.source == "http" and _current.get() is None:
        # NOTE: waitress reuses its worker threads for unrelated requests; whatever a
        # handler bound into the log context must not follow the thread to the next
        # one. In-process calls (mq, ruqi, cli) leave the caller's own keys alone: the
        # job that made the call owns its context.
        clear_contextvars()
