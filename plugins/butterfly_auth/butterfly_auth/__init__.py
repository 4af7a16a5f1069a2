"""Butterfly huoyan (火眼) auth: users, tokens, route protection.

Handlers import the decorators from here::

    from butterfly_auth import login_required, role

    @login_required
    def profile(req): ...

    @role("ops")
    def restart(req): ...
"""

from butterfly_auth.decorators import login_required, role

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["login_required", "role"]
