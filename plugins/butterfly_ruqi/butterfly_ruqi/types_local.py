"""The ``handler`` and ``mq`` job types: a local route in-process, or an MQ message.

Both validate ``payload`` against the target handler's signature when the job is
created (``butterfly_router.check_params``). The fire id and scheduled time are added
as ``ruqi_fire_id`` / ``ruqi_scheduled_time`` **only when the handler accepts them**
(it names them or takes ``**kwargs``), because a handler rejects unknown parameters.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from typing import Any

from butterfly_ruqi.jobtypes import Fire, JobType, Outcome, bad_param
from kernel import BadRequest, ConfigError, NotFound

FIRE_PARAMS = ("ruqi_fire_id", "ruqi_scheduled_time")


def _check_path(target: str) -> None:
    if not target.startswith("/") or "?" in target or "#" in target or " " in target:
        raise bad_param("target", f"must be a route path such as /app/handler, got {target!r}")


def validate_params(kernel, path: str, params: dict[str, Any], *, required: bool) -> None:
    """Check ``params`` against the handler at ``path`` with ``butterfly_router.check_params``.

    :param required: ``True`` when the route must exist on this instance (handler
        jobs); MQ topics may be served only by other instances
    :raises kernel.BadRequest: unknown route (when required) or bad params, naming ``payload``
    """
    route = kernel.routes.lookup(path)
    if route is None:
        if required:
            raise bad_param("target", f"no route {path} on this instance")
        return
    try:
        from butterfly_router import check_params
    except ImportError:
        return  # routes registered without the router have no signature to check
    params = {k: v for k, v in params.items() if k not in FIRE_PARAMS}
    try:
        check_params(kernel, path, params)
    except NotFound:
        if required:
            raise bad_param("target", f"no handler {path} on this instance") from None
    except BadRequest as exc:
        errors = exc.data.get("errors") or [{"param": "payload", "reason": exc.reason}]
        reasons = [
            {"param": f"payload.{e.get('param')}" if e.get("param") else "payload", "reason": e.get("reason", "")}
            for e in errors
        ]
        raise BadRequest(f"payload does not fit {path}: {exc.reason}", data={"errors": reasons}) from None


def accepted_fire_params(kernel, path: str) -> tuple[str, ...]:
    """Which of :data:`FIRE_PARAMS` the handler at ``path`` accepts."""
    route = kernel.routes.lookup(path)
    if route is None:
        return ()
    try:
        signature = inspect.signature(route.endpoint)
    except (TypeError, ValueError):
        return ()
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return FIRE_PARAMS
    return tuple(name for name in FIRE_PARAMS if name in signature.parameters)


def with_fire_params(kernel, path: str, payload: dict[str, Any], fire: Fire) -> dict[str, Any]:
    """``payload`` plus the fire parameters the handler accepts (never overriding the payload)."""
    params = dict(payload)
    values = {"ruqi_fire_id": fire.fire_id, "ruqi_scheduled_time": fire.scheduled_time}
    for name in accepted_fire_params(kernel, path):
        params.setdefault(name, values[name])
    return params


class HandlerJob(JobType):
    """Call a route of this instance in-process (``kernel.call(..., source="ruqi")``)."""

    description = "call a local route in-process"

    def validate(self, kernel, spec) -> None:
        """The route must exist here and accept ``payload``."""
        _check_path(spec.target)
        if spec.options:
            raise bad_param("options", "handler jobs take no options")
        validate_params(kernel, spec.target, spec.payload, required=True)

    def run(self, kernel, spec, fire: Fire) -> Outcome:
        """Call it; succeed on a non-error status and ``stat`` ``OK``.

        # NOTE: Python code cannot be interrupted: a handler that overruns
        # ``timeout`` finishes, and the run is then recorded as failed.
        """
        params = with_fire_params(kernel, spec.target, spec.payload, fire)
        response = kernel.call(spec.target, params, source="ruqi")
        if response.data is not None:
            text = json.dumps(response.data, default=str, ensure_ascii=False)
        else:
            body = response.body
            text = (
                body.decode("utf-8", "replace")
                if isinstance(body, bytes | bytearray)
                else str(body if isinstance(body, str) else "<streamed body>")
            )
        stat = response.stat or (response.data or {}).get("stat")
        ok = response.status < 400 and stat in (None, "OK")
        return Outcome(ok, f"HTTP {response.status} stat={stat}\n{text}")


def mq_enqueue_function(kernel):
    """``butterfly_mq.enqueue`` when butterfly-mq is installed, enabled and configured.

    :raises kernel.BadRequest: saying which of the three is missing
    """
    if importlib.util.find_spec("butterfly_mq") is None:
        raise bad_param("job_type", "mq jobs need butterfly-mq, which is not installed")
    try:
        redis_url = kernel.settings.get("mq", "redis_url")
    except ConfigError:
        raise bad_param(
            "job_type", "mq jobs need the mq plugin (butterfly-mq), which is not enabled on this instance"
        ) from None
    if not redis_url:
        raise bad_param("job_type", "mq jobs need [mq] redis_url to be set (the MQ is off)")
    try:
        from butterfly_mq import enqueue
    except ImportError as exc:
        raise bad_param("job_type", f"butterfly-mq cannot be imported: {exc}") from None
    return enqueue


class MqJob(JobType):
    """Enqueue ``payload`` as a message to the topic ``target`` (``/app/handler``)."""

    description = "enqueue a message to a butterfly-mq topic"

    def validate(self, kernel, spec) -> None:
        """MQ must be on; the payload must fit the handler when it is known here."""
        _check_path(spec.target)
        if spec.options:
            raise bad_param("options", "mq jobs take no options")
        mq_enqueue_function(kernel)
        validate_params(kernel, spec.target, spec.payload, required=False)

    def run(self, kernel, spec, fire: Fire) -> Outcome:
        """Enqueue; the output is the message id."""
        try:
            enqueue = mq_enqueue_function(kernel)
        except BadRequest as exc:
            return Outcome(False, exc.reason)
        params = with_fire_params(kernel, spec.target, spec.payload, fire)
        msg_id = enqueue(spec.target, params)
        return Outcome(True, f"enqueued {msg_id}")
