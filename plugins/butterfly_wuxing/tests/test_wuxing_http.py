"""The /wuxing/ endpoints over the router: replies, admin writes, user attribution, bad input."""

from __future__ import annotations

import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from kernel.testing import Client

SECTION = {"section_name": "host", "section_version": "1"}


def post(client, path, **params):
    return client.post(f"/wuxing/{path}", json=params)


def test_the_original_flow_over_http(client, ns):
    assert post(client, "section_create", namespace=ns, **SECTION).json() == {"stat": "OK", "data": {}}
    assert (
        post(client, "section_item_add", namespace=ns, item_name="i|cpu", item_default="4", **SECTION).json()["stat"]
        == "OK"
    )
    assert (
        post(client, "section_item_add", namespace=ns, item_name="s|region", item_default="bj", **SECTION).json()[
            "stat"
        ]
        == "OK"
    )
    assert post(client, "section_enable", namespace=ns, **SECTION).json()["stat"] == "OK"
    template = client.get("/wuxing/section_get", query={"namespace": ns, **SECTION}).json()["data"]["section_template"]
    assert template["i|cpu"]["item_type"] == "int" and template["s|region"]["item_default"] == "bj"
    created = post(client, "instance_create", namespace=ns, instance_name="h1", items_data={"i|cpu": 8}, **SECTION)
    assert created.json()["stat"] == "OK"
    assert client.get("/wuxing/instance_get", query={"namespace": ns, "instance_name": "h1"}).json() == {
        "stat": "OK",
        "data": {"i|cpu": 8, "s|region": "bj"},
    }
    update = post(
        client,
        "instance_update_item",
        namespace=ns,
        instance_name="h1",
        item_name="i|cpu",
        item_value="9",
        item_value_old="8",
    )
    assert update.json()["data"]["item_value"] == 9
    stale = post(
        client,
        "instance_update_item",
        namespace=ns,
        instance_name="h1",
        item_name="i|cpu",
        item_value="10",
        item_value_old="8",
    )
    assert stale.status == 200 and stale.json()["stat"] == "ERR_ITEM_UPDATE_FAILED"
    assert stale.json()["item_value"] == 9 and "compare-and-set" in stale.headers["x-reason"]
    listed = client.get(
        "/wuxing/instance_list", query={"namespace": ns, "section_name": "host", "extra_items": "i|cpu"}
    )
    assert listed.json()["data"]["list"][0]["i|cpu"] == 9
    item_id = client.get(
        "/wuxing/instance_get", query={"namespace": ns, "instance_name": "h1", "value_format": "detail"}
    ).json()["data"]["i|cpu"]["item_id"]
    history = client.get("/wuxing/item_history_list", query={"item_id": item_id, "item_type": "int"}).json()
    assert [h["new_value"] for h in history["data"]["list"]] == [9, 8]
    assert post(client, "instance_delete", namespace=ns, instance_name="h1").json()["stat"] == "OK"


def test_writes_are_post_only_admin_routes_and_reads_are_open(wuxing_kernel, client, ns):
    assert client.get("/wuxing/section_create", query={"namespace": ns, **SECTION}).status == 405
    remote = Client(wuxing_kernel, remote_addr="203.0.113.9")
    assert remote.post("/wuxing/section_create", json={"namespace": ns, **SECTION}).status == 403
    assert remote.get("/wuxing/section_list", query={"namespace": ns}).json()["stat"] == "OK"
    routes = {route.path: route for route in wuxing_kernel.routes}
    writes = {path for path, route in routes.items() if path.startswith("/wuxing/") and route.admin}
    assert writes == {
        f"/wuxing/{name}"
        for name in (
            "section_create",
            "section_item_add",
            "section_item_delete",
            "section_enable",
            "section_delete",
            "instance_create",
            "instance_update_item",
            "instance_update_section",
            "instance_set_valid",
            "instance_delete",
            "item_update",
        )
    }


def test_history_records_the_authenticated_user_not_a_header(make_kernel, database_url, tmp_path, ns, fake_login):
    (tmp_path / "empty").mkdir()
    kernel = make_kernel(
        plugins=[butterfly_store.plugin, butterfly_router.plugin, butterfly_wuxing.plugin, fake_login],
        settings={"store.url": database_url, "router.handlers_dir": str(tmp_path / "empty")},
    )
    client = Client(kernel)
    spoof = {"X-Username": "mallory"}
    client.post("/wuxing/section_create", json={"namespace": ns, **SECTION}, headers=spoof)
    client.post("/wuxing/section_item_add", json={"namespace": ns, "item_name": "i|n", **SECTION}, headers=spoof)
    client.post("/wuxing/section_enable", json={"namespace": ns, **SECTION}, headers=spoof)
    client.post("/wuxing/instance_create", json={"namespace": ns, "instance_name": "x", **SECTION}, headers=spoof)
    client.post(
        "/wuxing/instance_update_item",
        json={"namespace": ns, "instance_name": "x", "item_name": "i|n", "item_value": 5},
        headers=spoof,
    )
    rows = client.get("/wuxing/item_list", query={"namespace": ns}).json()["data"]["list"]
    history = client.get("/wuxing/item_history_list", query={"item_id": rows[0]["item_id"]}).json()["data"]["list"]
    assert [h["user"] for h in history] == ["alice", "alice"]


