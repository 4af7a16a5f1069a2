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
    """Serve canghai at ``/canghai/`` (every route admin); with the MQ off, a page saying how to turn it on."""
    if not kernel.settings.get("mq", "dashboard"):
        return
    from butterfly_mq import dashboard, openapi, pages

    read_only = ("GET", "HEAD")
    if kernel.extensions.get("mq") is None:
        register("/canghai", pages.page_off, kind="html", methods=read_only, admin=True)
        return
    described = _canghai_openapi()
    described["/canghai/api/enqueue_many"] = openapi.enqueue_many(kernel.extensions["mq"].config.enqueue_many_max)

    def meta(path: str) -> dict:
        return {"openapi": described.get(path, {"responses": {"503": None}})}

    register("/canghai", pages.page_overview, kind="html", methods=read_only, admin=True, meta=meta("/canghai"))
    register(
        "/canghai/queue", pages.page_queue, kind="html", methods=read_only, admin=True, meta=meta("/canghai/queue")
    )
    register("/canghai/msg", pages.page_msg, kind="html", methods=read_only, admin=True, meta=meta("/canghai/msg"))
    for name, endpoint in dashboard.READ_ROUTES.items():
        path = f"/canghai/api/{name}"
        register(path, endpoint, kind="json", methods=read_only, admin=True, meta=meta(path))
    for name, endpoint in dashboard.ACTION_ROUTES.items():
        path = f"/canghai/api/{name}"
        register(path, endpoint, kind="json", methods=("POST",), admin=True, meta=meta(path))


@hookimpl
def butterfly_console_links(register, kernel):
    """canghai in the navigation bar (admins only), unless ``[mq] dashboard = false``."""
    if kernel.settings.get("mq", "dashboard"):
        register("沧海 canghai", "/canghai/", admin=True, description="message queues, their messages and workers")


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


def _canghai_openapi() -> dict:
    """The parameters canghai's routes read themselves, for the OpenAPI document (``meta["openapi"]``).

    Each route also answers 503 when Redis does not (the dashboard's ``service_of``).
    """
    from butterfly_mq.dashboard import MAX_PAGE_SIZE
    from butterfly_mq.keys import MSG_ID_PATTERN, STATES
    from butterfly_mq.producer import MAX_RETRIES, MAX_SECONDS
    from butterfly_router.openapi import json_body, query_parameters

    # NOTE: keys.check_topic: TOPIC_PATTERN without "//", as one pattern a schema can say.
    topic = {"type": "string", "maxLength": 201, "pattern": r"^(/[A-Za-z0-9_\-.]+)+/?$"}
    msg_id = {"type": "string", "pattern": MSG_ID_PATTERN.pattern}
    state = {"type": "string", "enum": list(STATES), "default": "queued"}
    page = {"type": "integer", "minimum": 1, "maximum": 10**6, "default": 1}
    page_size = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": 20}
    seconds = {"type": "number", "minimum": 0, "maximum": MAX_SECONDS, "nullable": True}
    unavailable = {"503": None}
    listing = query_parameters(required=["queue"], queue=topic, state=state, page=page, page_size=page_size)
    one = query_parameters(required=["msg_id"], msg_id=msg_id, queue=topic)
    message = json_body(required=["msg_id"], msg_id=msg_id, queue=topic)
    requeue = json_body(
        required=["msg_id"],
        msg_id={
            **msg_id,
            "x-butterfly-checked-by-handler": "the message must be finished, failed, dead or scheduled "
            "(a queued or running one is refused with a 400)",
        },
        queue=topic,
    )
    queue = json_body(required=["queue"], queue=topic)
    described = {
        "/canghai": query_parameters(all={"type": "string", "maxLength": 10}),
        "/canghai/queue": listing,
        "/canghai/msg": one,
        "/canghai/api/queue": query_parameters(required=["queue"], queue=topic),
        "/canghai/api/msgs": listing,
        "/canghai/api/msg": one,
        "/canghai/api/requeue": requeue,
        "/canghai/api/delete": message,
        # NOTE: Queue.empty refuses "started": those messages are running
        "/canghai/api/empty": json_body(
            required=["queue"], queue=topic, state={**state, "enum": [s for s in STATES if s != "started"]}
        ),
        "/canghai/api/pause": queue,
        "/canghai/api/resume": queue,
        "/canghai/api/enqueue": json_body(
            required=["topic"],
            topic=topic,
            params={
                "type": "object",
                "nullable": True,
                "x-butterfly-checked-by-handler": "the params of the topic's route, checked against its signature",
            },
            delay=seconds,
            ttl=seconds,
            retries={"type": "integer", "minimum": 0, "maximum": MAX_RETRIES, "nullable": True},
            msg_id={**msg_id, "nullable": True},
        ),
    }
    return {path: {**fragment, "responses": unavailable} for path, fragment in described.items()}
