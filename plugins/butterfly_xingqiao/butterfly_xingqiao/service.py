"""xingqiao's per-kernel state: settings, the workflow registry, the store, the sender.

Built in ``butterfly_configure`` (no I/O) and kept in ``kernel.extensions["xingqiao"]``;
workflows are collected once the router has imported the handler apps.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from typing import Any

import structlog

from butterfly_xingqiao.definition import Workflow, workflow_of
from kernel import BadRequest, ConfigError

log = structlog.get_logger("butterfly.xingqiao")

EXTENSION = "xingqiao"


@dataclass
class XingqiaoState:
    """What xingqiao keeps on a kernel.

    :param kernel: the kernel
    :param settings: the ``[xingqiao]`` section
    """

    kernel: Any
    settings: Any
    workflows: dict[str, Workflow] = field(default_factory=dict)
    sweeper: Any = None
    _db: Any = None
    _transitions: Any = None
    #: the :class:`~butterfly_xingqiao.engine.StartMarks` (set in ``butterfly_configure``)
    starts: Any = None

    @property
    def db(self):
        """The store's mapped pony database (looked up on first use: the store maps last)."""
        if self._db is None:
            try:
                from butterfly_store import get_db
            except ImportError:
                raise ConfigError("butterfly-xingqiao needs butterfly-store (pip install butterfly-store)") from None
            self._db = get_db(self.kernel)
        return self._db

    @property
    def transitions(self):
        """The :class:`~butterfly_xingqiao.engine.Transitions` of this kernel's store."""
        if self._transitions is None:
            from butterfly_xingqiao.engine import Transitions

            self._transitions = Transitions(self)
        return self._transitions

    def check_params(self, route: str, params: dict[str, Any]) -> None:
        """Check a task's resolved params against its handler when this kernel serves it.

        :raises ValueError: naming each bad param
        """
        found = self.kernel.routes.lookup(route)
        if found is None or found.path != route or found.meta.get("binder") is None:
            return
        from butterfly_router import check_params

        try:
            check_params(self.kernel, route, params)
        except BadRequest as exc:
            problems = exc.data.get("errors") or [{"param": "?", "reason": exc.reason}]
            raise ValueError("; ".join(f"{item['param']}: {item['reason']}" for item in problems)) from None

    def send(self, dispatches: list) -> None:
        """Send messages decided by a committed transaction (see :mod:`butterfly_xingqiao.dispatch`).

        A message the MQ refuses for its params fails its task; one that cannot be sent
        now (Redis down) stays ``pending`` and the sweep sends it later.
        """
        from butterfly_mq.errors import MQError
        from butterfly_xingqiao.dispatch import batches, reason_of, send_batch
        from butterfly_xingqiao.engine import report_run

        # PERF: one round trip per route (enqueue_many): a 100-task fan-out to one route is
        # one batch, not 100 sequential enqueues.
        for batch in batches(dispatches):
            try:
                refused = send_batch(self.kernel, batch)
            except BadRequest as exc:
                refused = [
                    (dispatch, reason_of((exc.data or {}).get("errors") or [], exc.reason)) for dispatch in batch
                ]
            except MQError as exc:
                log.warning(
                    "xingqiao_send_failed",
                    msg_ids=[dispatch.msg_id for dispatch in batch],
                    route=batch[0].route,
                    error=str(exc)[:300],
                    note="the tasks stay pending; the sweep sends them again",
                )
                continue
            for dispatch, reason in refused:
                report_run(self, dispatch.msg_id, "failed", "ERR_BAD_PARAMS", None, reason, None)


def collect_workflows(kernel: Any) -> dict[str, Workflow]:
    """Every workflow: ``workflows.py`` of each handler app, then the plugins' hook.

    :raises ConfigError: a job type declared twice (naming both), a bad registration, or
        (with ``[router] strict``) a ``workflows.py`` that fails to import
    """
    found: dict[str, Workflow] = {}

    def register(func: Any) -> None:
        declared = func if isinstance(func, Workflow) else workflow_of(func)
        if declared is None:
            raise ConfigError(f"butterfly_xingqiao_workflows: {func!r} is not decorated with @workflow(job_type)")
        other = found.get(declared.job_type)
        if other is not None and other.func is not declared.func:
            raise ConfigError(
                f"duplicate workflow job_type {declared.job_type!r}: {other.origin} and {declared.origin}"
            )
        found[declared.job_type] = declared

    for module in _handler_workflow_modules(kernel):
        for name, value in vars(module).items():
            declared = workflow_of(value)
            if declared is not None and not name.startswith("_") and value.__module__ == module.__name__:
                register(value)
    kernel.hook.butterfly_xingqiao_workflows(register=register)
    return found


def _handler_workflow_modules(kernel: Any) -> list[Any]:
    """Import ``<app>/workflows.py`` of every handler app the router loaded."""
    router = kernel.extensions.get("router")
    if router is None:
        return []
    modules = []
    for _app, module_name in getattr(router, "loaded_apps", []):
        package = sys.modules.get(module_name)
        if package is None or not hasattr(package, "__path__"):
            continue
        target = f"{module_name}.workflows"
        try:
            if importlib.util.find_spec(target) is None:
                continue
            modules.append(importlib.import_module(target))
        except Exception as exc:
            if getattr(router, "strict", False):
                raise ConfigError(f"{target} failed to import: {type(exc).__name__}: {exc}") from exc
            log.error("workflows module failed to load", module=target, error=f"{type(exc).__name__}: {exc}")
    return modules
