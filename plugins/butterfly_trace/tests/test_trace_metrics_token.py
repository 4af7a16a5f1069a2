"""``[trace] metrics_token``: a scraper reads ``/_trace/metrics`` with a bearer token, and
nothing else; real waitress, with and without the auth plugin."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

import butterfly_trace.plugin as trace_plugin
from kernel import ConfigError
from kernel.testing import Client

from .conftest import TraceTestApp

TOKEN = "scrape-4f1c9a7e2b6d8c03"

# -- a strict reader of the Prometheus text exposition format 0.0.4 -------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)")
_HELP = re.compile(rf"# HELP ({_NAME}) (.*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def parse_prometheus(text: str) -> dict[str, dict]:
    """Families → {"type", "samples": [(name, labels, value)]}; raises on anything off-spec."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, dict] = {}
    current = None
    for line in text[:-1].split("\n"):
        if match := _HELP.fullmatch(line):
            assert match[1] not in families or not families[match[1]]["samples"], f"HELP after samples: {line}"
            continue
        if match := _TYPE.fullmatch(line):
            assert match[1] not in families, f"second TYPE: {line}"
            current = families[match[1]] = {"type": match[2], "samples": []}
            current["name"] = match[1]
            continue
        assert not line.startswith("#"), f"bad comment line: {line!r}"
        match = _SAMPLE.fullmatch(line)
        assert match, f"bad sample line: {line!r}"
        name, labels_text, value_text = match.groups()
        assert current is not None, f"sample before any TYPE: {line}"
        suffixes = _SUFFIXES.get(current["type"], ("",))
        assert any(name == current["name"] + suffix for suffix in suffixes), f"{name} outside its family"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels_text or ""))
        value = float(value_text)  # "+Inf", "NaN" and decimals are all valid floats
        current["samples"].append((name, labels, value))
    for family in families.values():
        if family["type"] == "histogram":
            check_histogram(family)
    return families


def check_histogram(family: dict) -> None:
    name = family["name"]
    series: dict[tuple, list] = {}
    counts: dict[tuple, float] = {}
    for sample, labels, value in family["samples"]:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        if sample == name + "_bucket":
            series.setdefault(key, []).append((float(labels["le"]), value))
        elif sample == name + "_count":
            counts[key] = value
    for key, buckets in series.items():
        bounds = [bound for bound, _ in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1]), f"buckets of {key} must rise to +Inf"
        values = [value for _, value in buckets]
        assert values == sorted(values), f"buckets of {key} must be cumulative"
        assert values[-1] == counts[key], f"+Inf bucket of {key} must equal its count"


# -- the token ------------------------------------------------------------------------------


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def auth_server(make_kernel, live_server, tmp_path):
    """The trace plugin behind the real auth plugin (store on SQLite), on waitress."""
    # NOTE: siblings, not dependencies of this distribution: an unpacked sdist skips this
    auth_plugin = pytest.importorskip("butterfly_auth.plugin")
    store_plugin = pytest.importorskip("butterfly_store.plugin")
    settings = {
        "store.url": f"sqlite:///{tmp_path}/auth.sqlite",
        "auth.argon2_time_cost": 1,
        "auth.argon2_memory_kib": 1024,
        "auth.argon2_parallelism": 1,
        "trace.metrics_token": TOKEN,
    }
    kernel = make_kernel(plugins=[store_plugin, auth_plugin, trace_plugin, TraceTestApp()], settings=settings)
    return live_server(kernel)


def test_the_token_reads_metrics_and_nothing_else_behind_auth(auth_server):
    base = auth_server.url
    fetch(f"{base}/ok")
    status, text = fetch(f"{base}/_trace/metrics", TOKEN)
    assert status == 200
    families = parse_prometheus(text)
    assert families["butterfly_requests_total"]["type"] == "counter"
    assert ("butterfly_requests_total", {"path": "/ok", "method": "GET", "status": "200"}, 1.0) in families[
        "butterfly_requests_total"
    ]["samples"]
    assert families["butterfly_request_duration_seconds"]["type"] == "histogram"
    # the token grants nothing else: other admin routes, and a state change, are refused
    for path in ("/_trace/stacks", "/_trace/loglevel"):
        assert fetch(f"{base}{path}", TOKEN)[0] == 401
    post = urllib.request.Request(
        f"{base}/_trace/loglevel?level=DEBUG", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=30)
    assert refused.value.code in (401, 405)
    # without it, or with a wrong one, metrics stay admin-only (auth: sign in first)
    assert fetch(f"{base}/_trace/metrics")[0] == 401
    assert fetch(f"{base}/_trace/metrics", TOKEN[:-1] + "x")[0] == 401
    assert fetch(f"{base}/_trace/metrics", TOKEN + "x")[0] == 401


def test_without_auth_the_token_lets_a_remote_scraper_in(trace_kernel):
    client = Client(trace_kernel({"trace.metrics_token": TOKEN}))
    remote = "192.0.2.10"
    reply = client.get("/_trace/metrics", remote_addr=remote, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200
    parse_prometheus(reply.text)
    assert client.get("/_trace/metrics", remote_addr=remote).status == 403
    assert client.get("/_trace/metrics", remote_addr=remote, headers={"Authorization": "Bearer nope"}).status == 403
    assert client.get("/_trace/metrics", remote_addr=remote, headers={"Authorization": TOKEN}).status == 403
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/_trace/stacks", remote_addr=remote, headers=bearer).status == 403
    assert client.get("/_trace/metrics").status == 200  # loopback, as before


def test_no_token_setting_means_admin_only_as_before(trace_kernel):
    client = Client(trace_kernel())
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/_trace/metrics", remote_addr="192.0.2.10", headers=bearer).status == 403
    parse_prometheus(client.get("/_trace/metrics").text)


@pytest.mark.parametrize("bad", ["short", "has space in it 1234", "é" * 20])
def test_a_weak_or_odd_token_is_a_config_error(trace_kernel, bad):
    with pytest.raises(ConfigError, match="metrics_token"):
        trace_kernel({"trace.metrics_token": bad})


def test_butterfly_config_masks_the_token(tmp_path):
    env = {"BUTTERFLY_TRACE_METRICS_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [sys.executable, "-m", "kernel", "config", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert TOKEN not in shown.stdout + shown.stderr
    assert "metrics_token" in shown.stdout
    json.loads(shown.stdout)
