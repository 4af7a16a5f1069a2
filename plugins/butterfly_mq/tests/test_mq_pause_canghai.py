"""canghai says how a queue is paused: everywhere (the flag in Redis) or on N of M instances
(their own ``[mq] paused``), naming them, in the JSON API and the pages.

Two kernels are two instances on a real Redis (direct, Twemproxy, Cluster); one pauses
``/t/ok`` by its setting. The pages at 1280 and 390 px in Chromium are checked too.
"""

from __future__ import annotations

import html
import re

import pytest

import butterfly_router.plugin
from kernel.testing import Client

HTML = {"Accept": "text/html"}
TOPIC = "/t/ok"


@pytest.fixture
def two_instances(mq_kernel, mq, tmp_path):
    """``(paused_here, other)``: two started kernels with canghai; the first pauses /t/ok by
    ``[mq] paused``; returned once canghai sees both heartbeats (and the pause)."""
    router = {"plugins": [butterfly_router.plugin], "other_settings": {"router.handlers_dir": str(tmp_path / "none")}}
    paused_here = mq_kernel(start=True, paused=[TOPIC], **router)
    other = mq_kernel(start=True, **router)
    names = {paused_here.extensions["mq"].name, other.extensions["mq"].name}
    # NOTE: an instance registers its queues and beats from its own thread after start-up:
    # until the first beat the queue may not be listed at all.
    mq.wait_for(
        lambda: names <= set(row["paused_on"] + row["consumed_on"]) if (row := queue_row(other, None)) else False
    )
    return paused_here, other


def queue_row(kernel, *missing) -> dict:
    """/t/ok's row of ``GET /canghai/api/queues`` (``missing`` if given and there is none)."""
    return next((q for q in Client(kernel).get("/canghai/api/queues").json()["queues"] if q["name"] == TOPIC), *missing)


def queue_detail(kernel) -> dict:
    """``GET /canghai/api/queue?queue=/t/ok``."""
    reply = Client(kernel).get("/canghai/api/queue", query={"queue": TOPIC}).json()
    assert reply["stat"] == "OK"
    return reply["queue"]


def overview_row(kernel) -> str:
    """/t/ok's row of the overview page, as text (tags dropped)."""
    page = Client(kernel).get("/canghai/?all=1", headers=HTML).text
    row = page[page.index(f'<tr data-queue="{TOPIC}">') :].split("</tr>", 1)[0]
    return text_of(row)


def queue_page(kernel) -> str:
    """/t/ok's queue page (HTML)."""
    return Client(kernel).get("/canghai/queue", query={"queue": TOPIC}, headers=HTML).text


def pause_card(kernel) -> str:
    """The pause card of /t/ok's queue page, as text."""
    page = queue_page(kernel)
    return text_of(page[page.index('id="pause-card"') :].split("</section>", 1)[0])


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def test_canghai_tells_a_pause_on_some_instances_from_a_pause_everywhere(two_instances, mq):
    paused_here, other = two_instances
    name_a, name_b = paused_here.extensions["mq"].name, other.extensions["mq"].name

    # [mq] paused on one of two instances: named in the API, "paused on 1 of 2 instances" on the pages
    for facts in (queue_row(other), queue_detail(other), queue_detail(paused_here)):
        assert facts["paused"] is True and facts["paused_cluster"] is False
        assert facts["paused_on"] == [name_a] and facts["consumed_on"] == [name_b] and facts["consumers"] == 1
    row = overview_row(other)
    assert "paused on 1 of 2 instances" in row and "resume" in row
    card = pause_card(other)
    assert f"paused on 1 of 2 instances Paused by their own [mq] paused on {name_a}." in card
    assert f"Still popping it: {name_b}." in card
    assert "resume lifts [mq] paused on every running instance at once (there is no flag to clear)" in card
    assert "pause everywhere" in card and "Paused on every instance" not in card

    # the flag: "paused" everywhere, the local pause still named on the queue page
    assert Client(other).post("/canghai/api/pause", json={"queue": TOPIC}).json()["paused"] is True
    for facts in (queue_row(paused_here), queue_detail(other)):
        assert facts["paused"] is True and facts["paused_cluster"] is True and facts["paused_on"] == [name_a]
    row = overview_row(other)
    assert re.search(r"\bpaused\b", row) and "paused on" not in row
    card = pause_card(paused_here)
    assert "Paused on every instance: the queue's flag in Redis is set" in card
    assert f"Also paused by their own [mq] paused on {name_a}." in card
    assert "resume clears the flag and lifts [mq] paused on every running instance at once" in card
    assert "pause everywhere" not in card and "pause queue" not in card

    # a resume lifts both: nothing paused anywhere, both instances pop it
    Client(other).post("/canghai/api/resume", json={"queue": TOPIC})
    facts = mq.wait_for(lambda: not (facts := queue_detail(other))["paused_on"] and facts)
    assert facts["paused"] is False and facts["paused_cluster"] is False
    assert sorted(facts["consumed_on"]) == sorted([name_a, name_b]) and facts["consumers"] == 2
    assert "paused" not in overview_row(other)
    card = pause_card(other)
    assert "Popped by 2 live instances" in card and name_a in card and name_b in card
    assert "pause queue sets the queue's flag in Redis" in card and "/canghai/api/resume" not in queue_page(other)


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_the_pause_texts_fit_a_phone_and_a_desktop_in_chromium(two_instances, live_server, chromium, tmp_path):
    paused_here, other = two_instances
    name_a = paused_here.extensions["mq"].name
    server = live_server(other)
    page = chromium.new_page()
    try:
        for width, height in ((1280, 800), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(server.url + "/canghai/")
            pill = page.locator(f"#queues tr[data-queue='{TOPIC}'] .pill.paused")
            assert pill.inner_text() == "paused on 1 of 2 instances"
            box = pill.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box
            assert "resume clears the flag" in page.inner_text("#resume-note")
            assert_no_overflow(page, width)
            page.goto(server.url + f"/canghai/queue?queue={TOPIC}")
            assert name_a in page.inner_text("#pause-card")
            assert_no_overflow(page, width)
            page.screenshot(path=str(tmp_path / f"canghai-paused-{width}.png"), full_page=True)
        # the buttons work from the page: pause everywhere, then the live card says so
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("#pause-card button[data-post='/canghai/api/pause']")
        page.locator("#pause-state", has_text="Paused on every instance").wait_for(timeout=10_000)
        assert_no_overflow(page, 390)
    finally:
        page.close()
    assert (tmp_path / "canghai-paused-390.png").stat().st_size > 5_000


def assert_no_overflow(page, width: int) -> None:
    scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} overflows at {width} px: {scroll_width}"
