"""demo_fsm: a change ticket as a small state machine whose state is a wuxing item.

::

    new --approve--> approved --deploy--> deployed
                        |                    |
                        +-----rollback-------+--> rolled_back

``POST /demo_fsm/create ticket=CHG-1 title=...`` → ``POST /demo_fsm/fire ticket=CHG-1
event=approve`` → ``GET /demo_fsm/get?ticket=CHG-1`` (state, allowed events and every
transition with who and when, from the wuxing history). An event the current state
does not allow answers ``ERR_INVALID_TRANSITION`` and changes nothing. The namespace,
section and ticket instances are created through the in-process wuxing API on the
first ``create``. Writes (``create``, ``fire``) are admin routes and POST only, so a
link or an image cannot fire them; without butterfly-auth they answer loopback
clients only.
"""

from typing import Annotated, Literal

from annotated_types import MaxLen, MinLen

from butterfly_router import NOT_BLANK, api, retstat
from butterfly_wuxing import WuxingError, wuxing_of

#: A ticket name: a wuxing instance name (1–64 characters, not only blanks).
Ticket = Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK]
#: A title: a wuxing ``string`` item (at most 128 characters).
Title = Annotated[str, MaxLen(128)]
WRITE = {"admin": True, "methods": ("POST",)}

NAMESPACE, SECTION, VERSION = "demo_fsm", "change_ticket", "1"
STATE_ITEM, TITLE_ITEM = "state", "title"
#: event → {from state: to state}
TRANSITIONS = {
    "approve": {"new": "approved"},
    "deploy": {"approved": "deployed"},
    "rollback": {"approved": "rolled_back", "deployed": "rolled_back"},
}
ERR_INVALID_TRANSITION = "ERR_INVALID_TRANSITION"
ERR_TICKET_NOT_FOUND = "ERR_TICKET_NOT_FOUND"
ERR_TICKET_EXISTS = "ERR_TICKET_EXISTS"
ERR_TICKET_CHANGED = "ERR_TICKET_CHANGED"
#: wuxing stat → the demo's own
STAT_MAP = {
    "ERR_INSTANCE_IS_NOT_EXIST": ERR_TICKET_NOT_FOUND,
    "ERR_INSTANCE_IS_EXIST": ERR_TICKET_EXISTS,
    "ERR_ITEM_UPDATE_FAILED": ERR_TICKET_CHANGED,
}


def _wuxing(req):
    """The wuxing API, with the demo's section created on first use (writes only)."""
    wuxing = wuxing_of(req.kernel)
    wuxing.ensure_section(
        NAMESPACE,
        SECTION,
        VERSION,
        {
            STATE_ITEM: ("string", "new", "ticket state: new, approved, deployed, rolled_back"),
            TITLE_ITEM: ("string", "", "what the change is"),
        },
        user=req.user,
    )
    return wuxing


def _refused(exc: WuxingError):
    return STAT_MAP.get(exc.stat, exc.stat), {"reason": exc.reason}, [("x-reason", exc.reason)]


def allowed_events(state: str) -> list[str]:
    """The events ``state`` accepts.

    :param state: a ticket state
    :return: event names, sorted
    """
    return sorted(event for event, moves in TRANSITIONS.items() if state in moves)


@api(**WRITE)
def create(req, ticket: Ticket, title: Title = ""):
    """Open a ticket in state ``new``.

    :param ticket: the ticket name (1–64 characters)
    :param title: a short description
    :return: ``{"stat": "OK", "ticket", "state": "new"}``; ``ERR_TICKET_EXISTS``
    """
    try:
        _wuxing(req).instance_create(NAMESPACE, ticket, SECTION, VERSION, {TITLE_ITEM: title}, user=req.user)
    except WuxingError as exc:
        return _refused(exc)
    return retstat.OK, {"ticket": ticket, "state": "new", "allowed_events": allowed_events("new")}


@api(**WRITE)
def fire(req, ticket: Ticket, event: Literal["approve", "deploy", "rollback"]):
    """Apply ``event`` to the ticket.

    The state is written with compare-and-set against the state just read, so two
    concurrent events cannot both apply.

    :return: ``{"stat": "OK", "ticket", "from", "state"}``; ``ERR_INVALID_TRANSITION``
        (nothing changes), ``ERR_TICKET_NOT_FOUND``, ``ERR_TICKET_CHANGED`` (a concurrent event won)
    """
    wuxing = _wuxing(req)
    try:
        state = wuxing.instance_get(NAMESPACE, ticket, items=STATE_ITEM)[STATE_ITEM]
        target = TRANSITIONS[event].get(state)
        if target is None:
            reason = f"{event} is not allowed in state {state}; allowed: {', '.join(allowed_events(state)) or 'none'}"
            return (
                ERR_INVALID_TRANSITION,
                {"reason": reason, "ticket": ticket, "state": state, "allowed_events": allowed_events(state)},
                [("x-reason", reason)],
            )
        wuxing.instance_update_item(NAMESPACE, ticket, STATE_ITEM, target, item_value_old=state, user=req.user)
    except WuxingError as exc:
        return _refused(exc)
    return retstat.OK, {"ticket": ticket, "from": state, "state": target, "allowed_events": allowed_events(target)}


@api(methods=("GET", "HEAD"))
def get(req, ticket: Ticket):
    """The ticket's state, allowed events and transition history (oldest first).

    A read: it never creates the demo's section (a ticket that was never created
    is ``ERR_TICKET_NOT_FOUND``).

    :return: ``{"stat": "OK", "ticket", "title", "state", "allowed_events",
        "history": [{"from", "to", "user", "time"}]}``; ``ERR_TICKET_NOT_FOUND``
    """
    wuxing = wuxing_of(req.kernel)
    try:
        detail = wuxing.instance_get(NAMESPACE, ticket, value_format="detail")
        state = detail[STATE_ITEM]["item_value"]
        changes = wuxing.item_history_list(detail[STATE_ITEM]["item_id"], page_size=wuxing.max_page_size, order="asc")[
            "list"
        ]
    except WuxingError as exc:
        return _refused(exc)
    history = [
        {"from": row["old_value"], "to": row["new_value"], "user": row["user"], "time": row["c_time"]}
        for row in changes
    ]
    return retstat.OK, {
        "ticket": ticket,
        "title": detail[TITLE_ITEM]["item_value"],
        "state": state,
        "allowed_events": allowed_events(state),
        "history": history,
    }
