"""One pony ``db_session`` per request and in-process call.

Registered as its own plugin object by the store's ``butterfly_configure``. The
session opens in ``butterfly_request_started``, commits in the last
``butterfly_response_headers`` (so a failing commit still turns into a 500 the
client sees, instead of an ``OK`` for data that was never saved) and closes in
``butterfly_request_finished``. A response with status 500 or more rolls back.

Nested-safe: ``kernel.call`` from inside a request enters a nested session (pony
counts them); only the outermost commits, rolls back or closes.

With a connection budget (``[store] max_connections``, MySQL/PostgreSQL) the
outermost session also tells the budget when it starts and ends, which is where a
thread gives its connection back when others wait (:mod:`butterfly_store.budget`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from pony.orm import commit, db_session, rollback
from pony.orm.core import local as _pony_local

from kernel import hookimpl

if TYPE_CHECKING:
    from pony.orm import Database

    from butterfly_store.budget import ConnectionBudget

log = structlog.get_logger("butterfly.store")

#: ``request.ctx`` key: ``True`` when this request opened the outermost session.
CTX_KEY = "store.session"


def _is_outermost() -> bool:
    # PERF: imported once at module level (an import statement per request showed in profiles)
    return _pony_local.db_session is None


class RequestSessions:
    """The request hooks that wrap every request in a ``db_session``.

    :param db: the store's database (used with ``budget``)
    :param budget: the connection budget, or ``None`` (SQLite, or no limit)
    """

    def __init__(self, db: Database | None = None, budget: ConnectionBudget | None = None) -> None:
        self.db = db
        self.budget = budget

    @hookimpl(tryfirst=True)
    def butterfly_request_started(self, request):
        """Enter a ``db_session`` (nested when a request is already in one)."""
        outermost = _is_outermost()
        if outermost and self.budget is not None:
            self.budget.enter_request(request.source, self.db)
        db_session.__enter__()
        request.ctx[CTX_KEY] = outermost

    @hookimpl(trylast=True)
    def butterfly_response_headers(self, request, response):
        """Commit the outermost session, or roll it back after a server error.

        :raises Exception: a failing commit propagates, so the kernel answers 500
        """
        if not request.ctx.get(CTX_KEY):
            return
        if response.status >= 500 or request.stat == "ERR_SERVER_EXCEPTION":
            rollback()
        else:
            commit()

    @hookimpl(trylast=True)
    def butterfly_request_finished(self, request, response):
        """Leave the session; the outermost one rolls back anything left uncommitted."""
        outermost = request.ctx.pop(CTX_KEY, None)
        if outermost is None:
            return  # request_started failed before the session opened
        try:
            if outermost and (response.status >= 500 or request.stat == "ERR_SERVER_EXCEPTION"):
                db_session.__exit__(RuntimeError, RuntimeError("request failed"), None)
            else:
                db_session.__exit__(None, None, None)
        except Exception as exc:  # noqa: BLE001 - the response is already final
            log.error(
                "closing the request's db_session failed",
                path=request.path,
                reqid=request.reqid,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
        finally:
            if outermost and self.budget is not None:
                self.budget.leave_request(self.db)
