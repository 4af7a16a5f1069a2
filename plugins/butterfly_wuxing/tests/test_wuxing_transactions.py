"""A failure in the middle of a multi-row change leaves nothing behind."""

from __future__ import annotations

import pytest

from butterfly_wuxing.base import WuxingBase


class Boom(Exception):
    """The injected failure."""


@pytest.fixture
def fail_on_history_row(monkeypatch):
    """``fail_on_history_row(n)``: the n-th history row written from now on raises."""

    def arm(n: int) -> None:
        original = WuxingBase.record
        calls = {"count": 0}

        def record(self, *args, **kwargs):
            calls["count"] += 1
            if calls["count"] == n:
                raise Boom(f"injected failure at history row {n}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(WuxingBase, "record", record)

    return arm


def test_instance_create_failing_midway_over_http_is_rolled_back(client, host_section, row_counts, fail_on_history_row):
    before = row_counts()
    fail_on_history_row(4)  # after the instance and three of its six items
    reply = client.post(
        "/wuxing/instance_create",
        json={"namespace": host_section, "instance_name": "half", "section_name": "host", "section_version": "1"},
    )
    assert reply.status == 500 and reply.json()["stat"] == "ERR_SERVER_EXCEPTION"
    assert row_counts() == before


def test_upgrade_and_delete_failing_midway_through_the_api_are_rolled_back(
    wx, host_section, row_counts, fail_on_history_row
):
    ns = host_section
    wx.instance_create(ns, "h", "host", "1", {"i|cpu": 8})
    wx.ensure_section(ns, "host", "2", {"region": ("int", 0, ""), "zone": ("string", "a", "")})
    before = row_counts()
    fail_on_history_row(3)
    with pytest.raises(Boom):
        wx.instance_update_section(ns, "h", "2")
    assert row_counts() == before
    assert wx.instance_list(ns, "host", section_version="1")["total"] == 1
    fail_on_history_row(2)
    with pytest.raises(Boom):
        wx.instance_delete(ns, "h")
    assert row_counts() == before
    assert wx.instance_get(ns, "h")["i|cpu"] == 8
