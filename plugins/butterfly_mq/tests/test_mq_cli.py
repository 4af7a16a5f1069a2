"""``butterfly mq enqueue|status|requeue`` through the real CLI entry point (doctor: test_mq_doctor.py)."""

from __future__ import annotations

import json

import pytest

from butterfly_mq import get_message
from kernel.cli import main

OTHERS = "router,trace,store,ruqi,wuxing,auth"


@pytest.fixture
def cli_env(monkeypatch, redis_url, prefix, tmp_path):
    """The CLI with only the MQ plugin, on this test's Redis and prefix."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", OTHERS)
    monkeypatch.setenv("BUTTERFLY_MQ_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTERFLY_MQ_PREFIX", prefix)
    return redis_url, prefix


def test_enqueue_status_requeue(cli_env, capsys):
    redis_url, prefix = cli_env
    argv = ["mq", "enqueue", "/app/job", "n:=3", "name=bob", "--json-params", '{"tags": ["a"], "n": 0}']
    assert main([*argv, "--msg-id", "cli-1", "s=3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "cli-1"
    # nobody consumes /app/job: accepted, with a warning
    assert "warning: no live instance consumes /app/job" in err
    message = get_message("cli-1", redis_url=redis_url, prefix=prefix)
    # k:=json is JSON, k=v a string (as in `butterfly call`), and k=v words win over --json-params
    assert message["params"] == {"n": 3, "name": "bob", "s": "3", "tags": ["a"]} and message["state"] == "queued"
    assert main(["mq", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert next(q for q in status["queues"] if q["name"] == "/app/job")["queued"] == 1
    assert main(["mq", "status"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("/app/job"))
    assert line.endswith("NO CONSUMER")
    assert main(["mq", "requeue", "cli-1"]) == 1  # queued: nothing to requeue
    assert "only finished, failed, dead" in capsys.readouterr().err
    assert main(["mq", "requeue", "nope"]) == 1


def test_enqueue_rejects_bad_input(cli_env, capsys):
    assert main(["mq", "enqueue", "/app/job", "novalue"]) == 2  # not a route here: no signature to bind to
    assert "bad parameter 'novalue' for /app/job: expected key=value or key:=json" in capsys.readouterr().err
    assert main(["mq", "enqueue", "/app/job", "a:={bad"]) == 2
    assert "bad JSON for parameter 'a'" in capsys.readouterr().err
    assert main(["mq", "enqueue", "bad topic"]) == 1
    assert "bad topic" in capsys.readouterr().err
