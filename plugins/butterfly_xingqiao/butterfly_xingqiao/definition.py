"""Declaring workflows: ``@workflow("job_type")``, ``flow.task(...)`` and task references.

A workflow function is called once per job, at creation, with a :class:`Flow` and the
job's params (bound and converted like a handler's). Each ``flow.task(...)`` adds a
node and returns a :class:`TaskRef`; ``ref["key"]`` is a :class:`ResultRef`, a value of
that task's result that is filled in when a dependent task starts. Using a
``ResultRef`` in a task's params makes the dependency implicit; ``after=[...]`` and
``upstream >> downstream`` add explicit ones. Nothing here touches a kernel: the graph
is checked against the routes in :mod:`butterfly_xingqiao.validation`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: Marks a function as a workflow; the value is its :class:`Workflow`.
MARK = "__xingqiao_workflow__"
#: How a :class:`ResultRef` is written in the stored params of a task.
REF_KEY = "$xq_ref"


class ResultRef:
    """A value from an upstream task's result: ``ref["key"]``, ``ref["a"]["b"]``, ``ref["items"][0]``."""

    __slots__ = ("path", "task")

    def __init__(self, task: TaskRef, path: tuple[str | int, ...]) -> None:
        self.task = task
        self.path = path

    def __getitem__(self, key: str | int) -> ResultRef:
        return ResultRef(self.task, (*self.path, key))

    def __repr__(self) -> str:
        return f"{self.task.label}" + "".join(f"[{step!r}]" for step in self.path)


class TaskRef:
    """What :meth:`Flow.task` returns: use it in ``after=``, with ``>>``, or index it for results."""

    __slots__ = ("flow", "index", "label")

    def __init__(self, flow: Flow, index: int, label: str) -> None:
        self.flow = flow
        self.index = index
        self.label = label

    def __getitem__(self, key: str | int) -> ResultRef:
        return ResultRef(self, (key,))

    def __rshift__(self, other: TaskRef | Iterable[TaskRef]) -> TaskRef | Iterable[TaskRef]:
        """``a >> b``: ``b`` runs after ``a``; returns ``b`` so chains read left to right."""
        for target in _as_refs(other):
            self.flow.add_edge(self, target)
        return other

    def __rrshift__(self, other: Iterable[TaskRef]) -> TaskRef:
        """``[a, b] >> c``: ``c`` runs after ``a`` and ``b``."""
        for source in _as_refs(other):
            self.flow.add_edge(source, self)
        return self

    def __repr__(self) -> str:
        return f"<task {self.label} {self.flow.tasks[self.index].route}>"


def _as_refs(value: Any) -> list[TaskRef]:
    if isinstance(value, TaskRef):
        return [value]
    if isinstance(value, list | tuple | set | frozenset):
        refs = list(value)
        if all(isinstance(ref, TaskRef) for ref in refs):
            return refs
    raise TypeError(f"expected a task (what flow.task returns) or a list of them, got {value!r}")


@dataclass
class TaskSpec:
    """One node of a job's graph, as the workflow declared it."""

    index: int
    label: str
    route: str
    params: dict[str, Any]
    upstream: set[int] = field(default_factory=set)
    retries: int = 0
    timeout: float | None = None
    save: bool = False


