"""The in-process wuxing API on every database: sections, instances, items, history."""

from __future__ import annotations

import pytest

from butterfly_wuxing import WuxingError


def refused(stat, call, *args, **kwargs):
    with pytest.raises(WuxingError) as info:
        call(*args, **kwargs)
    assert info.value.stat == stat, info.value.reason
    return info.value


def test_section_lifecycle(wx, ns):
    wx.section_create(ns, "db", "1", user="bob")
    assert wx.section_item_add(ns, "db", "1", "i|port", 3306) == {"item_type": "int", "item_default": 3306}
    assert wx.section_item_add(ns, "db", "1", "engine", "innodb", "the engine", "string")["item_type"] == "string"
    wx.section_item_add(ns, "db", "1", "gone", item_type="bool")
    wx.section_item_delete(ns, "db", "1", "gone")
    section = wx.section_get(ns, "db", "1")
    assert section["is_enabled"] is False
    assert section["section_template"] == {
        "i|port": {"item_type": "int", "item_default": 3306, "item_description": ""},
        "engine": {"item_type": "string", "item_default": "innodb", "item_description": "the engine"},
    }
    md5 = wx.section_enable(ns, "db", "1")["section_md5"]
    assert len(md5) == 8 and wx.section_get(ns, "db", "1")["is_enabled"] is True
    assert wx.section_enable(ns, "db", "1")["section_md5"] == md5  # idempotent
    refused("ERR_SECTION_IS_ENABLED", wx.section_item_add, ns, "db", "1", "late", item_type="int")
    refused("ERR_SECTION_IS_ENABLED", wx.section_item_delete, ns, "db", "1", "engine")
    refused("ERR_SECTION_IS_EXIST", wx.section_create, ns, "db", "1")
    listed = wx.section_list(ns)
    assert listed["total"] == 1 and listed["list"][0]["section_md5"] == md5
    wx.section_delete(ns, "db", "1")
    refused("ERR_SECTION_IS_NOT_EXIST", wx.section_get, ns, "db", "1")


def test_section_refusals(wx, ns):
    refused("ERR_SECTION_IS_NOT_EXIST", wx.section_item_add, ns, "nope", "1", "x", item_type="int")
    wx.section_create(ns, "s", "1")
    refused("ERR_SECTION_ENABLE_FAILED", wx.section_enable, ns, "s", "1")
    refused("ERR_SECTION_ITEM_TYPE_INVALID", wx.section_item_add, ns, "s", "1", "plain")
    refused("ERR_SECTION_ITEM_TYPE_INVALID", wx.section_item_add, ns, "s", "1", "x", item_type="decimal")
    refused("ERR_SECTION_ITEM_TYPE_INVALID", wx.section_item_add, ns, "s", "1", "i|x", item_type="string")
    refused("ERR_ITEM_VALUE_INVALID", wx.section_item_add, ns, "s", "1", "i|x", "many")
    refused("ERR_SECTION_ITEM_IS_NOT_EXIST", wx.section_item_delete, ns, "s", "1", "i|x")
    wx.section_item_add(ns, "s", "1", "i|x")
    refused("ERR_SECTION_ITEM_IS_EXIST", wx.section_item_add, ns, "s", "1", "i|x")


