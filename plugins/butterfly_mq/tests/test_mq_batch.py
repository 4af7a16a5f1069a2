"""``enqueue_many``: per-message statuses, idempotency, validation, one round trip per batch —
on a single Redis, through Twemproxy and on a Redis Cluster — and its HTTP endpoint and CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import butterfly_mq.plugin
from butterfly_mq import enqueue, enqueue_many, get_message
from butterfly_mq.dashboard import consumers_of
from kernel import BadRequest
from kernel.cli import main
from kernel.testing import Client, RedisServer

HANDLERS = Path(__file__).resolve().parents[3] / "handlers"


def test_a_batch_reports_every_message_and_runs_the_stored_ones(mq_kernel, redis_url, prefix, mq):
    kernel = mq_kernel()
    kept = enqueue("/t/ok", {"n": 100}, kernel=kernel, msg_id="kept")
    result = enqueue_many(
        "/t/ok",
        [{"n": 1}, {"n": 2}, [3], {"n": 4}, {"n": 5}, {"n": 6}, {"n": 7}],
        msg_ids=["a", "b", "c", "a", "kept", "bad id!", None],
        redis_url=redis_url,  # another process's producer: no kernel, no signature check
        prefix=prefix,
    )
    assert [item.status for item in result.items] == [
        "enqueued",
        "enqueued",
        "invalid",
        "duplicate",
        "exists",
        "invalid",
        "enqueued",
    ]
    assert result.summary() == {"enqueued": 3, "exists": 1, "duplicate": 1, "invalid": 2} and not result.ok
    assert result.items[2].errors == [{"param": "params", "reason": "expected an object"}]
    assert result.items[3].reason == "same msg_id as message 0"
    assert "bad msg_id" in result.items[5].reason and result.items[5].as_dict()["msg_id"] == "bad id!"
    generated = result.msg_ids[6]
    assert result.msg_ids[:3] == ["a", "b", None] and len(generated) == 32
    # an id already kept is left alone (idempotent): its params are the first send's
    assert get_message(kept, kernel=kernel)["params"] == {"n": 100}
    assert mq.counts(kernel, "/t/ok")["queued"] == 4 and mq.counts(kernel, "/t/ok")["enqueued_total"] == 4
    # sending the same batch again stores nothing new
    again = enqueue_many("/t/ok", [{"n": 1}, {"n": 2}], msg_ids=["a", "b"], redis_url=redis_url, prefix=prefix)
    assert again.summary()["exists"] == 2 and mq.counts(kernel, "/t/ok")["queued"] == 4
    kernel.startup()
    for msg_id, n in (("a", 1), ("b", 2), (generated, 7), (kept, 100)):
        mq.wait_for(lambda msg_id=msg_id: get_message(msg_id, kernel=kernel)["state"] == "finished")
        message = get_message(msg_id, kernel=kernel)
        assert message["result"]["double"] == 2 * n and message["attempts"] == 1
    assert kernel.test_handlers.seen.count({"n": 1}) == 1  # the duplicate ran once


def test_a_delayed_batch_is_scheduled_and_a_big_one_is_cut_into_scripts(mq_kernel, redis_url, prefix, mq):
    kernel = mq_kernel()
    delayed = enqueue_many("/t/ok", [{"n": i} for i in range(3)], delay=60, ttl=5, retries=1, kernel=kernel)
    message = get_message(delayed.msg_ids[0], kernel=kernel)
    assert message["state"] == "scheduled" and message["due_at"] - message["enqueued_at"] == 60_000
    assert message["ttl"] == 5000 and message["retries"] == 1 and message["topic"] == "/t/ok"
    big = enqueue_many("/t/ok", [{"n": i} for i in range(2300)], kernel=kernel)  # three scripts, one pipeline
    assert big.summary()["enqueued"] == 2300 and len(set(big.msg_ids)) == 2300
    assert mq.counts(kernel, "/t/ok")["queued"] == 2300 and mq.counts(kernel, "/t/ok")["scheduled"] == 3
    assert get_message(big.msg_ids[-1], kernel=kernel)["params"] == {"n": 2299}


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("bad topic", [{}]), "bad topic"),
        (("/t/ok", {"n": 1}), "params_list must be a list"),
        (("/t/ok", [{}], {"msg_ids": ["a", "b"]}), "msg_ids must be a list as long as params_list"),
        (("/t/ok", [{}], {"msg_ids": {"a": 1}}), "msg_ids must be a list"),
        (("/t/ok", [{}], {"delay": float("inf")}), "delay must be a number"),
    ],
)
def test_a_bad_batch_is_refused_whole(mq_kernel, mq, arguments, match):
    kernel = mq_kernel()
    topic, params_list, *options = arguments
    with pytest.raises(BadRequest, match=match):
        enqueue_many(topic, params_list, kernel=kernel, **(options[0] if options else {}))
    assert mq.counts(kernel, "/t/ok")["queued"] == 0


def test_one_round_trip_and_one_script_per_batch(make_kernel, mq, prefix):
    """INFO commandstats of a private Redis: a batch of 300 is one ENQUEUE_MANY + one MARK_READY."""
    server = RedisServer().start()
    try:
        kernel = make_kernel(
            plugins=[butterfly_mq.plugin, mq.Handlers()],
            settings={"mq.redis_url": server.url, "mq.prefix": prefix, "mq.consume": False},
        )
        client = kernel.extensions["mq"].client
        enqueue_many("/t/ok", [{"n": 0}], kernel=kernel)  # loads the scripts, registers the topic
        client.config_resetstat()
        result = enqueue_many("/t/ok", [{"n": i} for i in range(300)], kernel=kernel)
        stats = client.info("commandstats")
        assert result.summary()["enqueued"] == 300
        top_level = {name: row["calls"] for name, row in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval")}
        assert top_level == {"cmdstat_evalsha": 2}
        # inside the script: one HSETNX per message, one RPUSH and one HSET for all of them
        assert stats["cmdstat_hsetnx"]["calls"] == 300
        assert stats["cmdstat_rpush"]["calls"] == 1 and stats["cmdstat_hset"]["calls"] == 1
        assert "cmdstat_sadd" not in stats  # the registry write happens once per process
    finally:
        server.stop()


def test_each_message_is_checked_against_the_handler(make_kernel, redis_server, prefix, mq):
    router_plugin = pytest.importorskip("butterfly_router.plugin")
    kernel = make_kernel(
        plugins=[router_plugin, butterfly_mq.plugin],
        settings={
            "router.handlers_dir": str(HANDLERS),
            "router.static_dir": "",
            "mq.redis_url": redis_server.url,
            "mq.prefix": prefix,
            "mq.consume": False,
        },
    )
    result = enqueue_many("/demo_api/add", [{"a": 1}, {"a": "two"}, {"b": 2}, {"a": 3, "c": 1}], kernel=kernel)
    assert [item.status for item in result.items] == ["enqueued", "invalid", "invalid", "invalid"]
    assert [{e["param"] for e in item.errors} for item in result.invalid] == [{"a"}, {"a"}, {"c"}]
    assert all(item.reason for item in result.invalid)
    assert mq.counts(kernel, "/demo_api/add")["queued"] == 1


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_the_http_endpoint(mq_kernel, mq):
    kernel = mq_kernel(start=True, enqueue_many_max=4)
    # NOTE: an instance announces its topics with its first heartbeat, from its own thread
    # just after start-up; until then the reply would rightly warn that nobody consumes.
    mq.wait_for(lambda: consumers_of(kernel.extensions["mq"], "/t/ok"))
    client = Client(kernel)
    messages = [{"params": {"n": 1}, "msg_id": "h1"}, {"params": {"n": 2}, "msg_id": "h2"}, {"params": "x"}]
    reply = client.post(
        "/canghai/api/enqueue_many", json={"topic": "/t/ok", "messages": [*messages, {"msg_id": "h1"}]}
    ).json()
    assert reply["stat"] == "OK" and reply["consumers"] >= 1 and "warning" not in reply
    assert (reply["enqueued"], reply["invalid"], reply["duplicate"], reply["exists"]) == (2, 1, 1, 0)
    assert [row["status"] for row in reply["items"]] == ["enqueued", "enqueued", "invalid", "duplicate"]
    assert reply["items"][2] == {
        "index": 2,
        "msg_id": None,
        "status": "invalid",
        "reason": "params must be a JSON object with string keys",
        "errors": [{"param": "params", "reason": "expected an object"}],
    }
    mq.wait_for(lambda: get_message("h2", kernel=kernel)["state"] == "finished")
    too_many = client.post("/canghai/api/enqueue_many", json={"topic": "/t/ok", "messages": [{}] * 5})
    assert too_many.status == 400 and "enqueue_many_max" in too_many.headers["x-reason"]
    for bad in (
        {"topic": "/t/ok", "messages": {}},
        {"topic": "/t/ok", "messages": [{"params": {}, "extra": 1}]},
        {"topic": "/t/ok", "messages": [[1]]},
        {"topic": "/t/ok", "messages": [], "x": 1},
        {"topic": "/t/ok"},
        {"topic": "bad", "messages": []},
        {"topic": "/t/ok", "messages": [{"msg_id": 7}], "delay": -1},
    ):
        assert client.post("/canghai/api/enqueue_many", json=bad).status == 400, bad
    assert client.get("/canghai/api/enqueue_many").status == 405
    remote = client.post(
        "/canghai/api/enqueue_many", json={"topic": "/t/ok", "messages": []}, remote_addr="203.0.113.9"
    )
    assert remote.status == 403
    orphan = client.post("/canghai/api/enqueue_many", json={"topic": "/nobody/home", "messages": [{}]}).json()
    assert orphan["consumers"] == 0 and "no live instance consumes" in orphan["warning"]
    route = kernel.routes.lookup("/canghai/api/enqueue_many")
    body = route.meta["openapi"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["messages"]["maxItems"] == 4 and body["required"] == ["topic", "messages"]


@pytest.fixture
def cli_env(monkeypatch, redis_url, prefix, tmp_path):
    """The CLI with only the MQ plugin, on this test's Redis and prefix."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "router,trace,store,ruqi,wuxing,auth,xingqiao")
    monkeypatch.setenv("BUTTERFLY_MQ_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTERFLY_MQ_PREFIX", prefix)
    return redis_url, prefix


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_the_cli_reads_json_lines_from_a_file_or_stdin(cli_env, capsys, tmp_path, monkeypatch):
    redis_url, prefix = cli_env
    lines = tmp_path / "messages.jsonl"
    lines.write_text('{"n": 1}\n\n{"n": 2}\nnot json\n[1]\n{"n": 3}\n', encoding="utf-8")
    assert main(["mq", "enqueue-many", "/app/batch", str(lines), "--batch", "2"]) == 1  # two bad lines
    out, err = capsys.readouterr()
    assert out.strip() == "/app/batch: 3 enqueued, 0 exists, 0 duplicate, 2 invalid"
    assert "line 4: not JSON" in err and "line 5: ERR_BAD_PARAMS: params must be a JSON object" in err
    assert "no live instance consumes /app/batch" in err

    envelopes = '{"msg_id": "e1", "params": {"n": 1}}\n{"msg_id": "e1", "params": {"n": 9}}\n{"params": {}}\n'
    monkeypatch.setattr("sys.stdin", io.StringIO(envelopes))
    assert main(["mq", "enqueue-many", "/app/batch", "-", "--envelope", "--ids", "--delay", "30"]) == 0
    out, err = capsys.readouterr()
    ids = out.splitlines()
    assert ids[:2] == ["e1", "e1"] and len(ids[2]) == 32
    assert "/app/batch: 2 enqueued, 0 exists, 1 duplicate, 0 invalid" in err
    message = get_message("e1", redis_url=redis_url, prefix=prefix)
    assert message["params"] == {"n": 1} and message["state"] == "scheduled"

    assert main(["mq", "enqueue-many", "/app/batch", str(tmp_path / "missing.jsonl")]) == 1
    assert "cannot read" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO('{"msg_id": "x", "extra": 1}\n'))
    assert main(["mq", "enqueue-many", "/app/batch", "-", "--envelope"]) == 1
    assert 'expected {"params"' in capsys.readouterr().err
    status = json.loads((main(["mq", "status", "--json"]), capsys.readouterr().out)[1])
    assert next(q for q in status["queues"] if q["name"] == "/app/batch")["queued"] == 3
