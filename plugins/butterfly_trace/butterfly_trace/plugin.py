"""Hook implementations of butterfly-trace (entry point ``trace``).

Request ids, trace headers, trusted-proxy client IPs, the access/app/error logs,
metrics and the admin endpoints. The logic lives in the sibling modules.

Handler exceptions are logged by the kernel itself (``kernel.logs.log_exception``:
one traceback, rate-limited); with this plugin that line lands in ``err.log`` with
the request id, and ``app.log`` keeps a copy without the traceback.
"""

from __future__ import annotations

import structlog

from butterfly_trace import admin, config, logsetup
from butterfly_trace.headers import add_trace_headers
from butterfly_trace.reqid import (
    assign_reqid,
    assign_trace,
    bind_request_context,
    current_request,
    unbind_request_context,
)
from butterfly_trace.state import EXTENSION, TraceState, get_state
from kernel import hookimpl

log = structlog.get_logger("butterfly.trace")


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[trace]``."""
    config.declare(settings)


@hookimpl
def butterfly_configure(kernel):
    """Route structlog to stdlib, set the root level, open the log files."""
    logsetup.route_structlog_to_stdlib()
    logsetup.quiet_waitress_queue()
    logsetup.set_root_level(kernel.settings.get("server", "log_level"))
    kernel.extensions[EXTENSION] = TraceState(kernel)
    token = kernel.settings.get(config.SECTION, "metrics_token")
    if token and kernel.settings.get(config.SECTION, "metrics"):
        # PERF: its own plugin object, so requests pay nothing when no token is set.
        kernel.pm.register(admin.MetricsTokenGate(token), name="trace.metrics_token")


@hookimpl
def butterfly_register_routes(register, kernel):
    """``/_trace/loglevel``, ``/_trace/stacks``, ``/_trace/metrics`` (admin only)."""
    admin.register_routes(register, kernel)


@hookimpl
def butterfly_startup(kernel):
    """Start the access log's writer thread; reopen the log files on SIGHUP."""
    state = kernel.extensions.get(EXTENSION)
    if state is not None:
        state.start()


@hookimpl
def butterfly_shutdown(kernel):
    """Write the queued access-log lines, give back the log files."""
    state = kernel.extensions.get(EXTENSION)
    if state is not None:
        state.close()


@hookimpl(tryfirst=True)
def butterfly_request_started(request):
    """Assign the request id, bind the log context, resolve the client IP."""
    assign_reqid(request)
    outer = current_request() if request.source != "http" else None
    if request.parent_reqid is None and outer is not None and outer.reqid != request.reqid:
        # a kernel.call made from inside a handler: the handler's request is its parent
        request.parent_reqid = outer.reqid
    assign_trace(request, outer if outer is not request else None)
    bind_request_context(request)
    if request.source == "http":
        proxies = get_state(request.kernel).proxies
        if proxies:
            environ = request.environ
            request.client_ip = proxies.client_ip(
                request.client_ip, environ.get("HTTP_X_REAL_IP"), environ.get("HTTP_X_FORWARDED_FOR")
            )


@hookimpl(trylast=True)
def butterfly_response_headers(request, response):
    """``x-reqid``, ``traceparent``, ``x-cost``, ``Server-Timing``."""
    add_trace_headers(request, response)


@hookimpl(trylast=True)
def butterfly_request_finished(request, response):
    """Access log line, metrics, slow-request warning; then clear the log context."""
    try:
        get_state(request.kernel).finish(request, response)
    finally:
        unbind_request_context(request)
