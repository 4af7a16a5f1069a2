"""docs/workflows.md, executed: its config, workflow and plugin code, and every command it shows.

The commands run in order against a live server (real waitress, real redis-server,
SQLite) serving the repository's ``handlers/`` — the demo_workflow app included —
and their output is compared with the page's: job ids, statuses, stats, every
task row (label, route, status, tries) and the saved results.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
import types
from pathlib import Path

import pytest

from butterfly_xingqiao import jobs
from kernel.cli import main
from kernel.testing import Client

from .conftest import plugin_modules, settings_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "workflows.md"
MARK = re.compile(r"<!-- xingqiao-doc: (\S+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
TASK_ROW = re.compile(r"^(\S+)\s+(/\S+)\s+(waiting|pending|started|finished|failed|canceled)\s+(\d+)\s", re.MULTILINE)
JOB_ROW = re.compile(r"^(\d+)\s+(\S+)\s+(\w+)\s+(\d+/\d+)\s+(\S+)\s", re.MULTILINE)
TOKENS = re.compile(r"\bjob \d+\b|\bERR_[A-Z_]+\b|ret_stat=\S+|tasks \d+/\d+|\(\d+ tasks\)|\bretried=\d+|\d+ job\(s\)")


def doc_blocks() -> dict[str, tuple[str, str]]:
    """``{name: (language, text)}`` of every marked block."""
    return {name: (language, text) for name, language, text in MARK.findall(DOC.read_text(encoding="utf-8"))}


def commands(text: str) -> list[tuple[str, str]]:
    """``[(command, shown output)]`` of a console block."""
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], ""))
        else:
            command, shown = found[-1]
            found[-1] = (command, shown + line + "\n")
    return found


def saved_json(text: str):
    """The JSON object printed after a job's task table (``ret_data``), paths left out."""
    start = text.find("\n{")
    if start < 0:
        return None
    data = json.loads(text[start:])
    for value in data.values():
        if isinstance(value, dict):
            value.pop("report", None)
    return data


def test_the_documented_workflow_is_the_demo_app():
    language, text = doc_blocks()["workflows.py"]
    assert language == "python"
    demo = (REPO / "handlers" / "demo_workflow" / "workflows.py").read_text(encoding="utf-8")
    body = text.split("\n\n\n", 1)[1]  # after the import
    assert body in demo


@pytest.fixture
def doc_server(make_kernel, tmp_path, live_server, redis_server, prefix, counter, monkeypatch):
    blocks = doc_blocks()
    config = tomllib.loads(blocks["config"][1])
    assert config["mq"]["redis_url"].startswith("redis://")
    plugin = types.ModuleType("xingqiao_doc_plugin")
    exec(compile(blocks["plugin"][1], str(DOC), "exec"), plugin.__dict__)
    settings = settings_for(f"sqlite:///{tmp_path}/doc.sqlite", redis_server.url, prefix, REPO / "handlers")
    kernel = make_kernel(plugins=[*plugin_modules(), plugin], settings=settings)
    server = live_server(kernel)
    monkeypatch.setenv("BUTTERFLY_URL", server.url)
    monkeypatch.delenv("BUTTERFLY_TOKEN", raising=False)
    return kernel, server


def test_every_documented_command_does_what_the_page_shows(doc_server, tmp_path, capsys):
    kernel, server = doc_server
    blocks = doc_blocks()
    ran = 0
    for name in ("cli-run", "curl-run", "cli-watch", "cli-retry"):
        language, text = blocks[name]
        assert language == "console"
        for command, shown in commands(text):
            argv = shlex.split(command)
            if argv[0] == "butterfly":
                code = main(argv[1:])
                captured = capsys.readouterr()
                output = captured.out + captured.err
                failed = re.search(r"^job \d+ \S+ (failed|canceled)", shown, re.MULTILINE)
                assert code == (1 if failed else 0), (command, output)
                assert set(TOKENS.findall(shown)) <= set(TOKENS.findall(output)), (command, output)
                assert TASK_ROW.findall(output) == TASK_ROW.findall(shown), (command, output)
                assert JOB_ROW.findall(output) == JOB_ROW.findall(shown), (command, output)
                assert saved_json(output) == saved_json(shown), (command, output)
            elif argv[0] == "curl":
                argv = [arg.replace("http://127.0.0.1:8585", server.url) for arg in argv]
                reply = json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout)
                expected = json.loads(shown)
                assert reply["stat"] == expected["stat"] and reply.get("errors") == expected.get("errors"), reply
                assert (reply.get("job_id"), reply.get("tasks")) == (expected.get("job_id"), expected.get("tasks"))
            else:
                assert argv[0] in ("mkdir", "touch", "rm")
                subprocess.run(argv, cwd=tmp_path, check=True, timeout=10)
            ran += 1
    assert ran == 11
    # the plugin's workflow from the page runs too, and the page it mentions is served
    state = kernel.extensions["xingqiao"]
    job_id = jobs.create_job(state, "ping_twice")["job_id"]
    from .conftest import wait_job

    detail = wait_job(kernel, job_id)
    assert detail["job_status"] == "finished" and set(detail["ret_data"]["ping_2"]) == {"randstr"}
    assert Client(kernel).get("/xingqiao/").status == 200
    assert (tmp_path / "data" / "demo_workflow" / "report.txt").read_text() == "word count\n6 words\n"
