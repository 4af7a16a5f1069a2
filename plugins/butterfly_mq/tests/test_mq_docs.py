"""docs/mq.md, executed: its Python example, its commands and its curl, against a real
redis-server and a live server (real waitress)."""

from __future__ import annotations

import ast
import io
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

import butterfly_mq.plugin
from kernel import Response, hookimpl
from kernel.cli import main
from kernel.testing import RedisServer

DOC = Path(__file__).resolve().parents[3] / "docs" / "mq.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)\n```", re.DOTALL)
DOC_URL = "redis://mq:6379/0"


def blocks(language: str) -> list[str]:
    return [text for lang, text in BLOCK.findall(DOC.read_text(encoding="utf-8")) if lang == language]


def test_the_python_example_prints_what_its_comments_say():
    server = RedisServer().start()  # NOTE: its own server: the example uses the default key prefix
    try:
        source = blocks("python")[0].replace(DOC_URL, server.url)
        call, _, checks = source.partition("\nresult.summary()")
        namespace: dict = {}
        exec(compile(call, str(DOC), "exec"), namespace)
        for line in ("result.summary()" + checks).splitlines():
            expression, _, shown = line.partition("#")
            assert eval(expression, namespace) == ast.literal_eval(shown.strip()), line
    finally:
        server.stop()


class Billing:
    """``/billing/charge`` so the doc's topic has a live consumer."""

    @hookimpl
    def butterfly_register_routes(self, register):
        register("/billing/charge", lambda request: Response.json({"stat": "OK"}), kind="json", meta={"mq_topic": True})


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_the_commands_and_the_curl(make_kernel, live_server, redis_url, prefix, tmp_path, monkeypatch, capsys, mq):
    kernel = make_kernel(
        plugins=[butterfly_mq.plugin, Billing()],
        settings={"mq.redis_url": redis_url, "mq.prefix": prefix, "mq.heartbeat_interval": 0.5},
    )
    kernel.startup()
    server = live_server(kernel)
    mq.wait_for(lambda: kernel.extensions["mq"].registry_list())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "router,trace,store,ruqi,wuxing,auth,xingqiao")
    monkeypatch.setenv("BUTTERFLY_MQ_REDIS_URL", redis_url)
    monkeypatch.setenv("BUTTERFLY_MQ_PREFIX", prefix)
    (tmp_path / "orders.jsonl").write_text('{"order": 1}\n{"order": 2}\n', encoding="utf-8")
    (tmp_path / "orders-with-ids.jsonl").write_text('{"params": {"order": 3}, "msg_id": "o3"}\n', encoding="utf-8")
    commands, curl_and_reply = blocks(""), None
    for block in commands:
        if block.startswith("curl "):
            curl_and_reply = block
            continue
        for line in block.splitlines():
            if not line.startswith(("butterfly ", "cat ")):
                continue
            words = shlex.split(line.split("  #")[0])
            if words[0] == "cat":
                monkeypatch.setattr("sys.stdin", io.StringIO((tmp_path / words[1]).read_text()))
                words = words[words.index("|") + 1 :]
            assert main(words[1:]) == 0, line
            out, err = capsys.readouterr()
            assert re.search(r"/billing/charge: \d+ enqueued, \d+ exists, 0 duplicate, 0 invalid", out + err), out + err
    assert curl_and_reply is not None
    reply_text = next(text for text in blocks("json") if '"enqueue' in text or '"items"' in text)
    argv = shlex.split(curl_and_reply.replace("\\\n", " ").replace("http://127.0.0.1:8585", server.url))
    answer = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout)
    assert answer == json.loads(reply_text)


def console_block(marker: str) -> tuple[str, str]:
    """``(command, expected output)`` of the ``console`` block whose command holds ``marker``."""
    for text in blocks("console"):
        command, _, output = text.partition("\n")
        if marker in command:
            return command.removeprefix("$ "), output
    raise AssertionError(f"docs/mq.md has no console block running {marker!r}")


@pytest.mark.parametrize("redis_mode", ["direct"], indirect=True)
def test_the_pause_facts_of_one_queue(make_kernel, live_server, redis_url, prefix, mq):
    """The doc's three instances, one with ``[mq] paused = ["/billing/charge"]``: the curl
    answers what the doc shows (the instance names are the test's own)."""
    settings = {"mq.redis_url": redis_url, "mq.prefix": prefix, "mq.heartbeat_interval": 0.5}
    web_1, web_2, web_3 = (
        make_kernel(plugins=[butterfly_mq.plugin, Billing()], settings={**settings, **extra})
        for extra in ({}, {"mq.paused": ["/billing/charge"]}, {})
    )
    for kernel in (web_1, web_2, web_3):
        kernel.startup()
    names = [kernel.extensions["mq"].name for kernel in (web_1, web_2, web_3)]
    mq.wait_for(lambda: len([i for i in web_1.extensions["mq"].registry_list() if i["alive"]]) == 3)
    mq.wait_for(lambda: _paused_by(web_1) == [names[1]])
    server = live_server(web_1)
    command, output = console_block("/canghai/api/queue?queue=")
    run = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.replace("http://127.0.0.1:8585", server.url)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    shown, answered = ast.literal_eval(output.strip()), ast.literal_eval(run.stdout.strip())
    assert list(answered) == list(shown)
    assert {key: answered[key] for key in ("paused", "paused_cluster", "consumers")} == {
        key: shown[key] for key in ("paused", "paused_cluster", "consumers")
    }
    assert answered["paused_on"] == [names[1]] and len(shown["paused_on"]) == 1
    assert sorted(answered["consumed_on"]) == sorted([names[0], names[2]]) and len(shown["consumed_on"]) == 2


def _paused_by(kernel) -> list[str]:
    from butterfly_mq.dashboard import pause_facts

    return pause_facts("/billing/charge", False, kernel.extensions["mq"].registry_list())["paused_on"]