def test_instance_create_get_list(wx, host_section):
    ns = host_section
    created = wx.instance_create(
        ns, "web-1", "host", "1", {"i|cpu": "8", "j|tags": '["a", "b"]', "b|on": "yes"}, user="bob"
    )
    assert created["items"]["i|cpu"] == 8 and created["items"]["j|tags"] == ["a", "b"]
    wx.instance_create(ns, "web-2", "host", "1", user="bob")
    wx.instance_create(ns, "db-1", "host", "1", {"region": "sh"})
    assert wx.instance_get(ns, "web-1") == {
        "i|cpu": 8,
        "region": "bj",
        "f|load": 0.5,
        "b|on": True,
        "t|notes": "",
        "j|tags": ["a", "b"],
    }
    assert wx.instance_get(ns, "web-1", items="i|cpu,region") == {"i|cpu": 8, "region": "bj"}
    detail = wx.instance_get(ns, "web-1", value_format="detail")
    assert detail["i|cpu"]["item_description"] == "cores" and detail["i|cpu"]["user"] == "bob"
    refused("ERR_ITEM_IS_NOT_EXIST", wx.instance_get, ns, "web-1", items="nope")
    refused("ERR_INSTANCE_IS_NOT_EXIST", wx.instance_get, ns, "web-9")
    refused("ERR_BAD_PARAMS", wx.instance_get, ns, "web-1", value_format="fancy")
    listed = wx.instance_list(ns, "host", instance_name="web", extra_items="i|cpu,region", sort="-instance_name")
    assert listed["total"] == 2
    assert [(r["instance_name"], r["i|cpu"], r["region"]) for r in listed["list"]] == [
        ("web-2", 4, "bj"),
        ("web-1", 8, "bj"),
    ]
    page = wx.instance_list(ns, "host", page_index=2, page_size=2)
    assert page["total"] == 3 and [r["instance_name"] for r in page["list"]] == ["web-2"]
    refused("ERR_SORT_INVALID", wx.instance_list, ns, "host", sort="region")
    refused("ERR_BAD_PARAMS", wx.instance_list, ns, "host", page_size=51)
    refused("ERR_BAD_PARAMS", wx.instance_list, ns, "host", page_index=0)


def test_update_item_is_typed_compare_and_set_with_history(wx, host_section):
    ns = host_section
    wx.instance_create(ns, "h", "host", "1", user="bob")
    assert wx.instance_update_item(ns, "h", "i|cpu", "16", user="carol")["old_value"] == 4
    error = refused("ERR_ITEM_UPDATE_FAILED", wx.instance_update_item, ns, "h", "i|cpu", 32, item_value_old=4)
    assert error.data["item_value"] == 16
    wx.instance_update_item(ns, "h", "i|cpu", 32, item_value_old="16", user="dave")
    refused("ERR_ITEM_VALUE_INVALID", wx.instance_update_item, ns, "h", "i|cpu", 1.5)
    refused("ERR_ITEM_VALUE_INVALID", wx.instance_update_item, ns, "h", "region", "x" * 129)
    refused("ERR_ITEM_VALUE_INVALID", wx.instance_update_item, ns, "h", "j|tags", "{not json")
    refused("ERR_ITEM_VALUE_INVALID", wx.instance_update_item, ns, "h", "f|load", "nan")
    refused("ERR_ITEM_VALUE_INVALID", wx.instance_update_item, ns, "h", "b|on", "maybe")
    refused("ERR_ITEM_IS_NOT_EXIST", wx.instance_update_item, ns, "h", "nope", 1)
    wx.instance_update_item(ns, "h", "t|notes", "x" * 5000)
    wx.instance_update_item(ns, "h", "j|tags", {"k": [1, 2]})
    assert wx.instance_get(ns, "h", items="t|notes,j|tags") == {"t|notes": "x" * 5000, "j|tags": {"k": [1, 2]}}
    item_id = wx.instance_get(ns, "h", value_format="detail")["i|cpu"]["item_id"]
    assert wx.item_get(item_id)["item_value"] == 32
    refused("ERR_ITEM_TYPE_MISMATCH", wx.item_get, item_id, "string")
    refused("ERR_ITEM_TYPE_NOT_FOUND", wx.item_get, item_id, "decimal")
    refused("ERR_ITEM_IS_NOT_FOUND", wx.item_get, 987654321)
    wx.item_update(item_id, 64, item_value_old=32, user="erin")
    history = wx.item_history_list(item_id, order="asc")["list"]
    assert [(h["cmd"], h["old_value"], h["new_value"], h["user"]) for h in history] == [
        ("create", None, 4, "bob"),
        ("update", 4, 16, "carol"),
        ("update", 16, 32, "dave"),
        ("update", 32, 64, "erin"),
    ]
    assert all(h["c_time"] for h in history)


