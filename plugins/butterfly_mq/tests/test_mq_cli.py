"""``butterfly mq enqueue|status|requeue|doctor`` through the real CLI entry point."""

from __future__ import annotations

import json

import pytest

from butterfly_mq import get_message
from butterfly_mq.doctor import proxy_config_warnings
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
    assert capsys.readouterr().out.strip() == "cli-1"
    message = get_message("cli-1", redis_url=redis_url, prefix=prefix)
    # k:=json is JSON, k=v a string (as in `butterfly call`), and k=v words win over --json-params
    assert message["params"] == {"n": 3, "name": "bob", "s": "3", "tags": ["a"]} and message["state"] == "queued"
    assert main(["mq", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert next(q for q in status["queues"] if q["name"] == "/app/job")["queued"] == 1
    assert main(["mq", "status"]) == 0
    assert "/app/job" in capsys.readouterr().out
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


def test_doctor_passes_on_the_endpoint(cli_env, capsys):
    assert main(["mq", "doctor"]) == 0
    out = capsys.readouterr().out
    assert "MISSING" not in out and "commands inside Lua" in out and "all commands supported" in out


def test_doctor_reports_a_dead_endpoint_and_bad_proxy_config(tmp_path, capsys):
    from kernel.testing import free_port

    assert main(["mq", "doctor", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]) == 1
    assert "MISSING  PING" in capsys.readouterr().out
    yml = tmp_path / "nutcracker.yml"
    yml.write_text("mq:\n  listen: 127.0.0.1:22121\n  auto_eject_hosts: true\n  servers:\n   - 127.0.0.1:6379:1\n")
    warnings = proxy_config_warnings(yml)
    assert any("auto_eject_hosts" in w for w in warnings) and any("hash_tag" in w for w in warnings)
