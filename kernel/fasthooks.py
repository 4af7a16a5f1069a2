"""Direct calls of the per-request hooks, resolved once per route instead of on every request.

# PERF: pluggy's generic dispatch (keyword checks, the hook-call loop, result lists)
# costs a few microseconds per hook and there are five per request. Once
# registration is over, the kernel calls each implementation itself, in pluggy's
# order (``HookCaller.get_hookimpls()``, called from the end), with pluggy's
# semantics: LIFO with ``tryfirst``/``trylast``, optional arguments, firstresult
# stopping at the first non-None value. Only pluggy's public API is used.
#
# A hook with a wrapper implementation (``hookwrapper=True`` or ``wrapper=True``),
# or any hook while hook-call monitoring is installed (``enable_tracing``,
# ``add_hookcall_monitoring``), goes through pluggy itself, unchanged.
#
# Per route: an implementation decorated with :func:`kernel.for_routes` runs only
# for the routes its predicate accepts (a public route does not pay for an admin
# check). The plan of each route is built on first use and dropped whenever a
# plugin is registered or unregistered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    from kernel.routes import Route

REQUEST_HOOKS = (
    "butterfly_request_started",
    "butterfly_authorize",
    "butterfly_handle_error",
    "butterfly_response_headers",
    "butterfly_request_finished",
)
#: The attribute :func:`for_routes` puts on an implementation function.
ROUTE_FILTER = "butterfly_for_routes"

F = TypeVar("F", bound=Callable[..., Any])


def for_routes(predicate: Callable[[Route], bool]) -> Callable[[F], F]:
    """Run a request-hook implementation only for the routes ``predicate`` accepts.

    Put it under ``@hookimpl``. The kernel asks ``predicate(route)`` once per route
    (not per request) and leaves the implementation out of that route's requests
    when it answers false. Requests that match no route (404) run every
    implementation. ``butterfly_request_started`` is filtered by the route the
    request's path matches before the hook runs.

    Example: ``@hookimpl`` + ``@for_routes(lambda route: route.admin)`` on a
    ``butterfly_authorize`` that only ever decides admin routes.

    :param predicate: ``route -> bool``; must not depend on the request
    """

    def mark(function: F) -> F:
        setattr(function, ROUTE_FILTER, predicate)
        return function

    return mark


class PluginManager(pluggy.PluginManager):
    """pluggy's plugin manager, telling the kernel when its direct hook calls must be rebuilt.

    ``generation`` changes with every ``register``/``unregister``; ``monitored`` is
    true while hook-call monitoring is installed (``enable_tracing`` installs it
    through ``add_hookcall_monitoring`` too).
    """

    def __init__(self, project_name: str) -> None:
        super().__init__(project_name)
        self.generation = 0
        self.monitored = 0

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """:meth:`pluggy.PluginManager.register`; invalidates the kernel's hook plans."""
        try:
            return super().register(plugin, name)
        finally:
            self.generation += 1

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        """:meth:`pluggy.PluginManager.unregister`; invalidates the kernel's hook plans."""
        try:
            return super().unregister(plugin, name)
        finally:
            self.generation += 1

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        """:meth:`pluggy.PluginManager.add_hookcall_monitoring`; the kernel then calls hooks through pluggy."""
        undo = super().add_hookcall_monitoring(before, after)
        self.monitored += 1
        self.generation += 1
        done = False

        def undo_and_count() -> None:
            nonlocal done
            undo()
            if not done:
                done = True
                self.monitored -= 1
                self.generation += 1

        return undo_and_count


def _adapt(
    function: Callable[..., Any], argnames: tuple[str, ...], spec_argnames: tuple[str, ...]
) -> Callable[..., Any]:
    """Call ``function`` positionally with the subset of arguments it declares."""
    if tuple(argnames) == tuple(spec_argnames):
        return function
    positions = [spec_argnames.index(name) for name in argnames]
    if not positions:
        return lambda *args: function()
    if len(positions) == 1:
        (only,) = positions
        return lambda *args: function(args[only])
    return lambda *args: function(*[args[i] for i in positions])


def _applies(impl: pluggy.HookImpl, route: Route | None) -> bool:
    if route is None:
        return True
    predicate = getattr(impl.function, ROUTE_FILTER, None)
    return predicate is None or bool(predicate(route))


