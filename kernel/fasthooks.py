"""Direct calls of the per-request hooks, resolved once instead of on every request.

# PERF: pluggy's generic dispatch (keyword checks, ``_multicall``, result lists)
# costs a few microseconds per hook and there are five per request. The request
# hooks are plain (no wrappers), so once registration is over the kernel can call
# each implementation itself, in pluggy's order, with pluggy's semantics:
# LIFO with ``tryfirst``/``trylast``, optional arguments, and firstresult stopping
# at the first non-None value. A hook with a wrapper implementation, or with
# hook-call monitoring installed, keeps going through pluggy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy
from pluggy._callers import _multicall

REQUEST_HOOKS = (
    "butterfly_request_started",
    "butterfly_authorize",
    "butterfly_handle_error",
    "butterfly_response_headers",
    "butterfly_request_finished",
)


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


class FastHook:
    """One request hook, callable positionally in its spec's argument order."""

    def __init__(self, caller: pluggy.HookCaller, monitored: bool) -> None:
        self.caller = caller
        self.spec_argnames = tuple(caller.spec.argnames) if caller.spec else ()
        self.firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
        impls = caller.get_hookimpls()
        self.direct = not monitored and not any(i.hookwrapper or i.wrapper for i in impls)
        # pluggy calls the implementations from the end of this list to the start
        self.functions = tuple(_adapt(i.function, tuple(i.argnames), self.spec_argnames) for i in reversed(impls))

    def __call__(self, *args: Any) -> Any:
        """Call every implementation (firstresult: until one returns non-None)."""
        if not self.direct:
            result = self.caller(**dict(zip(self.spec_argnames, args)))
            return result if self.firstresult else None
        if self.firstresult:
            for function in self.functions:
                result = function(*args)
                if result is not None:
                    return result
            return None
        for function in self.functions:
            function(*args)
        return None


class RequestHooks:
    """The five request hooks of one kernel, resolved from its plugin manager."""

    request_started: FastHook
    authorize: FastHook
    handle_error: FastHook
    response_headers: FastHook
    request_finished: FastHook

    def __init__(self, pm: pluggy.PluginManager) -> None:
        # NOTE: pluggy exposes no public flag for hook-call monitoring; a replaced
        # _inner_hookexec means someone installed it (tracing, tests).
        monitored = getattr(pm, "_inner_hookexec", _multicall) is not _multicall
        for name in REQUEST_HOOKS:
            setattr(self, name.removeprefix("butterfly_"), FastHook(getattr(pm.hook, name), monitored))
