"""Bind request parameters to a handler's signature, checking and converting them.

A :class:`Binder` is built once per route at registration (``inspect`` and
``typing`` run there, never per request); :meth:`Binder.bind` is the hot path.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_router.converters import Converter, ParamError, converter_for, describe
from kernel import BadRequest, ConfigError, NotFound

if TYPE_CHECKING:
    from kernel import Kernel

log = structlog.get_logger("butterfly.router")

#: The request parameter; a client can never supply it.
REQUEST_PARAM = "req"
_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class ParamSpec:
    """One bindable handler parameter.

    :param name: the parameter name (= the request parameter name)
    :param hint: the resolved type hint, or ``inspect.Parameter.empty``
    :param convert: the converter for ``hint``, ``None`` to pass values as given
    :param required: no default value
    :param default: the default (``inspect.Parameter.empty`` when required)
    """

    name: str
    hint: Any
    convert: Converter | None
    required: bool
    default: Any


def _resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    target = inspect.unwrap(func)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - a bad annotation must not hide the handler
        log.warning(
            "cannot resolve type hints; values pass unconverted",
            handler=f"{target.__module__}.{target.__qualname__}",
            error=str(exc),
        )
        return {
            name: hint for name, hint in getattr(target, "__annotations__", {}).items() if not isinstance(hint, str)
        }


class Binder:
    """The parsed signature of one handler, ready to bind parameter dicts.

    :param func: the handler; its first positional parameter is ``req``
    :param reserved: parameter names the protocol fills itself (``stream`` for
        uploads); a client may not send them
    :raises ConfigError: when the signature cannot be served (positional-only
        parameters after ``req``, or a reserved parameter is missing)
    """

    def __init__(self, func: Callable[..., Any], reserved: tuple[str, ...] = ()) -> None:
        signature = inspect.signature(func)
        hints = _resolved_hints(func)
        parameters = list(signature.parameters.values())
        name = getattr(func, "__qualname__", repr(func))
        if not parameters or parameters[0].name != REQUEST_PARAM:
            raise ConfigError(f"handler {name}: the first parameter must be named 'req'")
        specs: list[ParamSpec] = []
        self.accepts_any = False
        for parameter in parameters[1:]:
            if parameter.kind is parameter.VAR_KEYWORD:
                self.accepts_any = True
            elif parameter.kind is parameter.VAR_POSITIONAL:
                continue
            elif parameter.kind is parameter.POSITIONAL_ONLY:
                raise ConfigError(
                    f"handler {name}: positional-only parameter {parameter.name!r} cannot be bound by name"
                )
            elif parameter.name not in reserved:
                hint = hints.get(parameter.name, _MISSING)
                specs.append(
                    ParamSpec(
                        parameter.name,
                        hint,
                        None if hint is _MISSING else converter_for(hint),
                        parameter.default is _MISSING,
                        parameter.default,
                    )
                )
        names = {parameter.name for parameter in parameters}
        for needed in reserved:
            if needed not in names:
                raise ConfigError(f"handler {name}: must take a parameter named {needed!r}")
        self.func = func
        self.reserved = frozenset((REQUEST_PARAM, *reserved))
        self.specs: tuple[ParamSpec, ...] = tuple(specs)
        self.names = frozenset(spec.name for spec in specs)
        self.has_required = any(spec.required for spec in specs)
        # PERF: a flat tuple of (name, convert, required) is what bind() walks.
        self._plan = tuple((spec.name, spec.convert, spec.required) for spec in specs)

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check and convert ``params`` into keyword arguments for the handler.

        Defaults are left to Python (absent parameters are simply not passed).

        :param params: the merged request parameters
        :return: keyword arguments (without ``req``)
        :raises BadRequest: listing every missing, unknown, reserved or invalid parameter
        """
        # PERF: the common no-parameter call does one len() and returns.
        if not params and not self.has_required:
            return {}
        kwargs: dict[str, Any] = {}
        errors: list[dict[str, str]] | None = None
        matched = 0
        for name, convert, required in self._plan:
            if name in params:
                matched += 1
                value = params[name]
                if convert is not None:
                    try:
                        value = convert(value)
                    except ParamError as exc:
                        errors = errors or []
                        errors.append({"param": name, "reason": exc.reason})
                        continue
                kwargs[name] = value
            elif required:
                errors = errors or []
                errors.append({"param": name, "reason": "required parameter is missing"})
        if matched != len(params):
            errors = self._extra(params, kwargs, errors)
        if errors:
            raise BadRequest(_summary(errors), data={"errors": errors})
        return kwargs

    def _extra(
        self, params: Mapping[str, Any], kwargs: dict[str, Any], errors: list[dict[str, str]] | None
    ) -> list[dict[str, str]] | None:
        for key in params:
            if key in self.names:
                continue
            if not isinstance(key, str) or key in self.reserved:
                errors = errors or []
                errors.append({"param": str(key), "reason": "reserved: cannot be sent by the client"})
            elif self.accepts_any:
                kwargs[key] = params[key]
            else:
                errors = errors or []
                errors.append({"param": key, "reason": "unknown parameter"})
        return errors

    def describe(self) -> list[dict[str, Any]]:
        """The parameters for listings: name, type, required, default."""
        return [
            {
                "name": spec.name,
                "type": None if spec.hint is _MISSING else describe(spec.hint),
                "required": spec.required,
                **({} if spec.required else {"default": _jsonable(spec.default)}),
            }
            for spec in self.specs
        ]

    def usage(self) -> str:
        """A one-line usage: ``a:int b:str=''`` (for ``butterfly call`` and logs)."""
        parts = []
        for spec in self.specs:
            text = spec.name if spec.hint is _MISSING else f"{spec.name}:{describe(spec.hint)}"
            parts.append(text if spec.required else f"[{text}={spec.default!r}]")
        if self.accepts_any:
            parts.append("[k=v ...]")
        return " ".join(parts)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _summary(errors: list[dict[str, str]]) -> str:
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"bad parameter {first['param']}: {first['reason']}{more}"


def check_params(kernel: Kernel, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` for route ``path`` without calling it (MQ enqueue, ruqi jobs).

    :param kernel: the configured kernel
    :param path: ``/app/handler``
    :param params: the parameters a later call will send
    :return: the converted keyword arguments (typed values; enqueue the original
        ``params``, which stay JSON); a route the router did not register (no
        signature) returns ``dict(params)`` unchecked
    :raises NotFound: no route serves ``path``
    :raises BadRequest: the parameters do not fit; ``exc.data["errors"]`` lists them
    """
    route = kernel.routes.lookup(path)
    if route is None:
        raise NotFound(f"no route for {path}")
    binder = route.meta.get("binder")
    if not isinstance(binder, Binder):
        return dict(params)
    return binder.bind(params)
