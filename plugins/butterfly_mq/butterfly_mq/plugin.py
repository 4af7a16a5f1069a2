"""Hook implementations of butterfly-mq (entry point ``mq``). Logic lives in sibling modules."""

from __future__ import annotations

from functools import cache

from kernel import hookimpl


@hookimpl
def butterfly_add_hookspecs(pluginmanager):
    """Add ``butterfly_mq_message_finished``."""
    from butterfly_mq import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[mq]``."""
    from butterfly_mq.config import add_settings

    add_settings(settings)


@hookimpl
def butterfly_configure(kernel):
    """Build the MQ service when ``[mq] redis_url`` is set (no I/O, no threads yet)."""
    from butterfly_mq.config import MQConfig

    config = MQConfig.from_kernel(kernel)
    if config.enabled:
        from butterfly_mq.service import MQService

        kernel.extensions["mq"] = MQService(kernel, config)


@hookimpl
def butterfly_register_routes(register, kernel):
    """Serve canghai at ``/canghai/`` (every route admin) when the MQ is on."""
    service = kernel.extensions.get("mq")
    if service is None or not service.config.dashboard:
        return
    from butterfly_mq import dashboard, openapi, pages

    register("/canghai", pages.page_overview, kind="html", methods=("GET", "HEAD"), admin=True)
    register("/canghai/queue", pages.page_queue, kind="html", methods=("GET", "HEAD"), admin=True)
    register("/canghai/msg", pages.page_msg, kind="html", methods=("GET", "HEAD"), admin=True)
    for name, endpoint in dashboard.READ_ROUTES.items():
        register(f"/canghai/api/{name}", endpoint, kind="json", methods=("GET", "HEAD"), admin=True)
    documented = {"enqueue_many": openapi.enqueue_many(service.config.enqueue_many_max)}
    for name, endpoint in dashboard.ACTION_ROUTES.items():
        meta = {"openapi": documented[name]} if name in documented else None
        register(f"/canghai/api/{name}", endpoint, kind="json", methods=("POST",), admin=True, meta=meta)


@hookimpl
def butterfly_startup(kernel):
    """Start the consumer, heartbeat and cleanup threads."""
    service = kernel.extensions.get("mq")
    if service is not None:
        service.start()


@hookimpl
def butterfly_shutdown(kernel):
    """Stop popping, return unstarted messages, finish running ones within the timeout."""
    service = kernel.extensions.get("mq")
    if service is not None:
        service.stop(kernel.settings.get("server", "shutdown_timeout"))


@hookimpl
def butterfly_request_finished(request, response):
    """Hand an MQ run's error text to the consumer thread that runs it."""
    if request.source == "mq":
        _note_request()(request)


@cache
def _note_request():
    # PERF: runs for every message; an import statement per call showed in the profile
    from butterfly_mq.runner import note_request

    return note_request


@hookimpl
def butterfly_add_commands(subparsers):
    """``butterfly mq enqueue|enqueue-many|status|requeue|pause|resume|doctor``."""
    from butterfly_mq.cli import add_commands

    add_commands(subparsers)


@hookimpl
def butterfly_health(kernel):
    """Whether the consumer reaches Redis (no I/O: the poller's last state)."""
    service = kernel.extensions.get("mq")
    if service is None or service.consumer is None:
        return None
    connected = service.consumer.connected
    return {"mq": (connected, "redis reachable" if connected else "redis unreachable; retrying")}
