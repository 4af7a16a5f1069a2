"""Every HTML page of every installed plugin, in real headless Chromium, at 1280×800 and 390×844.

One full install (every ``butterfly.plugins`` entry point, the demo apps, the MQ on a
private redis-server, SQLite, the auth plugin, plus the third-party plugin of
``docs/console.md``) is seeded with data and served by real waitress. The walk starts at
the console and follows every same-site link to a page (an ``html`` route, or a raw route
that answers HTML), each route path at most :data:`VISITS_PER_ROUTE` times; every page is
checked at both widths: HTTP 200, no horizontal overflow, no console error, nothing fetched
from another origin, a screenshot. Every ``html`` route in the route table and every
navigation link must have been reached — a new page is covered as soon as it is linked.

The click-through signs in through the form, lands on the console, follows the navigation
bar to each page, pauses and resumes a ruqi job with its buttons, and signs out.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from kernel.testing import LiveServer, build_kernel

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DOCS_PAGE = REPO / "docs" / "console.md"
PASSWORD = "correct horse battery"
VIEWPORTS = ({"width": 1280, "height": 800}, {"width": 390, "height": 844})
VISITS_PER_ROUTE = 2
#: A topic the install pauses by ``[mq] paused`` (its name sorts after the demo_api queues, so
#: the walk still opens the same queue pages).
LOCALLY_PAUSED = "/demo_log/emit"
#: Route kinds that may answer a page (``http``: raw handlers, checked by Content-Type).
PAGE_KINDS = ("html", "http")
FAST_HASHING = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 1024, "auth.argon2_parallelism": 1}


# -- the third-party plugin of docs/console.md ---------------------------------------------


def doc_example(marker: str) -> str:
    """The fenced code block that follows ``<!-- example: marker -->`` in docs/console.md."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- example: {re.escape(marker)} -->\s*(?:<!--.*?-->\s*)*```\w*\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/console.md has no example {marker!r}"
    return found.group(1)


def install_doc_plugin(base: Path):
    """Write the docs' example plugin as a package under ``base`` and import it."""
    package = base / "hello_plugin"
    (package / "templates").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(doc_example("hello_plugin/plugin.py"), encoding="utf-8")
    (package / "templates" / "hello.html").write_text(doc_example("hello_plugin/templates/hello.html"), "utf-8")
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    for name in [n for n in sys.modules if n == "hello_plugin" or n.startswith("hello_plugin.")]:
        del sys.modules[name]
    import hello_plugin.plugin

    return hello_plugin.plugin


# -- the seeded install ----------------------------------------------------------------------


@dataclass
class Site:
    """The served install: kernel, server, the admin's name."""

    kernel: object
    server: LiveServer
    admin: str
    shots: Path
    screenshots: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def seed_wuxing(kernel) -> None:
    """A namespace with a section (a secret item among them), two instances, some history."""
    from butterfly_wuxing import wuxing_of

    wx = wuxing_of(kernel)
    wx.ensure_section(
        "ops",
        "web",
        "1",
        {
            "i|port": ("int", 8080, "listen port"),
            "s|db_password": ("string", "", "database password (secret: masked for non-admins)"),
            "j|limits": ("json", {"rps": 100, "burst": 20}, "rate limits"),
            "t|notes": ("text", "", "free text"),
            "b|debug": ("bool", False, "debug logging"),
        },
        user="seed",
    )
    for name in ("web-1", "web-2"):
        wx.instance_create("ops", name, "web", "1", {"s|db_password": "hunter2", "t|notes": "a\nmulti-line\nnote"})
    for port in (8081, 8082):
        wx.instance_update_item("ops", "web-1", "i|port", port, user="seed")


def seed_ruqi(kernel) -> None:
    """A job that runs every second, a nightly cron job and a paused one."""
    from butterfly_ruqi import service

    state = kernel.extensions["ruqi"]
    jobs = [
        {"job_id": "tick", "job_name": "ping every second", "job_trigger": "interval", "rule": "1s"},
        {"job_id": "nightly", "job_name": "nightly report", "job_trigger": "cron", "rule": "0 0 3 * * *"},
        {"job_id": "weekly", "job_name": "weekly cleanup", "job_trigger": "cron", "rule": "0 0 4 * * 1"},
    ]
    for job in jobs:
        service.add_job(state, {**job, "job_type": "handler", "target": "/demo_api/ping"})
    service.pause_job(state, "weekly")


