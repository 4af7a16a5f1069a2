"""The console at ``/``, the shared layout and the navigation links (in-process, no browser)."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

import butterfly_router.plugin
from butterfly_router import ui, ui_filters
from kernel import ConfigError, Response, hookimpl
from kernel.testing import Client

HTML = {"Accept": "text/html"}


def router_kernel(make_kernel, tmp_path, *plugins, **settings):
    values = {"router.handlers_dir": str(tmp_path / "handlers"), **settings}
    return make_kernel(plugins=[butterfly_router.plugin, *plugins], settings=values)


class Links:
    """A plugin with a public and an admin page."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/t/page", lambda request: Response(200, [], b"page"), kind="html", methods=("GET",))
        register("/t/admin", lambda request: Response(200, [], b"admin"), kind="html", methods=("GET",), admin=True)

    @hookimpl
    def butterfly_console_links(self, register):
        register("Public page", "/t/page", description="for everyone")
        register("Admin page", "/t/admin", admin=True)


def test_the_kernel_alone_answers_slash_with_a_json_404(make_kernel):
    reply = Client(make_kernel()).get("/", headers=HTML)
    assert reply.status == 404 and reply.json()["stat"] == "ERR_NOT_FOUND"


def test_console_lists_plugins_pages_routes_and_health(make_kernel, tmp_path):
    kernel = router_kernel(make_kernel, tmp_path, (Links(), "links"))
    reply = Client(kernel).get("/", headers=HTML)
    assert reply.status == 200 and reply.headers["content-type"] == "text/html; charset=utf-8"
    page = reply.text
    assert '<a href="/t/page"><strong>Public page</strong></a>' in page and "for everyone" in page
    assert '<a href="/t/admin"><strong>Admin page</strong>' in page  # loopback without auth: an admin
    assert f'id="route-count">{len(kernel.routes)}<' in page
    assert 'data-check="router"' in page and 'id="health-badge" href="#health">healthy<' in page
    assert 'data-plugin="links"' in page and 'data-plugin="butterfly_router.plugin"' in page
    assert "butterfly-kernel <span" in page  # versions: admins only
    assert "Sign in" not in page  # no auth plugin: nothing to sign in to


def test_console_hides_admin_pages_and_versions_from_others(make_kernel, tmp_path):
    kernel = router_kernel(make_kernel, tmp_path, (Links(), "links"))
    page = Client(kernel, remote_addr="198.51.100.4").get("/", headers=HTML).text
    assert "/t/page" in page and "/t/admin" not in page and "Admin page" not in page
    assert "butterfly-kernel <span" not in page and "/_meta/routes" not in page


def test_console_reports_failing_health(make_kernel, tmp_path):
    class Sick:
        @hookimpl
        def butterfly_health(self):
            return {"disk": (False, "disk full")}

    page = Client(router_kernel(make_kernel, tmp_path, (Sick(), "sick"))).get("/").text
    assert "unhealthy: disk" in page and "disk full" in page


def test_a_plugin_that_claims_slash_keeps_it(make_kernel, tmp_path):
    class Home:
        @hookimpl
        def butterfly_register_routes(self, register):
            register("/", lambda request: Response.json({"stat": "OK", "home": True}), kind="json")

    kernel = router_kernel(make_kernel, tmp_path, (Home(), "home"))
    assert Client(kernel).get("/").json() == {"stat": "OK", "home": True}
    assert "/" not in [link.path for link in ui.nav_links(kernel)]  # no "Console" link to someone else's page
    assert Client(kernel).get("/_console/console.css").status == 200  # the pages still get their assets


def test_duplicate_and_bad_links_stop_startup(make_kernel, tmp_path):
    class Twin:
        @hookimpl
        def butterfly_console_links(self, register):
            register("Twin", "/t/page")

    with pytest.raises(
        ConfigError, match=r"duplicate console link /t/page: 'Twin' \(twin\) and 'Public page' \(links\)"
    ):
        router_kernel(make_kernel, tmp_path, (Links(), "links"), (Twin(), "twin"))

    class Bad:
        @hookimpl
        def butterfly_console_links(self, register):
            register("Bad", "https://elsewhere.example/")

    with pytest.raises(ConfigError, match="must be a path starting with '/'"):
        router_kernel(make_kernel, tmp_path, (Bad(), "bad"))


def test_handler_apps_add_links_with_a_module_function(make_kernel, tmp_path):
    app = tmp_path / "handlers" / "reports"
    app.mkdir(parents=True)
    (tmp_path / "handlers" / "__init__.py").write_text("")
    (app / "__init__.py").write_text(
        textwrap.dedent("""
            def butterfly_console_links(register):
                register("Reports", "/reports/daily", admin=True, description="daily numbers")

            def daily(req):
                return "OK"
        """)
    )
    kernel = router_kernel(make_kernel, tmp_path)
    links = {link.path: link for link in ui.nav_links(kernel)}
    assert links["/reports/daily"].owner == "app reports" and links["/reports/daily"].admin
    assert kernel.routes.lookup("/reports/butterfly_console_links") is None  # not a route: its parameter is not req


