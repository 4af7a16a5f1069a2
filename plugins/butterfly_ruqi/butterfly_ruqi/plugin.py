"""Hook implementations of butterfly-ruqi (entry point ``ruqi``)."""

from __future__ import annotations

from kernel import ConfigError, hookimpl


def _positive(value):
    number = float(value)
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return number


@hookimpl
def butterfly_add_hookspecs(pluginmanager):
    """Add ``butterfly_ruqi_job_types``."""
    from butterfly_ruqi import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[ruqi]``."""
    add = settings.add
    add("ruqi", "enabled", bool, True, "run the scheduler on this instance (the API works either way)", owner="ruqi")
    add(
        "ruqi",
        "sync_interval",
        _positive,
        5.0,
        "seconds between job re-reads and heartbeats: a job changed elsewhere is seen within it",
        owner="ruqi",
    )
    add(
        "ruqi",
        "instance_timeout",
        _positive,
        30.0,
        "seconds without a heartbeat before an instance's unfinished runs are marked lost",
        owner="ruqi",
    )
    add("ruqi", "workers", int, 8, "threads running jobs on this instance", owner="ruqi")
    add("ruqi", "allow_scripts", bool, False, "allow script jobs", owner="ruqi")
    add("ruqi", "script_dir", str, "scripts", "script jobs may only run files inside this directory", owner="ruqi")
    add("ruqi", "output_limit", int, 4096, "characters of a run's output kept in the history", owner="ruqi")
    add("ruqi", "default_timezone", str, "UTC", "timezone of jobs that name none (IANA name)", owner="ruqi")
    add("ruqi", "default_timeout", _positive, 300.0, "seconds a job may run when it names no timeout", owner="ruqi")
    add(
        "ruqi",
        "misfire_grace",
        _positive,
        60.0,
        "default seconds an occurrence may be late and still run (older ones are recorded skipped_misfire)",
        owner="ruqi",
    )
    add("ruqi", "max_page_size", int, 200, "largest page_size of get_jobs / get_history", owner="ruqi")
    add(
        "ruqi",
        "claim_redis_url",
        str,
        None,
        "claim each occurrence in Redis (SET NX) before the database; unset = database claims only",
        owner="ruqi",
    )
    add(
        "ruqi",
        "claim_redis_cluster",
        bool,
        False,
        "claim_redis_url names a node of a Redis Cluster (needs butterfly-ruqi[mq])",
        owner="ruqi",
    )


@hookimpl(optionalhook=True)
def butterfly_store_define_entities(db):
    """Declare ``ruqi_job``, ``ruqi_run`` and ``ruqi_instance``."""
    from butterfly_ruqi.models import define_entities

    define_entities(db)


@hookimpl(optionalhook=True)
def butterfly_router_handler_packages():
    """Serve the API at ``/ruqi/<name>``."""
    return [("ruqi", "butterfly_ruqi.handlers")]


@hookimpl
def butterfly_ruqi_job_types(register):
    """The built-in job types: ``http``, ``mq``, ``handler``, ``script``."""
    from butterfly_ruqi.types_http import HttpJob
    from butterfly_ruqi.types_local import HandlerJob, MqJob
    from butterfly_ruqi.types_script import ScriptJob

    register("http", HttpJob())
    register("mq", MqJob())
    register("handler", HandlerJob())
    register("script", ScriptJob())


@hookimpl
def butterfly_configure(kernel):
    """Collect job types and put :class:`~butterfly_ruqi.service.RuqiState` in ``kernel.extensions``."""
    from butterfly_ruqi.jobtypes import collect_job_types
    from butterfly_ruqi.rules import RuleError, parse_timezone
    from butterfly_ruqi.service import RuqiState

    settings = kernel.settings.section("ruqi")
    try:
        parse_timezone(settings.default_timezone)
    except RuleError as exc:
        raise ConfigError(f"bad value for [ruqi] default_timezone: {exc.reason}") from None
    if settings.workers < 1 or settings.output_limit < 0 or settings.max_page_size < 1:
        raise ConfigError("[ruqi] workers and max_page_size must be at least 1, output_limit at least 0")
    if settings.claim_redis_url:
        from butterfly_ruqi.redis_claims import check_url

        try:
            check_url(settings.claim_redis_url)
        except ValueError as exc:
            raise ConfigError(f"bad value for [ruqi] claim_redis_url: {exc}") from None
    kernel.extensions["ruqi"] = RuqiState(kernel, collect_job_types(kernel), settings)


@hookimpl
def butterfly_register_routes(register, kernel):
    """The web page at ``/ruqi/`` (admin: it shows targets and payloads; its buttons use the admin API).

    Also shows in the OpenAPI document what settings and plugins decide about the API's
    parameters: ``[ruqi] max_page_size``, the registered job types, and the fields
    checked against the trigger and job type (see :mod:`butterfly_ruqi.handlers`).
    """
    from butterfly_router.openapi import document_parameters
    from butterfly_ruqi.handlers import CHECKED_PATHS, LIST_PATHS
    from butterfly_ruqi.jobspec import JOB_ID_RE
    from butterfly_ruqi.page import OPENAPI, ruqi_page

    register("/ruqi", ruqi_page, kind="html", methods=("GET", "HEAD"), admin=True, meta={"openapi": OPENAPI})
    state = kernel.extensions["ruqi"]
    document_parameters(kernel, LIST_PATHS, page_size={"maximum": state.settings.max_page_size})
    # NOTE: add_job checks the id's pattern itself, with a friendlier reason than the router's
    document_parameters(kernel, ["/ruqi/add_job"], job_id={"pattern": JOB_ID_RE.pattern})
    checked = {
        "rule": "parsed for its job_trigger (cron fields, an interval like 30s, a date)",
        "target": "checked by its job_type (a URL, a route, a topic, a script)",
        "timezone": "an IANA time zone name",
        "payload": "a JSON object, checked by its job_type",
        "options": "a JSON object, checked by its job_type",
    }
    document_parameters(
        kernel,
        CHECKED_PATHS,
        job_type={"enum": state.registry.names()},
        **{name: {"description": text, "x-butterfly-checked-by-handler": text} for name, text in checked.items()},
    )


@hookimpl
def butterfly_console_links(register):
    """The ruqi page in the navigation bar (admins only)."""
    register(
        "如期 ruqi", "/ruqi/", admin=True, description="scheduled jobs: next runs, pause, resume, run now, history"
    )


@hookimpl
def butterfly_startup(kernel):
    """Start this instance's scheduler thread (unless ``[ruqi] enabled = false``).

    With ``[ruqi] claim_redis_url`` it also creates the Redis client (it connects on the
    first claim; an unreachable Redis makes claims wait, not startup fail).
    """
    from butterfly_ruqi.scheduler import Scheduler

    state = kernel.extensions["ruqi"]
    if not state.settings.enabled:
        return
    settings = state.settings
    if settings.claim_redis_url:
        from butterfly_ruqi.redis_claims import RedisClaims

        state.redis_claims = RedisClaims.connect(settings.claim_redis_url, cluster=settings.claim_redis_cluster)
    state.scheduler = Scheduler(
        kernel,
        state.db,
        state.registry,
        sync_interval=settings.sync_interval,
        instance_timeout=settings.instance_timeout,
        workers=settings.workers,
        output_limit=settings.output_limit,
        redis_claims=state.redis_claims,
    )
    state.scheduler.start()


@hookimpl
def butterfly_shutdown(kernel):
    """Stop claiming, let running jobs finish (bounded by ``[server] shutdown_timeout``)."""
    state = kernel.extensions.get("ruqi")
    if state is not None and state.scheduler is not None:
        state.scheduler.stop(timeout=kernel.settings.get("server", "shutdown_timeout"))
    if state is not None and state.redis_claims is not None:
        state.redis_claims.close()
        state.redis_claims = None


@hookimpl
def butterfly_health(kernel):
    """``ruqi``: is the scheduler thread alive (when enabled)."""
    state = kernel.extensions.get("ruqi")
    if state is None or not state.settings.enabled or not kernel.started:
        return None
    alive = state.scheduler is not None and state.scheduler.running
    return {"ruqi": (alive, "scheduler running" if alive else "scheduler stopped")}


@hookimpl
def butterfly_add_commands(subparsers):
    """``butterfly ruqi list|add|remove|pause|resume|run|history|status``."""
    from butterfly_ruqi.cli import add_commands

    add_commands(subparsers)