def seed_mq(kernel) -> dict[str, str]:
    """Finished, failed, scheduled messages, and queued ones no instance consumes."""
    from butterfly_mq import enqueue

    ids = {"done": enqueue("/demo_api/hello", {"str_info": "hi"}, kernel=kernel)}
    ids["failed"] = enqueue("/demo_api/steps", {"rounds": 100_000}, kernel=kernel, retries=0)
    ids["later"] = enqueue("/demo_api/hello", {"str_info": "later"}, kernel=kernel, delay=3600)
    ids["orphan"] = enqueue("/reports/nightly", {"day": "today"}, kernel=kernel)
    return ids


def seed_xingqiao(kernel) -> int:
    """A workflow job of the demo app (its page is linked from the job list; its queues are not demo_api's)."""
    from butterfly_xingqiao import jobs

    return jobs.create_job(kernel.extensions["xingqiao"], "word_count", job_extra={"text": "a b c", "parts": 2})[
        "job_id"
    ]


def traffic(url: str) -> None:
    """Requests for the access report: OK, a 400, a 404."""
    for path in ("/demo_api/hello?str_info=x", "/demo_api/hello", "/no/such/route", "/demo_api/ping"):
        try:
            urllib.request.urlopen(url + path, timeout=10).read()
        except urllib.error.HTTPError as error:
            error.read()


def build_site(base: Path, redis_url: str) -> Site:
    """Build, seed and serve the full install (the caller stops it)."""
    plugin = install_doc_plugin(base / "plugins")
    settings = {
        "store.url": f"sqlite:///{base}/butterfly.sqlite",
        "router.handlers_dir": str(REPO / "handlers"),
        "mq.redis_url": redis_url,
        "mq.prefix": f"pages{uuid.uuid4().hex[:6]}",
        "mq.poll_max_interval": 0.2,
        "mq.heartbeat_interval": 0.5,
        "mq.paused": [LOCALLY_PAUSED],  # canghai: "paused on 1 of 1 instance"
        "ruqi.sync_interval": 0.3,
        **FAST_HASHING,
    }
    kernel = build_kernel(base, [(plugin, "hello")], settings, load_entrypoints=True)
    from butterfly_auth import users

    admin = "ops-" + uuid.uuid4().hex[:6]
    users.create_user(kernel, admin, PASSWORD, ("admin",))
    seed_wuxing(kernel)
    seed_ruqi(kernel)
    ids = seed_mq(kernel)
    server = LiveServer(kernel).start()
    job_id = seed_xingqiao(kernel)
    from butterfly_mq import get_message
    from butterfly_ruqi import service

    state = kernel.extensions["ruqi"]
    wait_for(lambda: get_message(ids["done"], kernel=kernel)["state"] == "finished")
    wait_for(lambda: get_message(ids["failed"], kernel=kernel)["state"] in ("failed", "dead"))
    kernel.extensions["mq"].pause("/demo_api/steps")  # canghai: "paused" (the flag in Redis)
    wait_for(lambda: service.get_history(state, job_id="tick", status="succeeded")["total"] >= 2)
    from butterfly_xingqiao import jobs

    wait_for(lambda: jobs.get_job_detail(kernel.extensions["xingqiao"], job_id)["job_status"] == "finished")
    traffic(server.url)
    shots = Path(os.environ.get("BUTTERFLY_TEST_ARTIFACTS") or base / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return Site(kernel, server, admin, shots)


@pytest.fixture(scope="module")
def site(tmp_path_factory, redis_server):
    base = tmp_path_factory.mktemp("pages")
    served = build_site(base, redis_server.url)
    yield served
    served.server.stop()
    served.kernel.shutdown()
    sys.path.remove(str(base / "plugins"))
    for name in [n for n in sys.modules if n == "hello_plugin" or n.startswith("hello_plugin.")]:
        del sys.modules[name]
    print("\nscreenshots:\n" + "\n".join(served.screenshots))


# -- checking one page -------------------------------------------------------------------------


class PageProblems:
    """Console errors, page errors and requests to other origins, per page."""

    def __init__(self, page, origin: str) -> None:
        self.errors: list[str] = []
        self.external: list[str] = []
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on(
            "request", lambda request: None if request.url.startswith(origin) else self.external.append(request.url)
        )

    def take(self) -> tuple[list[str], list[str]]:
        found = (list(self.errors), list(self.external))
        self.errors.clear()
        self.external.clear()
        return found


def slug(url: str) -> str:
    parts = urlsplit(url)
    text = (parts.path.strip("/") or "console") + ("-" + parts.query if parts.query else "")
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:80]


