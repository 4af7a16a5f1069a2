"""Who may read wuxing, and who sees the values of secret-looking items (and the logs never do)."""

from __future__ import annotations

import json

import pytest

import butterfly_auth.plugin
import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_trace.plugin
import butterfly_wuxing.plugin
from butterfly_auth import users
from butterfly_wuxing import wuxing_of
from kernel.testing import Client

PASSWORD = "correct horse battery"
FAST_HASHING = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 1024, "auth.argon2_parallelism": 1}
SECRET_VALUE = "hunter2-db-pass"
ITEMS = {
    "s|db_password": ("string", "default-secret", "the database password"),
    "s|api_key": ("string", "", "unset on purpose"),
    "i|port": ("int", 5432, "not a secret"),
    "s|region": ("string", "bj", "not a secret either"),
}
SECTION = {"section_name": "db", "section_version": "1"}


@pytest.fixture
def secured(make_kernel, tmp_path):
    """Factory: store + router + trace + wuxing (+ auth), an instance ``db1`` holding a secret."""

    def factory(with_auth: bool = True, settings: dict | None = None):
        (tmp_path / "no_handlers").mkdir(exist_ok=True)
        plugins = [butterfly_store.plugin, butterfly_router.plugin, butterfly_trace.plugin, butterfly_wuxing.plugin]
        kernel = make_kernel(
            plugins=plugins + ([butterfly_auth.plugin] if with_auth else []),
            settings={
                "store.url": f"sqlite:///{tmp_path}/wx.sqlite",
                "router.handlers_dir": str(tmp_path / "no_handlers"),
                "router.static_dir": "",
                **(FAST_HASHING if with_auth else {}),
                **(settings or {}),
            },
        )
        wx = wuxing_of(kernel)
        wx.ensure_section("ops", "db", "1", ITEMS, user="setup")
        wx.instance_create("ops", "db1", "db", "1", {"s|db_password": "first-secret"}, user="setup")
        wx.instance_update_item("ops", "db1", "s|db_password", SECRET_VALUE, user="setup")
        return kernel

    return factory