class Flow:
    """The graph a workflow function builds; collects mistakes instead of raising at the first.

    :param job_type: the workflow's job type (for messages)
    """

    def __init__(self, job_type: str = "") -> None:
        self.job_type = job_type
        self.tasks: list[TaskSpec] = []
        self.errors: list[dict[str, str]] = []
        self._labels: Counter[str] = Counter()

    def task(
        self,
        route: str,
        *,
        after: TaskRef | Iterable[TaskRef] = (),
        retries: int = 0,
        timeout: float | None = None,
        save: bool = False,
        **params: Any,
    ) -> TaskRef:
        """Add a task that runs ``route`` (through the MQ) with ``params``.

        :param route: ``/app/handler`` of a handler route
        :param after: tasks that must finish first (besides those whose results ``params`` use)
        :param retries: runs after a failed one (exception, timeout or a stat other than ``OK``),
            with exponential backoff
        :param timeout: seconds a run may take; a longer run counts as failed
        :param save: copy this task's result into the job's ``ret_data``
        :param params: the handler's parameters: plain JSON values, or ``ref["key"]`` results of
            earlier tasks, also inside lists and dicts
        :return: a reference to the task
        """
        index = len(self.tasks)
        name = route.rstrip("/").rsplit("/", 1)[-1] if isinstance(route, str) and route else "task"
        self._labels[name] += 1
        label = name if self._labels[name] == 1 else f"{name}_{self._labels[name]}"
        spec = TaskSpec(index, label, route if isinstance(route, str) else repr(route), params)
        self.tasks.append(spec)
        ref = TaskRef(self, index, label)
        if not isinstance(route, str) or not route.startswith("/"):
            self._error(spec, "route", f"expected a route path like /app/handler, got {route!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            self._error(spec, "retries", f"expected an integer 0..100, got {retries!r}")
        else:
            spec.retries = retries
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            self._error(spec, "timeout", f"expected seconds > 0, got {timeout!r}")
        else:
            spec.timeout = None if timeout is None else float(timeout)
        spec.save = bool(save)
        try:
            upstream = _as_refs(after) if after else []
        except TypeError as exc:
            self._error(spec, "after", str(exc))
            upstream = []
        for source in upstream:
            self.add_edge(source, ref)
        for name, value in params.items():
            for result in iter_refs(value):
                if result.task.flow is not self:
                    self._error(spec, name, f"{result!r} is a task of another workflow")
                else:
                    spec.upstream.add(result.task.index)
        return ref

    def add_edge(self, source: TaskRef, target: TaskRef) -> None:
        """``target`` runs after ``source`` (both tasks of this flow)."""
        for ref in (source, target):
            if not isinstance(ref, TaskRef) or ref.flow is not self:
                raise TypeError(f"{ref!r} is not a task of this workflow")
        if source.index == target.index:
            self._error(self.tasks[target.index], "after", "a task cannot run after itself")
            return
        self.tasks[target.index].upstream.add(source.index)

    def _error(self, spec: TaskSpec, param: str, reason: str) -> None:
        self.errors.append({"task": spec.label, "route": spec.route, "param": param, "reason": reason})

    def cycle(self) -> list[str] | None:
        """Labels along one cycle of the graph (first label repeated at the end), or ``None``."""
        state = [0] * len(self.tasks)  # 0 new, 1 on the stack, 2 done
        for start in range(len(self.tasks)):
            if state[start]:
                continue
            stack: list[tuple[int, Iterator[int]]] = [(start, iter(sorted(self.tasks[start].upstream)))]
            state[start] = 1
            while stack:
                node, edges = stack[-1]
                step = next(edges, None)
                if step is None:
                    state[node] = 2
                    stack.pop()
                elif state[step] == 1:
                    path = [index for index, _ in stack]
                    loop = [*path[path.index(step) :], step]
                    return [self.tasks[index].label for index in reversed(loop)]
                elif state[step] == 0:
                    state[step] = 1
                    stack.append((step, iter(sorted(self.tasks[step].upstream))))
        return None


def iter_refs(value: Any) -> Iterator[ResultRef]:
    """Every :class:`ResultRef` inside ``value`` (lists, tuples and dict values are searched)."""
    if isinstance(value, ResultRef):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_refs(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_refs(item)


def encode_params(value: Any) -> Any:
    """Params with every :class:`ResultRef` written as ``{"$xq_ref": [task_index, [path...]]}``."""
    if isinstance(value, ResultRef):
        return {REF_KEY: [value.task.index, list(value.path)]}
    if isinstance(value, list | tuple):
        return [encode_params(item) for item in value]
    if isinstance(value, dict):
        return {key: encode_params(item) for key, item in value.items()}
    return value


@dataclass
class Workflow:
    """A registered workflow: its job type and the function that builds a job's graph.

    :param job_type: the name ``create_job(job_type=...)`` uses
    :param func: ``func(flow, **params)``
    """

    job_type: str
    func: Callable[..., Any]
    _binder: Any = None

    @property
    def origin(self) -> str:
        """``module.function``, for error messages."""
        return f"{getattr(self.func, '__module__', '?')}.{getattr(self.func, '__qualname__', '?')}"

    @property
    def doc(self) -> str:
        """The first line of the function's docstring."""
        return (self.func.__doc__ or "").strip().split("\n", 1)[0]

    def binder(self) -> Any:
        """The router's :class:`~butterfly_router.binder.Binder` for the job's params (built once)."""
        if self._binder is None:
            from butterfly_router.binder import Binder

            self._binder = Binder(_as_handler(self.func))
        return self._binder


def _as_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in with ``req`` as first parameter, so the router's binder reads the signature.

    # NOTE: the binder insists on a ``req``-first handler; renaming only the first
    # parameter keeps every other name, default and type hint (``__wrapped__`` lets it
    # resolve string annotations in the workflow's own module).
    """
    import inspect

    signature = inspect.signature(func)
    parameters = list(signature.parameters.values())
    if not parameters:
        raise TypeError(f"workflow {func.__qualname__} must take the flow as its first parameter")

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    new_signature = signature.replace(parameters=[parameters[0].replace(name="req"), *parameters[1:]])
    stand_in.__signature__ = new_signature  # type: ignore[attr-defined]
    stand_in.__wrapped__ = func  # type: ignore[attr-defined]
    stand_in.__qualname__ = func.__qualname__
    stand_in.__module__ = func.__module__
    return stand_in


def workflow(job_type: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a workflow: ``@workflow("job_type")`` on ``def build(flow, param: type, ...)``.

    The function is returned unchanged (callable in tests) and found in a handler app's
    ``workflows.py`` or registered by a plugin's ``butterfly_xingqiao_workflows`` hook.

    :param job_type: 1–64 letters, digits, ``_ - .``
    :return: the decorator
    """
    if not isinstance(job_type, str) or not job_type or len(job_type) > 64:
        raise ValueError(f"job_type must be 1-64 characters, got {job_type!r}")
    if not all(char.isalnum() or char in "_-." for char in job_type):
        raise ValueError(f"job_type {job_type!r}: only letters, digits, _ - . are allowed")

    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, MARK, Workflow(job_type, func))
        return func

    return mark


def workflow_of(func: Any) -> Workflow | None:
    """The :class:`Workflow` a function was declared as, or ``None``."""
    found = getattr(func, MARK, None)
    return found if isinstance(found, Workflow) else None
