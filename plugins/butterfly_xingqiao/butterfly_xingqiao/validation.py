"""Build a job's graph and check all of it before anything is stored or enqueued.

:func:`build_graph` binds the job's params to the workflow's signature, runs the
workflow function, and checks the graph (not empty, not too large, acyclic) and
every task against the route it names (:func:`check_task`): the route exists, is a
handler the MQ may run, and the task's params fit its signature. Params that are
results of upstream tasks are checked by name only (their values exist later);
they are checked in full when the task is enqueued.
"""

from __future__ import annotations

from typing import Any

from butterfly_xingqiao.definition import REF_KEY, Flow, TaskSpec, Workflow, iter_refs
from kernel import BadRequest
from kernel.response import dumps

#: the most errors one reply lists
MAX_ERRORS = 50


def build_graph(kernel: Any, workflow: Workflow, params: dict[str, Any], max_tasks: int) -> Flow:
    """Run ``workflow`` for ``params`` and check the resulting graph against ``kernel``'s routes.

    :param kernel: the kernel whose routes the tasks name
    :param workflow: the job type's workflow
    :param params: the job's params (``job_extra``)
    :param max_tasks: the most tasks one job may have
    :return: the checked :class:`Flow`
    :raises kernel.BadRequest: ``errors`` name the job param, or the task and param, at fault
    """
    kwargs = workflow.binder().bind(params)  # raises BadRequest naming the job's params
    flow = Flow(workflow.job_type)
    try:
        workflow.func(flow, **kwargs)
    except BadRequest:
        raise
    except (ValueError, TypeError) as exc:
        # NOTE: a workflow rejects a combination of params by raising ValueError.
        raise BadRequest(
            f"workflow {workflow.job_type} rejected the params: {exc}",
            data={"errors": [{"param": "job_extra", "reason": str(exc)[:500]}]},
        ) from None
    errors = list(flow.errors)
    if not flow.tasks:
        errors.append({"param": "job_type", "reason": f"workflow {workflow.job_type} made no task"})
    elif len(flow.tasks) > max_tasks:
        errors.append({"param": "job_type", "reason": f"{len(flow.tasks)} tasks; at most {max_tasks} are allowed"})
    else:
        loop = flow.cycle()
        if loop:
            errors.append({"task": loop[0], "param": "after", "reason": "the graph has a cycle: " + " → ".join(loop)})
        checked: dict[str, Any] = {}
        for task in flow.tasks:
            errors += check_task(kernel, task, checked)
    if errors:
        first = errors[0]
        where = f"task {first['task']} " if "task" in first else ""
        raise BadRequest(
            f"bad workflow: {where}{first['param']}: {first['reason']}"[:300],
            data={"errors": errors[:MAX_ERRORS], "error_count": len(errors)},
        )
    return flow


def check_task(kernel: Any, task: TaskSpec, routes: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The problems of one task: unknown or unsuitable route, params that do not fit.

    :param kernel: the kernel
    :param task: the task as declared
    :param routes: a cache ``{path: route}`` shared across the tasks of one job
    :return: errors ``{"task", "route", "param", "reason"}`` (empty when fine)
    """
    from butterfly_mq.keys import check_topic

    def error(param: str, reason: str) -> dict[str, str]:
        return {"task": task.label, "route": task.route, "param": param, "reason": reason}

    if not task.route.startswith("/"):
        return []  # already reported by the flow
    routes = {} if routes is None else routes
    route = routes.get(task.route) or kernel.routes.lookup(task.route)
    if route is None or route.prefix or route.path != task.route:
        return [error("route", f"no route {task.route}")]
    routes[task.route] = route
    if route.admin:
        return [error("route", f"{task.route} is an admin route; the MQ does not run admin routes")]
    try:
        check_topic(task.route)
    except ValueError as exc:
        return [error("route", str(exc))]
    problems = []
    literal: dict[str, Any] = {}
    from_results: set[str] = set()
    for name, value in task.params.items():
        if any(True for _ in iter_refs(value)):
            from_results.add(name)
        else:
            literal[name] = value
        reason = _not_json(value)
        if reason:
            problems.append(error(name, reason))
    binder = route.meta.get("binder")
    if binder is None or not hasattr(binder, "bind"):
        return problems  # not a router handler: no signature to check against
    try:
        binder.bind(literal)
    except BadRequest as exc:
        for item in exc.data.get("errors", []):
            # NOTE: bind() saw only the literal params, so an error about a param that an
            # upstream result provides can only say "missing": it is not one.
            if item.get("param") not in from_results:
                problems.append(error(str(item.get("param")), str(item.get("reason"))))
    for name in sorted(from_results):
        if name in binder.reserved:
            problems.append(error(name, "reserved: cannot be sent by the client"))
        elif name not in binder.names and not binder.accepts_any:
            problems.append(error(name, "unknown parameter"))
    return problems


def _not_json(value: Any) -> str | None:
    """Why ``value`` cannot be stored as a task param (``None`` when it can)."""
    if isinstance(value, dict) and REF_KEY in value:
        return f"the key {REF_KEY!r} is reserved"
    if any(True for _ in iter_refs(value)):
        if isinstance(value, dict):
            return next((reason for item in value.values() if (reason := _not_json(item))), None)
        if isinstance(value, list | tuple):
            return next((reason for item in value if (reason := _not_json(item))), None)
        return None
    try:
        dumps(value)
    except (TypeError, ValueError) as exc:
        return f"not JSON: {exc}"
    return None
