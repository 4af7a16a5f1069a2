"""Fixtures of the wuxing tests: a kernel with store + router + wuxing on every database."""

from __future__ import annotations

import uuid

import pytest

import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from butterfly_wuxing import wuxing_of
from kernel import hookimpl
from kernel.testing import Client

HOST_ITEMS = {
    "i|cpu": ("int", 4, "cores"),
    "region": ("string", "bj", "where it runs"),
    "f|load": ("float", 0.5, ""),
    "b|on": ("bool", False, ""),
    "t|notes": ("text", "", ""),
    "j|tags": ("json", [], ""),
}


class FakeLogin:
    """Stands in for butterfly-auth: every request is authenticated as ``alice``."""

    @hookimpl(tryfirst=True)
    def butterfly_authorize(self, request, route):
        request.user = "alice"
        return None


@pytest.fixture
def wuxing_kernel(make_kernel, database_url, tmp_path):
    """store + router + wuxing (no user handler apps) on ``database_url``."""
    (tmp_path / "no_handlers").mkdir()
    return make_kernel(
        plugins=[butterfly_store.plugin, butterfly_router.plugin, butterfly_wuxing.plugin],
        settings={
            "store.url": database_url,
            "router.handlers_dir": str(tmp_path / "no_handlers"),
            "router.static_dir": "",
            "wuxing.max_page_size": 50,
        },
    )


@pytest.fixture
def wx(wuxing_kernel):
    """The kernel's in-process wuxing API."""
    return wuxing_of(wuxing_kernel)


@pytest.fixture
def client(wuxing_kernel):
    """An in-process WSGI client from 127.0.0.1."""
    return Client(wuxing_kernel)


@pytest.fixture
def ns():
    """A namespace no other test uses (tables persist on the server databases)."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def host_section(wx, ns):
    """An enabled section ``host`` v1 of every item type in ``ns``."""
    wx.ensure_section(ns, "host", "1", HOST_ITEMS, user="setup")
    return ns


@pytest.fixture
def row_counts(wx):
    """``row_counts()`` → rows per wuxing table (to prove a refusal wrote nothing)."""
    from pony.orm import count, db_session

    def counts():
        with db_session:
            return {
                name: count(e for e in entity)
                for name, entity in (
                    ("section", wx.Section),
                    ("section_item", wx.SectionItem),
                    ("instance", wx.Instance),
                    ("item", wx.Item),
                    ("history", wx.History),
                )
            }

    return counts


@pytest.fixture
def fake_login():
    """A plugin object that authenticates every request as ``alice``."""
    return FakeLogin()
