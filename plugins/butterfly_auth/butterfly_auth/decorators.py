"""``@login_required`` and ``@role("name")`` for handlers.

Like the router's decorators they only *mark* the function (the
``__butterfly_auth__`` attribute) and return it unchanged; the auth plugin's
``butterfly_authorize`` reads the mark from ``route.endpoint``. Order relative to
``@api``/``@http`` does not matter, and stacking ``@role`` adds roles (any one of
them suffices).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute the decorators set and the policy reads.
MARK = "__butterfly_auth__"


@dataclass(frozen=True)
class Requirement:
    """What a caller needs to use a route.

    :param login: an authenticated caller is needed
    :param roles: the caller needs one of these roles (empty: any authenticated caller)
    """

    login: bool = False
    roles: frozenset[str] = frozenset()

    def merged(self, other: Requirement) -> Requirement:
        """Both requirements' login and roles together."""
        return Requirement(self.login or other.login, self.roles | other.roles)


NONE = Requirement()


def _add_mark(func: F, requirement: Requirement) -> F:
    current = getattr(func, MARK, None)
    setattr(func, MARK, current.merged(requirement) if isinstance(current, Requirement) else requirement)
    return func


def login_required(func: F | None = None) -> Any:
    """Only authenticated callers may use the handler (bare or ``@login_required()``).

    :param func: the handler
    :return: the same function, marked
    """
    if func is None:
        return lambda target: _add_mark(target, Requirement(login=True))
    if not callable(func):
        raise TypeError(f"@login_required takes no arguments, got {func!r}")
    return _add_mark(func, Requirement(login=True))


def role(*names: str) -> Callable[[F], F]:
    """Only callers holding one of the roles ``names`` may use the handler.

    The ``admin`` role satisfies every role check.

    :param names: one or more role names, e.g. ``@role("ops")``
    :return: a decorator that marks the function
    """
    if not names or any(not isinstance(name, str) or not name for name in names):
        if names and callable(names[0]):
            raise TypeError('@role needs role names: write @role("name"), not @role')
        raise TypeError(f"@role needs one or more role names, got {names!r}")
    requirement = Requirement(login=True, roles=frozenset(names))
    return lambda target: _add_mark(target, requirement)


def requirement_of(endpoint: Any) -> Requirement:
    """The :class:`Requirement` an endpoint was marked with (:data:`NONE` when unmarked).

    Looks through ``functools.wraps`` wrappers (``__wrapped__``) too.
    """
    seen = 0
    while endpoint is not None and seen < 10:
        mark = getattr(endpoint, MARK, None)
        if isinstance(mark, Requirement):
            return mark
        endpoint = getattr(endpoint, "__wrapped__", None)
        seen += 1
    return NONE
