"""handlers/demo_fsm: a change ticket whose state is a wuxing item."""

from __future__ import annotations

from pathlib import Path

import pytest

import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from butterfly_wuxing import wuxing_of
from kernel.testing import Client

HANDLERS = Path(__file__).resolve().parents[3] / "handlers"


@pytest.fixture
def fsm_kernel(make_kernel, database_url):
    return make_kernel(
        plugins=[butterfly_store.plugin, butterfly_router.plugin, butterfly_wuxing.plugin],
        settings={"store.url": database_url, "router.handlers_dir": str(HANDLERS)},
    )


@pytest.fixture
def fsm(fsm_kernel):
    return Client(fsm_kernel)


@pytest.fixture
def wx_counts(fsm_kernel):
    """``wx_counts()`` → rows per wuxing table."""
    from pony.orm import count, db_session

    wx = wuxing_of(fsm_kernel)

    def counts():
        with db_session:
            return [count(e for e in entity) for entity in (wx.Section, wx.Instance, wx.Item, wx.History)]

    return counts


def test_a_ticket_walks_through_its_states_and_keeps_the_history(fsm, ns):
    ticket = f"CHG-{ns}"
    created = fsm.post("/demo_fsm/create", data={"ticket": ticket, "title": "upgrade db"}).json()
    assert created == {"stat": "OK", "ticket": ticket, "state": "new", "allowed_events": ["approve"]}
    assert fsm.post("/demo_fsm/create", data={"ticket": ticket}).json()["stat"] == "ERR_TICKET_EXISTS"
    assert fsm.post("/demo_fsm/fire", data={"ticket": ticket, "event": "approve"}).json()["state"] == "approved"
    assert fsm.post("/demo_fsm/fire", data={"ticket": ticket, "event": "deploy"}).json()["state"] == "deployed"
    refused = fsm.post("/demo_fsm/fire", data={"ticket": ticket, "event": "approve"})
    assert refused.json()["stat"] == "ERR_INVALID_TRANSITION"
    assert (
        refused.json()["allowed_events"] == ["rollback"]
        and "not allowed in state deployed" in refused.headers["x-reason"]
    )
    got = fsm.get("/demo_fsm/get", query={"ticket": ticket}).json()
    assert got["state"] == "deployed" and got["title"] == "upgrade db"
    assert [(h["from"], h["to"]) for h in got["history"]] == [
        (None, "new"),
        ("new", "approved"),
        ("approved", "deployed"),
    ]
    assert fsm.post("/demo_fsm/fire", data={"ticket": ticket, "event": "rollback"}).json()["state"] == "rolled_back"
    final = fsm.get("/demo_fsm/get", query={"ticket": ticket}).json()
    assert final["allowed_events"] == [] and len(final["history"]) == 4


def test_invalid_events_and_unknown_tickets_change_nothing(fsm, ns):
    ticket = f"CHG-{ns}"
    fsm.post("/demo_fsm/create", data={"ticket": ticket})
    assert (
        fsm.post("/demo_fsm/fire", data={"ticket": ticket, "event": "deploy"}).json()["stat"]
        == "ERR_INVALID_TRANSITION"
    )
    assert fsm.post("/demo_fsm/fire", data={"ticket": ticket, "event": "explode"}).json()["stat"] == "ERR_BAD_PARAMS"
    assert (
        fsm.post("/demo_fsm/fire", data={"ticket": "nope-" + ns, "event": "approve"}).json()["stat"]
        == "ERR_TICKET_NOT_FOUND"
    )
    assert fsm.get("/demo_fsm/get", query={"ticket": "nope-" + ns}).json()["stat"] == "ERR_TICKET_NOT_FOUND"
    got = fsm.get("/demo_fsm/get", query={"ticket": ticket}).json()
    assert got["state"] == "new" and len(got["history"]) == 1


def test_writes_are_post_only_and_a_read_creates_nothing(fsm, ns, wx_counts):
    before = wx_counts()
    # NOTE: the CSRF-through-GET hole: a link or <img> carrying the session cookie.
    assert fsm.get("/demo_fsm/create", query={"ticket": f"CHG-{ns}"}).status == 405
    assert fsm.get("/demo_fsm/fire", query={"ticket": f"CHG-{ns}", "event": "approve"}).status == 405
    assert fsm.get("/demo_fsm/get", query={"ticket": f"CHG-{ns}"}).json()["stat"] == "ERR_TICKET_NOT_FOUND"
    assert wx_counts() == before


@pytest.mark.parametrize(
    ("method", "path", "params", "param"),
    [
        ("GET", "/demo_fsm/get", {"ticket": ""}, "ticket"),
        ("POST", "/demo_fsm/create", {"ticket": ""}, "ticket"),
        ("POST", "/demo_fsm/create", {"ticket": "x" * 65}, "ticket"),
        ("POST", "/demo_fsm/create", {"ticket": "CHG-1", "title": "t" * 1_000_000}, "title"),
        ("POST", "/demo_fsm/fire", {"ticket": "", "event": "approve"}, "ticket"),
    ],
)
def test_empty_and_oversized_tickets_are_a_400_naming_the_parameter(fsm, method, path, params, param):
    reply = fsm.request(method, path, data=params)
    assert reply.status == 400, reply.text
    assert [error["param"] for error in reply.json()["errors"]] == [param]
