"""The read-only wuxing browser (in-process): the drill-down, masking, sign-in, bad parameters.

The pages in Chromium at 1280 and 390 px are in the root ``tests/test_pages_browser.py``.
"""

from __future__ import annotations

import html
import re

import pytest

import butterfly_auth.plugin
import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from butterfly_auth import users
from butterfly_router import ui
from butterfly_wuxing import wuxing_of
from kernel.testing import Client

PASSWORD = "correct horse battery"
FAST_HASHING = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 1024, "auth.argon2_parallelism": 1}
SECRET = "hunter2-db-pass"
HTML = {"Accept": "text/html"}
ITEMS = {
    "s|db_password": ("string", "default-secret", "the database password"),
    "i|port": ("int", 5432, "listen port"),
    "j|limits": ("json", {"rps": 10}, "rate limits"),
}


@pytest.fixture
def browser_kernel(make_kernel, tmp_path):
    """Factory: store + router + wuxing (+ auth), ``ops``/``db`` v1 with instances ``db1``, ``db2``."""

    def factory(with_auth: bool = True, db: str = "wx", **settings):
        (tmp_path / "no_handlers").mkdir(exist_ok=True)
        plugins = [butterfly_store.plugin, butterfly_router.plugin, butterfly_wuxing.plugin]
        kernel = make_kernel(
            plugins=plugins + ([butterfly_auth.plugin] if with_auth else []),
            settings={
                "store.url": f"sqlite:///{tmp_path}/{db}.sqlite",
                "router.handlers_dir": str(tmp_path / "no_handlers"),
                **(FAST_HASHING if with_auth else {}),
                **settings,
            },
        )
        wx = wuxing_of(kernel)
        wx.ensure_section("ops", "db", "1", ITEMS, user="setup")
        wx.ensure_section("ops", "cache", "2", {"i|size": ("int", 1, "")}, user="setup")
        wx.instance_create("ops", "db1", "db", "1", {"s|db_password": "first-secret"}, user="setup")
        wx.instance_create("ops", "db2", "db", "1", {}, user="setup")
        wx.instance_update_item("ops", "db1", "s|db_password", SECRET, user="alice")
        wx.instance_update_item("ops", "db1", "i|port", 6432, user="alice")
        return kernel

    return factory


def signed_in(kernel, roles=()) -> dict[str, str]:
    name = "u" + ("admin" if roles else "reader")
    users.create_user(kernel, name, PASSWORD, roles)
    token = Client(kernel).post("/auth/login", json={"username": name, "password": PASSWORD}).json()["token"]
    return {"Cookie": f"butterfly_token={token}", **HTML}


def links(page: str, prefix: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(rf'href="({re.escape(prefix)}[^"]*)"', page)]


def test_drill_down_from_namespaces_to_an_items_history(browser_kernel):
    kernel = browser_kernel()
    client = Client(kernel)
    headers = signed_in(kernel, ("admin",))
    top = client.get("/wuxing/", headers=headers)
    assert top.status == 200 and '<tr data-namespace="ops">' in top.text
    namespace_url = links(top.text, "/wuxing/namespace")[0]
    namespace = client.get(namespace_url, headers=headers).text
    assert 'data-section="db/1"' in namespace and 'data-section="cache/2"' in namespace
    db_row = namespace[namespace.index('data-section="db/1"') :].split("</tr>", 1)[0]
    assert '<td data-label="Instances" class="num">2</td>' in db_row
    section_url = next(url for url in links(namespace, "/wuxing/section") if "section_name=db" in url)
    section = client.get(section_url, headers=headers).text
    assert 'data-item="i|port"' in section and "listen port" in section and "default-secret" in section  # an admin
    assert 'data-instance="db1"' in section and 'data-instance="db2"' in section
    instance_url = next(url for url in links(section, "/wuxing/instance") if "instance_name=db1" in url)
    instance = client.get(instance_url, headers=headers).text
    port_row = instance[instance.index('<tr data-item="i|port">') :].split("</tr>", 1)[0]
    assert "<code>6432</code>" in port_row and "alice" in port_row and "<time datetime=" in port_row
    assert SECRET in instance  # admins see secret values
    item_url = links(port_row, "/wuxing/item")[0]
    item = client.get(item_url, headers=headers).text
    changes = re.findall(r'<tr data-change="\d+">.*?</tr>', item, re.DOTALL)
    assert len(changes) == 2 and "<code>5432</code>" in changes[0] and "<code>6432</code>" in changes[0]
    assert "create" in changes[1] and "update" in changes[0]  # newest first