def check_layout(page, problems: PageProblems, site: Site, name: str) -> None:
    """At each viewport: no horizontal overflow, no console error, nothing external; a screenshot."""
    for viewport in VIEWPORTS:
        page.set_viewport_size(viewport)
        scroll_width, inner_width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll_width <= inner_width, f"{page.url} overflows at {viewport['width']} px: {scroll_width}"
        shot = site.shots / f"{name}-{viewport['width']}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 5_000
        site.screenshots.append(str(shot))
    errors, external = problems.take()
    assert not errors, f"{page.url}: console errors {errors}"
    assert not external, f"{page.url}: requests to other origins {external}"
    assert page.locator("link[rel=stylesheet]").count() == 1  # the one shared stylesheet
    assert page.locator("header.topbar nav#nav a").count() >= 1  # the shared navigation bar


def signed_in_context(chromium, site: Site):
    """A browser context holding the admin's session cookie (signed in through the API)."""
    context = chromium.new_context(viewport=VIEWPORTS[0])
    reply = context.request.post(
        site.url + "/auth/login",
        data=json.dumps({"username": site.admin, "password": PASSWORD}),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.text()
    return context


def page_route(site: Site, url: str):
    """The route serving ``url`` when it may be a page (a GET route of a page kind), else ``None``."""
    parts = urlsplit(url)
    if not url.startswith(site.url) or parts.path.startswith(("/_console/", "/_meta/", "/static/")):
        return None
    route = site.kernel.routes.lookup(parts.path)
    if route is None or route.kind not in PAGE_KINDS or route.prefix:
        return None
    if route.methods is not None and "GET" not in route.methods:
        return None
    return route


def html_routes(kernel) -> set[str]:
    """Paths of every GET route whose kind is ``html``."""
    return {r.path for r in kernel.routes if r.kind == "html" and (r.methods is None or "GET" in r.methods)}


# -- the tests -------------------------------------------------------------------------------


def visit(page, problems: PageProblems, site: Site, url: str) -> bool:
    """Open ``url``; when it answers a page, check it at both widths. True when it was a page."""
    response = page.goto(url, wait_until="load")
    if not (response.headers.get("content-type") or "").startswith("text/html"):
        problems.take()
        return False  # a raw route that answers JSON or a file: not a page
    assert response.status == 200, f"{url}: HTTP {response.status}"
    check_layout(page, problems, site, slug(url))
    page.set_viewport_size(VIEWPORTS[0])
    return True


def test_every_page_of_every_plugin_at_two_widths(site, chromium):
    context = signed_in_context(chromium, site)
    page = context.new_page()
    problems = PageProblems(page, site.url)
    visits: Counter[str] = Counter()
    seen: set[str] = set()
    todo = deque([site.url + "/"])
    try:
        while todo:
            url = todo.popleft()
            route = page_route(site, url)
            if route is None or visits[route.path] >= VISITS_PER_ROUTE or not visit(page, problems, site, url):
                continue
            visits[route.path] += 1
            for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
                link = urljoin(url, href).split("#", 1)[0]
                if link not in seen:
                    seen.add(link)
                    todo.append(link)
        # pages no link leads to (e.g. GET /auth/logout): opened by their path, without parameters
        nav_paths = {link.path.rstrip("/") or "/" for link in site.kernel.extensions["router.console"].links}
        for path in sorted((html_routes(site.kernel) | nav_paths) - set(visits)):
            response = page.goto(site.url + path)
            assert response.status == 200, (
                f"{path}: no page links to it and it needs parameters (HTTP {response.status}); "
                "link it from a page or the navigation bar so the walk reaches it"
            )
            assert visit(page, problems, site, site.url + path)
            visits[path] += 1
    finally:
        context.close()
    assert {"/", "/canghai", "/canghai/queue", "/canghai/msg", "/ruqi", "/wuxing/item", "/demo_template/log"} <= set(
        visits
    )
    assert {"/auth/login", "/auth/logout", "/hello", "/xingqiao", "/xingqiao/job"} <= set(visits)


def test_pages_before_sign_in_at_two_widths(site, chromium):
    context = chromium.new_context(viewport=VIEWPORTS[0])
    page = context.new_page()
    problems = PageProblems(page, site.url)
    try:
        assert visit(page, problems, site, site.url + "/")
        assert page.locator("#sign-in-card").count() == 1
        page.click("#sign-in")
        page.wait_for_url("**/auth/login?next=/")
        check_layout(page, problems, site, "auth-login-signed-out")
        page.goto(site.url + "/wuxing/")  # reads need a signed-in user: off to the sign-in page
        assert urlsplit(page.url).path == "/auth/login" and "next=/wuxing/" in page.url
        problems.take()
    finally:
        context.close()


def test_canghai_queue_page_keeps_its_buttons_in_view_at_1280(site, chromium):
    context = signed_in_context(chromium, site)
    page = context.new_page()
    try:
        page.goto(site.url + "/canghai/queue?queue=/demo_api/steps&state=failed")
        row = page.locator("#msgs tbody tr[data-msg]").first
        delete = row.locator("button[data-post='/canghai/api/delete']")
        requeue = row.locator("button[data-post='/canghai/api/requeue']")
        for button in (requeue, delete):
            box = button.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280, box
        wrapper = page.evaluate(
            "() => { const w = document.querySelector('#msgs').parentElement; return [w.scrollWidth, w.clientWidth]; }"
        )
        assert wrapper[0] <= wrapper[1], f"the message table scrolls sideways at 1280 px: {wrapper}"
    finally:
        context.close()


def test_canghai_hides_idle_queues_and_warns_about_queues_without_consumer(site, chromium):
    context = signed_in_context(chromium, site)
    page = context.new_page()
    try:
        page.goto(site.url + "/canghai/")
        shown = set(page.eval_on_selector_all("#queues tr[data-queue]", "rows => rows.map(r => r.dataset.queue)"))
        assert {"/demo_api/hello", "/demo_api/steps", "/reports/nightly"} <= shown
        assert "/demo_api/ping" not in shown  # consumed, but nothing happened there: idle
        assert page.locator("#queues svg.spark").count() == len(shown)  # one sparkline per queue
        page.click("#toggle-idle")
        page.wait_for_url("**/canghai/?all=1")
        everything = page.locator("#queues tr[data-queue]").count()
        assert everything > len(shown) and page.locator("#queues tr[data-queue='/demo_api/ping']").count() == 1
        from butterfly_mq.dashboard import queues_overview

        if "consumers" in queues_overview(site.kernel.extensions["mq"])[0]:
            # the per-queue consumer count is served (h3-redis): the queue nobody consumes is flagged
            assert page.locator("#queues tr[data-queue='/reports/nightly'] .pill.unconsumed").count() == 1
            assert "/reports/nightly" in page.inner_text("#no-consumer")
    finally:
        context.close()


def test_canghai_says_how_each_queue_is_paused_at_two_widths(site, chromium):
    context = signed_in_context(chromium, site)
    page = context.new_page()
    problems = PageProblems(page, site.url)
    name = site.kernel.extensions["mq"].name
    try:
        page.goto(site.url + "/canghai/")
        wait_for(lambda: page.locator(f"#queues tr[data-queue='{LOCALLY_PAUSED}'] .pill.paused").count() == 1)
        assert page.inner_text("#queues tr[data-queue='/demo_api/steps'] .pill.paused") == "paused"
        local = page.locator(f"#queues tr[data-queue='{LOCALLY_PAUSED}'] .pill.paused")
        assert local.inner_text() == "paused on 1 of 1 instance" and name in (local.get_attribute("title") or "")
        assert "resume clears the flag and lifts [mq] paused" in page.inner_text("#resume-note")
        check_layout(page, problems, site, "canghai-paused-overview")
        page.set_viewport_size(VIEWPORTS[0])
        page.goto(site.url + "/canghai/queue?queue=/demo_api/steps")
        assert "Paused on every instance" in page.inner_text("#pause-state")
        assert "resume clears the flag" in page.inner_text("#resume-effect")
        check_layout(page, problems, site, "canghai-paused-flag")
        page.set_viewport_size(VIEWPORTS[0])
        page.goto(site.url + f"/canghai/queue?queue={LOCALLY_PAUSED}")
        state = page.inner_text("#pause-state")
        assert "paused on 1 of 1 instance" in state and name in state
        assert "No other live instance pops it" in page.inner_text("#still-consuming")
        assert page.locator("#pause-card button[data-post='/canghai/api/pause']").inner_text() == "pause everywhere"
        check_layout(page, problems, site, "canghai-paused-locally")
    finally:
        context.close()


def test_mq_off_page_explains_how_to_turn_it_on(make_kernel, live_server, chromium, tmp_path):
    import butterfly_mq.plugin
    import butterfly_router.plugin

    kernel = make_kernel(
        plugins=[butterfly_router.plugin, butterfly_mq.plugin], settings={"router.handlers_dir": str(tmp_path / "none")}
    )
    server = live_server(kernel)
    site = Site(kernel, server, "", Path(os.environ.get("BUTTERFLY_TEST_ARTIFACTS") or tmp_path / "shots"))
    site.shots.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport=VIEWPORTS[0])
    problems = PageProblems(page, server.url)
    try:
        response = page.goto(server.url + "/canghai/")
        assert response.status == 200
        assert "redis_url" in page.inner_text("#turn-on") and "off" in page.inner_text("#mq-off")
        check_layout(page, problems, site, "canghai-off")
        page.click("#nav a[href='/']")  # loopback without butterfly-auth: an admin, canghai in the bar
        page.wait_for_url(server.url + "/")
        assert page.locator("#nav a[href='/canghai/']").count() == 1
    finally:
        page.close()


