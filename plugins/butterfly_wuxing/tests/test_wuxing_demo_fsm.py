"""handlers/demo_fsm: a change ticket whose state is a wuxing item."""

from __future__ import annotations

from pathlib import Path

import pytest

import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from kernel.testing import Client

HANDLERS = Path(__file__).resolve().parents[3] / "handlers"


@pytest.fixture
def fsm(make_kernel, database_url):
    kernel = make_kernel(
        plugins=[butterfly_store.plugin, butterfly_router.plugin, butterfly_wuxing.plugin],
        settings={"store.url": database_url, "router.handlers_dir": str(HANDLERS)},
    )
    return Client(kernel)


def test_a_ticket_walks_through_its_states_and_keeps_the_history(fsm, ns):
    ticket = f"CHG-{ns}"
    created = fsm.get("/demo_fsm/create", query={"ticket": ticket, "title": "upgrade db"}).json()
    assert created == {"stat": "OK", "ticket": ticket, "state": "new", "allowed_events": ["approve"]}
    assert fsm.get("/demo_fsm/create", query={"ticket": ticket}).json()["stat"] == "ERR_TICKET_EXISTS"
    assert fsm.get("/demo_fsm/fire", query={"ticket": ticket, "event": "approve"}).json()["state"] == "approved"
    assert fsm.get("/demo_fsm/fire", query={"ticket": ticket, "event": "deploy"}).json()["state"] == "deployed"
    refused = fsm.get("/demo_fsm/fire", query={"ticket": ticket, "event": "approve"})
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
    assert fsm.get("/demo_fsm/fire", query={"ticket": ticket, "event": "rollback"}).json()["state"] == "rolled_back"
    final = fsm.get("/demo_fsm/get", query={"ticket": ticket}).json()
    assert final["allowed_events"] == [] and len(final["history"]) == 4


def test_invalid_events_and_unknown_tickets_change_nothing(fsm, ns):
    ticket = f"CHG-{ns}"
    fsm.get("/demo_fsm/create", query={"ticket": ticket})
    assert (
        fsm.get("/demo_fsm/fire", query={"ticket": ticket, "event": "deploy"}).json()["stat"]
        == "ERR_INVALID_TRANSITION"
    )
    assert fsm.get("/demo_fsm/fire", query={"ticket": ticket, "event": "explode"}).json()["stat"] == "ERR_BAD_PARAMS"
    assert (
        fsm.get("/demo_fsm/fire", query={"ticket": "nope-" + ns, "event": "approve"}).json()["stat"]
        == "ERR_TICKET_NOT_FOUND"
    )
    assert fsm.get("/demo_fsm/get", query={"ticket": "nope-" + ns}).json()["stat"] == "ERR_TICKET_NOT_FOUND"
    got = fsm.get("/demo_fsm/get", query={"ticket": ticket}).json()
    assert got["state"] == "new" and len(got["history"]) == 1