def test_bad_input_gets_its_stat_and_changes_nothing(client, host_section, row_counts):
    ns = host_section
    post(client, "instance_create", namespace=ns, instance_name="h", **SECTION)
    before = row_counts()
    cases = [
        (
            post(client, "instance_create", namespace=ns, instance_name="h2", section_name="nope", section_version="1"),
            "ERR_SECTION_IS_NOT_EXIST",
        ),
        (
            post(
                client,
                "instance_create",
                namespace=ns,
                instance_name="h3",
                items_data={"region": "ok", "i|cpu": "x"},
                **SECTION,
            ),
            "ERR_ITEM_VALUE_INVALID",
        ),
        (
            post(client, "instance_create", namespace=ns, instance_name="h4", items_data={"ghost": 1}, **SECTION),
            "ERR_ITEM_IS_NOT_EXIST",
        ),
        (
            post(client, "section_create", namespace=ns, section_name="bad\nname", section_version="1"),
            "ERR_SECTION_NAME_IS_INVALID",
        ),
        (
            post(client, "instance_update_item", namespace=ns, instance_name="h", item_name="i|cpu", item_value="1.5"),
            "ERR_ITEM_VALUE_INVALID",
        ),
        (
            post(client, "instance_update_item", namespace=ns, instance_name="h", item_name="b|on", item_value=7),
            "ERR_ITEM_VALUE_INVALID",
        ),
        (
            client.get("/wuxing/item_list", query={"namespace": ns, "item_value_operator": "<<", "item_value": "1"}),
            "ERR_ITEM_VALUE_OPERATOR",
        ),
        (
            client.get("/wuxing/item_list", query={"namespace": ns, "start_time": "2024-13-45"}),
            "ERR_TIME_FORMATE_INVALID",
        ),
        (client.get("/wuxing/item_list", query={"namespace": ns, "sort": "region"}), "ERR_SORT_INVALID"),
        (client.get("/wuxing/item_get", query={"item_id": 2**31 - 1}), "ERR_ITEM_IS_NOT_FOUND"),
        (client.get("/wuxing/section_list", query={"page_size": "51"}), "ERR_BAD_PARAMS"),
        (client.get("/wuxing/section_list", query={"page_size": "lots"}), "ERR_BAD_PARAMS"),
        (
            client.get("/wuxing/instance_get", query={"namespace": ns, "instance_name": "h", "value_format": "x"}),
            "ERR_BAD_PARAMS",
        ),
        (
            client.post("/wuxing/instance_create", body=b"{not json", headers={"Content-Type": "application/json"}),
            "ERR_BAD_PARAMS",
        ),
        (
            post(client, "instance_create", namespace=ns, instance_name="h5", items_data="[1]", **SECTION),
            "ERR_BAD_PARAMS",
        ),
    ]
    for reply, stat in cases:
        assert reply.json()["stat"] == stat, (stat, reply.text)
    assert row_counts() == before


def test_empty_and_oversized_key_params_are_a_400_naming_them(client, host_section, row_counts):
    ns = host_section
    post(client, "instance_create", namespace=ns, instance_name="h", **SECTION)
    before = row_counts()
    cases = [
        ("/wuxing/instance_get", {"namespace": "", "instance_name": ""}, {"namespace", "instance_name"}),
        ("/wuxing/section_get", {"namespace": ns, "section_name": "", "section_version": ""}, None),
        # blanks: the store strips keys, so these named nothing and pony raised (a 500)
        ("/wuxing/instance_get", {"namespace": "\x0b", "instance_name": "\x1d\x85"}, {"namespace", "instance_name"}),
        ("/wuxing/section_get", {"namespace": ns, "section_name": " ", "section_version": "\u3000"}, None),
        ("/wuxing/instance_list", {"namespace": "", "section_name": "host"}, {"namespace"}),
        ("/wuxing/instance_get", {"namespace": ns, "instance_name": "h" * 1_000_000}, {"instance_name"}),
        ("/wuxing/item_list", {"item_name": "i" * 65}, {"item_name"}),
        ("/wuxing/item_get", {"item_id": 2**40}, {"item_id"}),
        ("/wuxing/item_history_list", {"item_id": 10**30}, {"item_id"}),
        ("/wuxing/item_history_list", {"item_id": 1, "page_index": 10**30}, {"page_index"}),
        ("/wuxing/section_list", {"page_index": "9" * 5000}, {"page_index"}),
    ]
    for path, params, named in cases:
        reply = client.get(path, query=params)
        assert reply.status == 400 and reply.json()["stat"] == "ERR_BAD_PARAMS", (path, reply.text[:200])
        errors = {error["param"] for error in reply.json()["errors"]}
        assert errors == (named or {"section_name", "section_version"}), path
    writes = [
        ("instance_create", {"namespace": ns, "instance_name": "h" * 65, **SECTION}, "instance_name"),
        ("section_create", {"namespace": "n" * 17, **SECTION}, "namespace"),
        ("section_create", {"namespace": ns, "section_name": "s" * 65, "section_version": "1"}, "section_name"),
        ("section_create", {"namespace": ns, "section_name": "s", "section_version": "v" * 17}, "section_version"),
        ("instance_delete", {"namespace": ns, "instance_name": ""}, "instance_name"),
        ("section_enable", {"namespace": ns, "section_name": "host", "section_version": "\x0b"}, "section_version"),
        (
            "instance_update_item",
            {"namespace": ns, "instance_name": "h", "item_name": "", "item_value": 1},
            "item_name",
        ),
        ("section_item_add", {"namespace": ns, "item_name": "s|x", "item_description": "d" * 513, **SECTION}, None),
    ]
    for path, params, named in writes:
        reply = post(client, path, **params)
        assert reply.status == 400, (path, reply.text[:200])
        assert {error["param"] for error in reply.json()["errors"]} == {named or "item_description"}, path
    assert row_counts() == before