def test_click_through_sign_in_console_nav_and_ruqi_buttons(site, chromium):
    context = chromium.new_context(viewport=VIEWPORTS[0])
    page = context.new_page()
    problems = PageProblems(page, site.url)
    try:
        page.goto(site.url + "/")
        assert page.locator("#sign-in-card").count() == 1
        assert page.locator("#nav a[href='/ruqi/']").count() == 0  # admin pages hidden before sign-in
        page.click("#nav-sign-in")
        page.wait_for_url("**/auth/login?next=/")
        page.fill("#username", site.admin)
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_url(site.url + "/")
        assert page.inner_text("#nav-user") == site.admin
        titles = page.eval_on_selector_all(
            "#nav a", "links => links.map(a => [a.textContent.trim(), a.getAttribute('href')])"
        )
        assert {"如期 ruqi", "沧海 canghai", "五行 wuxing", "Access report", "Hello"} <= {title for title, _ in titles}
        for title, href in titles:
            page.click(f"#nav a[href='{href}']")
            page.wait_for_url(site.url + href)
            assert page.locator("#nav a[aria-current='page']").inner_text().strip() == title
        page.click("#nav a[href='/ruqi/']")
        page.wait_for_url(site.url + "/ruqi/")
        state = page.locator("tr[data-job='nightly'] .job-state")
        assert state.inner_text() == "active"
        page.click("tr[data-job='nightly'] button[data-post='/ruqi/pause_job']")
        page.locator("tr[data-job='nightly'] .job-state", has_text="paused").wait_for()
        page.click("tr[data-job='nightly'] button[data-post='/ruqi/resume_job']")
        page.locator("tr[data-job='nightly'] .job-state", has_text="active").wait_for()
        from butterfly_ruqi import service

        job = service.get_job(site.kernel.extensions["ruqi"], "nightly")
        assert job["paused"] is False and job["version"] >= 3  # paused and resumed for real
        page.click("#nav-sign-out")
        page.wait_for_url("**/auth/login?logged_out=1")
        assert page.locator("#nav-sign-in").count() == 1
        errors, external = problems.take()
        assert not errors and not external, (errors, external)
    finally:
        context.close()
