"""Hook implementations of butterfly-xingqiao (entry point ``xingqiao``). Logic lives in sibling modules."""

from __future__ import annotations

from typing import Any

from kernel import ConfigError, hookimpl

SECTION = "xingqiao"


def _positive(value):
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return number


@hookimpl
def butterfly_add_hookspecs(pluginmanager):
    """Add ``butterfly_xingqiao_workflows``."""
    from butterfly_xingqiao import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[xingqiao]``."""

    def add(key, kind, default, text):
        settings.add(SECTION, key, kind, default, text, owner="xingqiao")

    add("sweep", bool, True, "run the sweep (timeouts, repair of lost messages) on this instance")
    add("sweep_interval", _positive, 5.0, "seconds between sweeps")
    add(
        "repair_after",
        _positive,
        60.0,
        "seconds a queued or running task goes unchecked before its message is looked up",
    )
    add("backoff_base", _positive, 1.0, "seconds before a task's first retry; doubles each retry, with jitter")
    add("backoff_max", _positive, 300.0, "longest wait before a task's retry, seconds")
    add("default_job_timeout", _positive, 3600.0, "job_timeout of jobs created without one, seconds")
    add("max_tasks", int, 10000, "the most tasks one job may have")
    add("max_page_size", int, 200, "largest page_size of list_jobs")


@hookimpl(optionalhook=True)
def butterfly_store_define_entities(db):
    """Declare ``xingqiao_job``, ``xingqiao_task`` and ``xingqiao_transition``."""
    from butterfly_xingqiao.models import define_entities

    define_entities(db)


@hookimpl(optionalhook=True)
def butterfly_router_handler_packages():
    """Serve the API at ``/xingqiao/<name>``."""
    return [("xingqiao", "butterfly_xingqiao.handlers")]


@hookimpl
def butterfly_configure(kernel):
    """Put :class:`~butterfly_xingqiao.service.XingqiaoState` in ``kernel.extensions["xingqiao"]``."""
    from butterfly_xingqiao.service import EXTENSION, XingqiaoState

    settings = kernel.settings.section(SECTION)
    if settings.max_tasks < 1 or settings.max_page_size < 1:
        raise ConfigError("[xingqiao] max_tasks and max_page_size must be at least 1")
    from butterfly_xingqiao.engine import StartMarks

    state = kernel.extensions[EXTENSION] = XingqiaoState(kernel, settings)
    state.starts = StartMarks(state)


@hookimpl(trylast=True)
def butterfly_register_routes(register, kernel):
    """Collect the workflows (the router has imported the apps by now) and serve the pages.

    ``trylast``: runs after the router registered, and imported, the handler apps.
    """
    from butterfly_xingqiao import page
    from butterfly_xingqiao.service import EXTENSION, collect_workflows

    state = kernel.extensions[EXTENSION]
    state.workflows = collect_workflows(kernel)
    read = ("GET", "HEAD")
    register(
        "/xingqiao", page.jobs_page, kind="html", methods=read, admin=True, meta={"openapi": page.JOBS_PAGE_OPENAPI}
    )
    register(
        "/xingqiao/job", page.job_page, kind="html", methods=read, admin=True, meta={"openapi": page.JOB_PAGE_OPENAPI}
    )
    _document_bounds(kernel, state)


def _document_bounds(kernel, state) -> None:
    """Show in the OpenAPI document what the settings and the workflows allow (the handlers check it)."""
    from butterfly_router.openapi import document_parameters

    document_parameters(kernel, ["/xingqiao/list_jobs"], page_size={"maximum": state.settings.max_page_size})
    create: dict[str, dict[str, Any]] = {
        "job_extra": {
            "description": "the workflow's params, checked against its signature (a 400 names task and param)",
            "x-butterfly-checked-by-handler": "the params of the job_type's workflow",
        }
    }
    if state.workflows:
        create["job_type"] = {"enum": sorted(state.workflows)}
    document_parameters(kernel, ["/xingqiao/create_job"], **create)


@hookimpl
def butterfly_console_links(register):
    """The job list in the navigation bar of every page (admins only)."""
    register("星桥 xingqiao", "/xingqiao/", admin=True, description="workflows: jobs and their task graphs")


@hookimpl
def butterfly_startup(kernel):
    """Start this instance's sweep (with the MQ on and ``[xingqiao] sweep = true``)."""
    from butterfly_xingqiao.dispatch import mq_service
    from butterfly_xingqiao.sweep import Sweeper

    state = kernel.extensions["xingqiao"]
    if state.settings.sweep and mq_service(kernel) is not None:
        state.sweeper = Sweeper(state, state.settings.sweep_interval)
        state.sweeper.start()


@hookimpl
def butterfly_shutdown(kernel):
    """Stop the sweep and the start marks' thread."""
    state = kernel.extensions.get("xingqiao")
    if state is not None and state.sweeper is not None:
        state.sweeper.stop()
        state.sweeper = None
    if state is not None:
        state.starts.stop()


@hookimpl
def butterfly_request_started(request):
    """A task's message starts running: note it, so its task is marked ``started`` (``xq.`` MQ runs only)."""
    # PERF: every request passes here; two attribute reads decide for all but task runs.
    if request.source != "mq" or not (request.reqid or "").startswith("xq."):
        return
    state = request.kernel.extensions.get("xingqiao") if request.kernel is not None else None
    if state is not None:
        state.starts.note(request.reqid)


@hookimpl(optionalhook=True)
def butterfly_mq_message_finished(kernel, message, outcome):
    """A run of a task's message ended: advance its job (see :func:`~butterfly_xingqiao.engine.report_run`)."""
    if not message.msg_id.startswith("xq."):
        return
    state = kernel.extensions.get("xingqiao")
    if state is None:
        return
    import json

    from butterfly_xingqiao.engine import report_run

    try:
        result = json.loads(outcome.result_json) if outcome.result_json else None
    except ValueError:
        result = None
    report_run(state, message.msg_id, outcome.outcome, outcome.stat, result, outcome.error, outcome.cost_ms)


@hookimpl
def butterfly_add_commands(subparsers):
    """``butterfly xingqiao create|status|retry|cancel|list``."""
    from butterfly_xingqiao.cli import add_commands

    add_commands(subparsers)


@hookimpl
def butterfly_health(kernel):
    """``xingqiao``: is the sweep thread alive (when it should run)."""
    state = kernel.extensions.get("xingqiao")
    if state is None or not kernel.started or state.sweeper is None:
        return None
    alive = state.sweeper.running
    return {"xingqiao": (alive, "sweep running" if alive else "sweep stopped")}