def bearer(kernel, roles=()) -> dict[str, str]:
    """A signed-in user with ``roles``: their Authorization header."""
    name = "u" + ("admin" if roles else "reader")
    users.create_user(kernel, name, PASSWORD, roles)
    reply = Client(kernel).post("/auth/login", json={"username": name, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {reply['token']}"}


def read_everything(client: Client, headers: dict | None = None) -> dict:
    """Every read route's reply data about the secret item."""
    get = lambda path, **query: client.get(f"/wuxing/{path}", query=query, headers=headers)  # noqa: E731
    simple = get("instance_get", namespace="ops", instance_name="db1").json()
    if simple["stat"] != "OK":
        return {"stat": simple["stat"]}
    detail = get("instance_get", namespace="ops", instance_name="db1", value_format="detail").json()["data"]
    item_id = detail["s|db_password"]["item_id"]
    return {
        "simple": simple["data"],
        "detail": detail["s|db_password"]["item_value"],
        "default": get("section_get", namespace="ops", **SECTION).json()["data"]["section_template"],
        "listed": get("instance_list", namespace="ops", section_name="db", extra_items="s|db_password,i|port").json(),
        "item": get("item_get", item_id=item_id).json()["data"]["item_value"],
        "items": {
            row["item_name"]: row["item_value"] for row in get("item_list", namespace="ops").json()["data"]["list"]
        },
        "history": get("item_history_list", item_id=item_id).json()["data"]["list"],
        "guess": get("item_list", item_value=SECRET_VALUE).json()["data"]["total"],
        "sorted": get("item_list", item_name="s|db_password", sort="item_value").json()["stat"],
    }


def test_reads_need_a_login_and_only_admins_see_secret_values(secured):
    kernel = secured()
    client = Client(kernel)
    anonymous = client.get("/wuxing/instance_get", query={"namespace": "ops", "instance_name": "db1"})
    assert anonymous.status == 401 and anonymous.json()["stat"] == "ERR_UNAUTHORIZED"
    assert client.get("/wuxing/section_list").status == 401

    reader = read_everything(client, bearer(kernel))
    assert reader["simple"] == {"s|db_password": "********", "s|api_key": "", "i|port": 5432, "s|region": "bj"}
    assert reader["detail"] == reader["item"] == reader["items"]["s|db_password"] == "********"
    assert reader["default"]["s|db_password"]["item_default"] == "********"
    assert reader["default"]["i|port"]["item_default"] == 5432
    row = reader["listed"]["data"]["list"][0]
    assert row["s|db_password"] == "********" and row["i|port"] == 5432
    assert {(h["old_value"], h["new_value"]) for h in reader["history"]} == {
        ("********", "********"),
        (None, "********"),
    }
    # a value filter or a value sort cannot be used as an oracle on the secret
    assert reader["guess"] == 0 and reader["sorted"] == "ERR_SORT_INVALID"
    assert SECRET_VALUE not in json.dumps(reader) and "first-secret" not in json.dumps(reader)

    admin = read_everything(client, bearer(kernel, ("admin",)))
    assert admin["simple"]["s|db_password"] == admin["detail"] == admin["item"] == SECRET_VALUE
    assert admin["history"][0]["old_value"] == "first-secret" and admin["guess"] == 1 and admin["sorted"] == "OK"


def test_public_read_restores_anonymous_reads_with_secrets_still_masked(secured):
    kernel = secured(settings={"wuxing.public_read": True})
    anonymous = read_everything(Client(kernel))
    assert anonymous["simple"]["s|db_password"] == "********" and anonymous["simple"]["i|port"] == 5432
    assert anonymous["guess"] == 0


def test_without_the_auth_plugin_reads_stay_open_and_remote_readers_see_masks(secured):
    kernel = secured(with_auth=False)
    remote = read_everything(Client(kernel, remote_addr="203.0.113.9"))
    assert remote["simple"]["s|db_password"] == "********" and remote["guess"] == 0
    # no auth: the admin policy is "loopback", so a local reader is the admin
    assert read_everything(Client(kernel))["simple"]["s|db_password"] == SECRET_VALUE


def test_secret_values_written_over_http_never_reach_the_logs(secured):
    kernel = secured()
    client, admin = Client(kernel), bearer(kernel, ("admin",))
    written = {
        "instance_update_item": {
            "namespace": "ops",
            "instance_name": "db1",
            "item_name": "s|db_password",
            "item_value": "new-secret-1",
            "item_value_old": SECRET_VALUE,
        },
        "instance_create": {
            "namespace": "ops",
            "instance_name": "db2",
            "items_data": {"s|db_password": "new-secret-2"},
            **SECTION,
        },
    }
    for path, params in written.items():
        assert client.post(f"/wuxing/{path}", json=params, headers=admin).json()["stat"] == "OK"
    item_id = wuxing_of(kernel).instance_get("ops", "db2", value_format="detail")["s|db_password"]["item_id"]
    reply = client.post("/wuxing/item_update", json={"item_id": item_id, "item_value": "new-secret-3"}, headers=admin)
    assert reply.json()["stat"] == "OK"
    form = {"namespace": "ops", "instance_name": "db3", "items_data": '{"s|db_password": "new-secret-4"}', **SECTION}
    assert client.post("/wuxing/instance_create", data=form, headers=admin).json()["stat"] == "OK"
    kernel.shutdown()  # NOTE: flushes and closes the log files
    logs = "".join(path.read_text(encoding="utf-8") for path in kernel.log_dir.glob("*.log"))
    assert "/wuxing/instance_update_item" in logs and "/wuxing/item_update" in logs
    for number in range(1, 5):
        assert f"new-secret-{number}" not in logs
    assert SECRET_VALUE not in logs
