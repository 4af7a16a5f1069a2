"""canghai's HTML pages (in-process): idle queues hidden, sparklines, no-consumer warning, MQ off.

The pages in Chromium at 1280 and 390 px are in the root ``tests/test_pages_browser.py``.
"""

from __future__ import annotations

import re

import pytest

import butterfly_mq.plugin
import butterfly_router.plugin
from butterfly_mq import enqueue, get_message
from butterfly_mq.keys import STATES
from butterfly_mq.pages import is_active
from butterfly_router import ui
from kernel.testing import Client

HTML = {"Accept": "text/html"}


@pytest.fixture
def canghai(make_kernel, redis_server, prefix, mq, tmp_path):
    """Factory: router + MQ (+ the ``/t/`` handlers) on the session's redis-server."""

    def factory(start: bool = False, **settings):
        values = {
            "mq.redis_url": redis_server.url,
            "mq.prefix": prefix,
            "mq.poll_max_interval": 0.1,
            "mq.heartbeat_interval": 0.5,
            "router.handlers_dir": str(tmp_path / "no-handlers"),
            **settings,
        }
        kernel = make_kernel(plugins=[butterfly_router.plugin, butterfly_mq.plugin, mq.Handlers()], settings=values)
        if start:
            kernel.startup()
        return kernel

    return factory


def shown_queues(html: str) -> list[str]:
    return re.findall(r'<tr data-queue="([^"]+)">', html)


def test_idle_queues_are_hidden_until_asked_for(canghai, mq):
    kernel = canghai(start=True)
    msg_id = enqueue("/t/ok", {"n": 1}, kernel=kernel)
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
    enqueue("/t/slow", {"seconds": 0}, kernel=kernel, delay=3600)
    client = Client(kernel)
    overview = client.get("/canghai/", headers=HTML)
    assert overview.status == 200
    assert shown_queues(overview.text) == ["/t/ok", "/t/slow"]  # done recently; a scheduled message
    total = len(client.get("/canghai/api/queues").json()["queues"])
    toggle = f'2 active of {total} · <a href="/canghai/?all=1" id="toggle-idle">show all ({total - 2} idle)</a>'
    assert toggle in overview.text
    everything = client.get("/canghai/?all=1", headers=HTML).text
    assert len(shown_queues(everything)) == total
    assert {"/t/biz", "/t/boom", "/t/count", "/t/flaky", "/t/ok", "/t/slow"} <= set(shown_queues(everything))
    assert 'id="toggle-idle">hide idle queues</a>' in everything


def test_each_queue_has_a_throughput_sparkline(canghai, mq):
    kernel = canghai(start=True)
    ids = [enqueue("/t/ok", {"n": n}, kernel=kernel) for n in range(3)]
    mq.wait_for(lambda: all(get_message(i, kernel=kernel)["state"] == "finished" for i in ids))
    row = next(q for q in Client(kernel).get("/canghai/api/queues").json()["queues"] if q["name"] == "/t/ok")
    series = row["throughput_series"]
    assert len(series) == 10 and sum(series) == 3 and series[-1] >= 1  # this minute is the last point
    html = Client(kernel).get("/canghai/", headers=HTML).text
    row_html = html[html.index('<tr data-queue="/t/ok">') :].split("</tr>", 1)[0]
    assert '<svg class="spark"' in row_html and "last 10 minutes: " + ", ".join(map(str, series)) in row_html


def overview_with(queues: list[dict]) -> str:
    """The overview template rendered with the given queue rows."""
    template = ui.environment("butterfly_mq").get_template("overview.html")
    unconsumed = [q for q in queues if "consumers" in q and not q["consumers"] and q["queued"]]
    site = ui.Site("canghai", "/canghai/")
    return template.render(
        site=site,
        states=STATES,
        queues=queues,
        total_queues=len(queues),
        hidden=0,
        show_all=False,
        unconsumed=unconsumed,
        instances=[],
    )


def row(name: str, **fields) -> dict:
    base = dict.fromkeys(STATES, 0) | {"name": name, "oldest_age": None, "throughput_per_min": 0.0, "paused": False}
    return base | fields


def test_queues_without_a_live_consumer_are_flagged_when_the_api_says_so():
    html = overview_with([row("/a/waiting", queued=4, consumers=0), row("/a/served", queued=1, consumers=2)])
    waiting = html[html.index('<tr data-queue="/a/waiting">') :].split("</tr>", 1)[0]
    served = html[html.index('<tr data-queue="/a/served">') :].split("</tr>", 1)[0]
    assert "no consumer" in waiting and "no consumer" not in served
    assert 'id="no-consumer"' in html and "/a/waiting" in html.split('id="no-consumer"', 1)[1].split("</section>")[0]
    # rows without the field (an MQ that does not report consumers): no claim either way
    assert "no consumer" not in overview_with([row("/a/unknown", queued=4)])


def test_queue_page_opens_the_first_state_with_messages(canghai, mq):
    kernel = canghai(start=True)
    failed = enqueue("/t/boom", {}, kernel=kernel, retries=0)
    mq.wait_for(lambda: get_message(failed, kernel=kernel)["state"] == "failed")
    html = Client(kernel).get("/canghai/queue?queue=/t/boom", headers=HTML).text
    assert f'<tr data-msg="{failed}">' in html
    assert re.search(r'state=failed" aria-current="page">failed<span class="count">1</span>', html)
    assert 'data-post="/canghai/api/requeue"' in html and 'data-post="/canghai/api/delete"' in html
    bad = Client(kernel).get("/canghai/queue?queue=no+slash", headers=HTML)
    assert bad.status == 400 and bad.json()["errors"][0]["param"] == "queue"


def test_is_active():
    assert not is_active(row("/idle", finished=9))  # kept results only: nothing to look at
    assert is_active(row("/busy", queued=1)) and is_active(row("/bad", dead=1))
    assert is_active(row("/recent", throughput_per_min=0.2)) and is_active(row("/held", paused=True))


def test_with_the_mq_off_canghai_explains_how_to_turn_it_on(make_kernel, tmp_path):
    kernel = make_kernel(
        plugins=[butterfly_router.plugin, butterfly_mq.plugin], settings={"router.handlers_dir": str(tmp_path / "x")}
    )
    client = Client(kernel)
    page = client.get("/canghai/", headers=HTML)
    assert page.status == 200 and "The message queue is off" in page.text and "redis_url" in page.text
    assert client.get("/canghai/api/queues").status == 404  # the API is not served without a Redis
    assert "/canghai/" in [link.path for link in ui.nav_links(kernel)]
    assert client.get("/canghai/", remote_addr="203.0.113.5").status == 403  # still an admin page


def test_dashboard_off_means_no_page_and_no_link(canghai):
    kernel = canghai(**{"mq.dashboard": False})
    assert Client(kernel).get("/canghai/", headers=HTML).status == 404
    assert "/canghai/" not in [link.path for link in ui.nav_links(kernel)]