def test_readers_without_the_admin_role_see_secrets_masked(browser_kernel):
    kernel = browser_kernel()
    client = Client(kernel)
    headers = signed_in(kernel)
    pages = [
        client.get("/wuxing/section?namespace=ops&section_name=db&section_version=1", headers=headers),
        client.get("/wuxing/instance?namespace=ops&instance_name=db1", headers=headers),
    ]
    item_id = wuxing_of(kernel).instance_get("ops", "db1", "s|db_password", "detail")["s|db_password"]["item_id"]
    pages.append(client.get(f"/wuxing/item?item_id={item_id}", headers=headers))
    for page in pages:
        assert page.status == 200
        assert SECRET not in page.text and "first-secret" not in page.text and "default-secret" not in page.text
        assert '<span class="masked"' in page.text
    assert "<code>6432</code>" in pages[1].text  # other values stay visible


def test_reads_need_a_signed_in_user_unless_public_read(browser_kernel):
    kernel = browser_kernel()
    reply = Client(kernel).get("/wuxing/instance?namespace=ops&instance_name=db1", headers=HTML)
    assert reply.status == 302
    assert reply.headers["location"] == "/auth/login?next=/wuxing/instance%3Fnamespace%3Dops%26instance_name%3Ddb1"
    public = browser_kernel(db="public", **{"wuxing.public_read": True})
    anonymous = Client(public).get("/wuxing/instance?namespace=ops&instance_name=db1", headers=HTML)
    assert anonymous.status == 200 and SECRET not in anonymous.text and "<code>6432</code>" in anonymous.text


def test_without_the_auth_plugin_the_browser_is_open(browser_kernel):
    kernel = browser_kernel(with_auth=False)
    local = Client(kernel).get("/wuxing/instance?namespace=ops&instance_name=db1", headers=HTML).text
    remote = Client(kernel, remote_addr="203.0.113.9").get("/wuxing/instance?namespace=ops&instance_name=db1").text
    assert SECRET in local and SECRET not in remote  # loopback is the admin without auth
    assert "/wuxing/" in [link.path for link in ui.nav_links(kernel)]


def test_unknown_things_are_404_and_bad_parameters_400(browser_kernel):
    client = Client(browser_kernel(with_auth=False))
    assert client.get("/wuxing/instance?namespace=ops&instance_name=nope", headers=HTML).status == 404
    assert client.get("/wuxing/section?namespace=ops&section_name=db&section_version=9", headers=HTML).status == 404
    assert client.get("/wuxing/item?item_id=999999", headers=HTML).status == 404
    # blank names name nothing (the store strips keys; pony refused to look them up: a 500)
    assert client.get("/wuxing/instance?namespace=ops&instance_name=%0C", headers=HTML).status == 404
    assert client.get("/wuxing/section?namespace=ops&section_name=db&section_version=%0B", headers=HTML).status == 404
    for query, param in (
        ("/wuxing/namespace", "namespace"),
        ("/wuxing/namespace?namespace=" + "n" * 17, "namespace"),
        ("/wuxing/item?item_id=abc", "item_id"),
        ("/wuxing/item", "item_id"),
        ("/wuxing/section?namespace=ops&section_name=db", "section_version"),
    ):
        reply = client.get(query, headers=HTML)
        assert reply.status == 400 and reply.json()["errors"][0]["param"] == param, query