def test_pages_carry_the_strict_security_headers_and_shared_assets(make_kernel, tmp_path):
    kernel = router_kernel(make_kernel, tmp_path)
    client = Client(kernel)
    reply = client.get("/")
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "default-src 'none'" in policy
    assert reply.headers["x-frame-options"] == "DENY" and reply.headers["cache-control"] == "no-store"
    assert "<style" not in reply.text and "<script>" not in reply.text and ' style="' not in reply.text
    for name, kind in ui.ASSETS.items():
        asset = client.get(ui.ASSET_PREFIX + name)
        assert asset.status == 200 and asset.headers["content-type"] == kind and asset.body
        assert ui.asset_url(name) in reply.text  # the page links the versioned URL
        again = client.get(ui.ASSET_PREFIX + name, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status == 304 and again.body == b""


def test_console_with_auth_offers_sign_in_then_shows_the_user(make_kernel, tmp_path):
    import butterfly_auth.plugin
    import butterfly_store.plugin
    from butterfly_auth import users

    settings = {
        "store.url": f"sqlite:///{tmp_path}/auth.sqlite",
        "auth.argon2_time_cost": 1,
        "auth.argon2_memory_kib": 1024,
        "auth.argon2_parallelism": 1,
    }
    kernel = router_kernel(
        make_kernel, tmp_path, butterfly_store.plugin, butterfly_auth.plugin, (Links(), "links"), **settings
    )
    users.create_user(kernel, "alice", "correct horse battery", ("admin",))
    client = Client(kernel)
    anonymous = client.get("/", headers=HTML).text
    assert 'id="nav-sign-in" href="/auth/login?next=/"' in anonymous and "/t/admin" not in anonymous

    form = client.post(
        "/auth/login",
        body=b"username=alice&password=correct+horse+battery",
        headers={"Content-Type": "application/x-www-form-urlencoded", **HTML},
    )
    assert form.status == 303 and form.headers["location"] == "/"  # signed in: off to the console
    cookie = "; ".join(value.split(";", 1)[0] for name, value in form.header_list if name.lower() == "set-cookie")
    signed_in = client.get("/", headers={"Cookie": cookie, **HTML}).text
    assert 'id="nav-user"' in signed_in and ">alice<" in signed_in and 'action="/auth/logout"' in signed_in
    assert "/t/admin" in signed_in and "Sign in" not in signed_in
    login_page = client.get("/auth/login", headers={"Cookie": cookie, **HTML}).text
    assert "Continue to the console" in login_page and 'href="/_console/console.css' in login_page


def test_time_filters():
    now = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert ui_filters.ago(now - dt.timedelta(seconds=12), now) == "12 s ago"
    assert ui_filters.ago(now - dt.timedelta(minutes=5, seconds=3), now) == "5 min ago"
    assert ui_filters.ago(now + dt.timedelta(hours=3, minutes=1), now) == "in 3 h"
    assert ui_filters.ago(now - dt.timedelta(days=100), now) == "2024-01-22"
    assert ui_filters.ago(now, now) == "just now" and ui_filters.ago(None) == "" and ui_filters.ago("nonsense") == ""
    epoch = now.timestamp()
    assert ui_filters.moment(epoch) == now and ui_filters.moment(int(epoch * 1000)) == now  # seconds or ms
    assert ui_filters.moment("2024-05-01T14:00:00+02:00") == now
    assert ui_filters.absolute("2024-05-01T14:00:00+02:00") == "2024-05-01 14:00:00 UTC+02:00"
    assert ui_filters.absolute(now) == "2024-05-01 12:00:00 UTC" and ui_filters.iso(now) == "2024-05-01T12:00:00+00:00"
    assert ui_filters.since(90, now) == "1 min ago" and ui_filters.since(None) == "—"
    assert ui_filters.duration(0.25) == "250 ms" and ui_filters.duration(200) == "3 min 20 s"


def test_time_macro_renders_a_time_element_with_the_exact_time_on_hover():
    template = ui.environment("butterfly_router").from_string(
        '{% import "butterfly/macros.html" as ui %}{{ ui.time(when) }}|{{ ui.time(none) }}'
    )
    html = template.render(when="2024-05-01T12:00:00+00:00")
    assert html.startswith('<time datetime="2024-05-01T12:00:00+00:00" title="2024-05-01 12:00:00 UTC">')
    assert html.endswith('<span class="muted">—</span>')


def test_sparkline_geometry():
    line = ui_filters.sparkline([0, 5, 10], width=100, height=20)
    assert line.line == "2.0,18.0 50.0,10.0 98.0,2.0" and line.peak == 10 and line.total == 15
    assert line.area.startswith("M2.0,18.0 L2.0,18.0") and line.area.endswith("L98.0,18.0 Z")
    flat = ui_filters.sparkline([0, 0, 0], width=100, height=20)
    assert flat.line == "2.0,18.0 50.0,18.0 98.0,18.0" and flat.peak == 0  # all on the baseline


def test_url_with_keeps_the_other_query_parameters():
    site = ui.Site("t", "/ruqi/", {"job_id": "tick", "page": "3", "tag": ["a", "b"]})
    assert site.url_with("page", 4) == "/ruqi/?job_id=tick&tag=a&tag=b&page=4"
    assert site.url_with(job_id=None, page=None) == "/ruqi/?tag=a&tag=b"


def test_page_query_parameters_are_bounded(make_kernel, tmp_path):
    class Echo:
        @hookimpl
        def butterfly_register_routes(self, register):
            def echo(request):
                size = ui.query_int(request, "size", 10, 1, 50)
                return Response.json({"stat": "OK", "size": size, "name": ui.query_text(request, "name", max_length=5)})

            register("/t/echo", echo, kind="json", methods=("GET",))

    client = Client(router_kernel(make_kernel, tmp_path, (Echo(), "echo")))
    assert client.get("/t/echo?size=7&name=ab").json() == {"stat": "OK", "size": 7, "name": "ab"}
    for query, param in (("size=0", "size"), ("size=x", "size"), ("name=toolong", "name")):
        reply = client.get(f"/t/echo?{query}")
        assert reply.status == 400 and reply.json()["errors"][0]["param"] == param