class FastHook:
    """One request hook, callable positionally in its spec's argument order.

    :param caller: the hook's :class:`pluggy.HookCaller`
    :param direct: call the implementations directly (no wrapper, no monitoring)
    :param route: keep only the implementations that apply to this route (``None``: all)
    """

    def __init__(self, caller: pluggy.HookCaller, direct: bool, route: Route | None = None) -> None:
        self.caller = caller
        self.spec_argnames = tuple(caller.spec.argnames) if caller.spec else ()
        self.firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
        impls = caller.get_hookimpls()
        self.direct = direct and not any(impl.hookwrapper or impl.wrapper for impl in impls)
        # pluggy calls the implementations from the end of this list to the start
        self.functions = tuple(
            _adapt(impl.function, tuple(impl.argnames), self.spec_argnames)
            for impl in reversed(impls)
            if _applies(impl, route)
        )
        if self.direct:
            # PERF: the common shapes get a bound method without a branch per call
            if not self.functions:
                self.call = _nothing
            elif self.firstresult:
                self.call = self._first_result
            elif len(self.functions) == 1:
                self.call = self.functions[0]
            else:
                self.call = self._each
        else:
            self.call = self._through_pluggy

    def __call__(self, *args: Any) -> Any:
        """Call every implementation (firstresult: until one returns non-None)."""
        result = self.call(*args)
        return result if self.firstresult else None

    def _first_result(self, *args: Any) -> Any:
        for function in self.functions:
            result = function(*args)
            if result is not None:
                return result
        return None

    def _each(self, *args: Any) -> None:
        for function in self.functions:
            function(*args)

    def _through_pluggy(self, *args: Any) -> Any:
        result = self.caller(**dict(zip(self.spec_argnames, args, strict=True)))
        return result if self.firstresult else None


def _nothing(*args: Any) -> None:
    return None


class RouteHooks:
    """The five request hooks as they apply to one route.

    Each attribute is a callable taking the hook's arguments positionally;
    ``authorize`` and ``handle_error`` return the first non-None result, the
    others ``None``.
    """

    __slots__ = ("authorize", "handle_error", "request_finished", "request_started", "response_headers")

    def __init__(self, pm: pluggy.PluginManager, direct: bool, route: Route | None) -> None:
        hook = pm.hook
        self.request_started: Callable[..., Any] = FastHook(hook.butterfly_request_started, direct, route).call
        self.authorize: Callable[..., Any] = FastHook(hook.butterfly_authorize, direct, route).call
        self.handle_error: Callable[..., Any] = FastHook(hook.butterfly_handle_error, direct, route).call
        self.response_headers: Callable[..., Any] = FastHook(hook.butterfly_response_headers, direct, route).call
        self.request_finished: Callable[..., Any] = FastHook(hook.butterfly_request_finished, direct, route).call


class RequestHooks:
    """The request hooks of one kernel, resolved from its plugin manager, per route on demand.

    ``hooks.for_route(route)`` (``None`` for "no route") gives the :class:`RouteHooks`;
    the attributes of this object are the unfiltered hooks. With a plain
    :class:`pluggy.PluginManager` (not the kernel's :class:`PluginManager`) every
    call goes through pluggy.

    :param pm: the kernel's plugin manager
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.generation = getattr(pm, "generation", None)
        self.direct = getattr(pm, "monitored", 1) == 0
        self.all = RouteHooks(pm, self.direct, None)
        self._plans: dict[Route, RouteHooks] = {}

    def __getattr__(self, name: str) -> Any:
        # request_started, authorize, ... of the unfiltered set
        if name in RouteHooks.__slots__:
            return getattr(self.all, name)
        raise AttributeError(name)

    @property
    def stale(self) -> bool:
        """A plugin was registered or unregistered (or monitoring changed) since these were resolved."""
        return getattr(self.pm, "generation", None) != self.generation

    def for_route(self, route: Route | None) -> RouteHooks:
        """The hooks that apply to ``route`` (built on first use, then cached)."""
        if route is None:
            return self.all
        plan = self._plans.get(route)
        if plan is None:
            plan = self._plans[route] = RouteHooks(self.pm, self.direct, route)
        return plan
