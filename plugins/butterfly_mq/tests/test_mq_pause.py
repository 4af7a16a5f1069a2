"""Pause and resume from the setting, canghai and the CLI, with two live instances.

One model: ``[mq] paused`` pauses a topic on *this* instance (nothing in Redis); canghai's and
the CLI's pause set the queue's flag in Redis (no instance pops it); a resume from either
clears the flag *and* lifts every instance's own pause. canghai shows both.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from butterfly_mq import enqueue, get_message
from butterfly_mq.keys import RegistryKeys
from kernel.cli import main


def post(server, path: str, body: dict) -> dict:
    """POST JSON to a live server (real waitress, loopback = admin)."""
    request = urllib.request.Request(
        server.url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def queue_row(server, topic: str) -> dict:
    with urllib.request.urlopen(server.url + "/canghai/api/queues", timeout=10) as reply:
        return next(q for q in json.loads(reply.read())["queues"] if q["name"] == topic)


def wait_until_it_looked(kernel, redis_client, prefix, mq) -> None:
    """Wait until the consumer read every ready mark made so far and ran two more rounds
    (which pop what the marks named; a paused queue's pop answers nothing) — proof that
    it looked, without timing."""
    counter = int(redis_client.get(RegistryKeys(prefix).ready_counter) or 0)
    consumer = kernel.extensions["mq"].consumer
    mq.wait_for(lambda: consumer.cursor >= counter)
    rounds = consumer.rounds
    mq.wait_for(lambda: consumer.wake() or consumer.rounds >= rounds + 3)


@pytest.fixture
def cli(monkeypatch, redis_url, prefix, tmp_path):
    """Run ``butterfly mq ...`` on this test's Redis and prefix; returns stdout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "router,trace,store,ruqi,wuxing,auth,xingqiao")
    monkeypatch.setenv("BUTTERFLY_MQ_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTERFLY_MQ_PREFIX", prefix)

    def run(capsys, *argv: str) -> str:
        assert main(["mq", *argv]) == 0
        return capsys.readouterr().out

    return run


def test_pause_and_resume_from_the_setting_canghai_and_the_cli(
    mq_kernel, live_server, cli, capsys, redis_client, redis_url, prefix, mq
):
    paused_here = mq_kernel(start=True, paused=["/t/ok"])
    other = mq_kernel(start=True)
    server_a, server_b = live_server(paused_here), live_server(other)
    name_a = paused_here.extensions["mq"].name

    # the setting: this instance does not pop the topic; Redis has no flag; canghai shows it
    row = mq.wait_for(lambda: (row := queue_row(server_b, "/t/ok"))["paused_on"] and row)
    assert row["paused_on"] == [name_a] and row["paused"] is True and row["paused_cluster"] is False
    assert paused_here.extensions["mq"].consumer.paused == {"/t/ok"}

    # the CLI's pause: the flag in Redis, so neither instance pops it
    assert "paused /t/ok on every instance" in cli(capsys, "pause", "/t/ok")
    first = enqueue("/t/ok", {"n": 1}, redis_url=redis_url, prefix=prefix)
    wait_until_it_looked(other, redis_client, prefix, mq)
    assert get_message(first, kernel=other)["state"] == "queued"
    assert queue_row(server_a, "/t/ok")["paused_cluster"] is True

    # canghai's resume (on the other instance): clears the flag and lifts the setting's pause
    assert post(server_b, "/canghai/api/resume", {"queue": "/t/ok"}) == {
        "stat": "OK",
        "queue": "/t/ok",
        "paused": False,
    }
    mq.wait_for(lambda: not paused_here.extensions["mq"].consumer.paused)
    mq.wait_for(lambda: get_message(first, kernel=other)["state"] == "finished")
    row = mq.wait_for(lambda: not (row := queue_row(server_b, "/t/ok"))["paused"] and row)
    assert row["paused_on"] == [] and row["paused_cluster"] is False

    # canghai's pause, the CLI's resume
    assert post(server_a, "/canghai/api/pause", {"queue": "/t/ok"})["paused"] is True
    second = enqueue("/t/ok", {"n": 2}, redis_url=redis_url, prefix=prefix)
    wait_until_it_looked(paused_here, redis_client, prefix, mq)
    wait_until_it_looked(other, redis_client, prefix, mq)
    assert get_message(second, kernel=other)["state"] == "queued"
    assert "resumed /t/ok on every instance" in cli(capsys, "resume", "/t/ok")
    mq.wait_for(lambda: get_message(second, kernel=other)["state"] == "finished")
    assert queue_row(server_a, "/t/ok")["paused"] is False


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_a_resume_on_the_instance_itself_lifts_its_own_pause_at_once(mq_kernel, mq, redis_url, prefix):
    kernel = mq_kernel(start=True, paused=["/t/ok"])
    service = kernel.extensions["mq"]
    msg_id = enqueue("/t/ok", {"n": 3}, kernel=kernel)
    assert get_message(msg_id, kernel=kernel)["state"] == "queued"
    service.resume("/t/ok")
    assert service.consumer.paused == set()  # no round trip needed for its own pause
    mq.wait_for(lambda: get_message(msg_id, kernel=kernel)["state"] == "finished")
    assert service.counters()["paused"] == []


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_pause_and_resume_refuse_a_bad_topic(cli, capsys):
    assert main(["mq", "pause", "no slash"]) == 1
    assert "bad topic" in capsys.readouterr().err
    assert main(["mq", "resume", "/x//y"]) == 1