def test_upgrade_section_version_migrates_items_in_one_step(wx, host_section):
    ns = host_section
    wx.instance_create(ns, "h", "host", "1", {"i|cpu": 8, "region": "42"})
    wx.ensure_section(ns, "host", "2", {"i|cpu": ("int", 4, ""), "region": ("int", 0, ""), "zone": ("string", "a", "")})
    refused("ERR_SECTION_IS_NOT_EXIST", wx.instance_update_section, ns, "h", "9")
    wx.section_create(ns, "host", "3")
    wx.section_item_add(ns, "host", "3", "i|cpu")
    refused("ERR_SECTION_IS_NOT_ENABLED", wx.instance_update_section, ns, "h", "3")
    changes = wx.instance_update_section(ns, "h", "2", user="bob")
    assert changes["added"] == ["zone"] and changes["retyped"] == ["region"]
    assert sorted(changes["removed"]) == ["b|on", "f|load", "j|tags", "t|notes"]
    assert wx.instance_get(ns, "h") == {"i|cpu": 8, "region": 42, "zone": "a"}
    assert wx.instance_list(ns, "host", section_version="2")["total"] == 1
    refused("ERR_SECTION_DELETE_FAILED", wx.section_delete, ns, "host", "2")


def test_invalid_instances_and_delete_keep_history(wx, host_section):
    ns = host_section
    wx.instance_create(ns, "h", "host", "1")
    item_id = wx.instance_get(ns, "h", value_format="detail")["region"]["item_id"]
    wx.instance_set_valid(ns, "h", False)
    refused("ERR_INSTANCE_IS_NOT_VALID", wx.instance_get, ns, "h")
    refused("ERR_INSTANCE_IS_NOT_VALID", wx.instance_update_item, ns, "h", "region", "sh")
    refused("ERR_INSTANCE_IS_NOT_VALID", wx.item_update, item_id, "sh")
    wx.instance_set_valid(ns, "h", True)
    wx.instance_update_item(ns, "h", "region", "sh")
    wx.instance_delete(ns, "h", user="bob")
    refused("ERR_INSTANCE_IS_NOT_EXIST", wx.instance_get, ns, "h")
    refused("ERR_INSTANCE_IS_NOT_EXIST", wx.instance_delete, ns, "h")
    history = wx.item_history_list(item_id)["list"]
    assert [h["cmd"] for h in history] == ["delete", "update", "create"]
    assert history[0]["old_value"] == "sh" and history[0]["user"] == "bob"


def test_item_list_filters_by_value_type_time_and_sorts(wx, host_section):
    ns = host_section
    for name, cpu in (("a", 2), ("b", 8), ("c", 16)):
        wx.instance_create(ns, name, "host", "1", {"i|cpu": cpu, "region": "sh" if cpu > 4 else "bj"})
    found = wx.item_list(namespace=ns, item_name="i|cpu", item_value_operator=">=", item_value="8", sort="-item_value")
    assert [(r["instance_name"], r["item_value"]) for r in found["list"]] == [("c", 16), ("b", 8)]
    assert wx.item_list(namespace=ns, item_value="sh")["total"] == 2  # only string items can equal "sh"
    assert wx.item_list(namespace=ns, item_name="region", item_value_operator="!=", item_value="sh")["total"] == 1
    assert wx.item_list(namespace=ns, instance_name="a", start_time="20000101000000")["total"] == 6
    assert wx.item_list(namespace=ns, end_time="20000101000000")["total"] == 0
    refused("ERR_ITEM_VALUE_OPERATOR", wx.item_list, namespace=ns, item_value_operator="LIKE", item_value="1")
    refused("ERR_ITEM_VALUE_OPERATOR", wx.item_list, namespace=ns, item_value_operator=">")
    refused("ERR_TIME_FORMATE_INVALID", wx.item_list, namespace=ns, start_time="yesterday")
    refused(
        "ERR_ITEM_VALUE_INVALID",
        wx.item_list,
        namespace=ns,
        item_name="i|cpu",
        item_value_operator=">",
        item_value="many",
    )
    refused("ERR_SORT_INVALID", wx.item_list, namespace=ns, sort="item_value")
    refused("ERR_SORT_INVALID", wx.item_list, namespace=ns, sort="--u_time")
