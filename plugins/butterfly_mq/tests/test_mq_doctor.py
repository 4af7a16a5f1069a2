"""``butterfly mq doctor`` against the real thing: a redis-server, a 3-master Redis Cluster,
and nutcracker in front of two redis-servers with and without ``hash_tag``."""

from __future__ import annotations

import pytest

from kernel.cli import main
from kernel.testing import free_port

OTHERS = "router,trace,store,ruqi,wuxing,auth"
#: A row for each of the MQ's Lua scripts, run for real.
SCRIPT_ROWS = (
    "ENQUEUE + MARK_READY",
    "READY",
    "POP",
    "RENEW",
    "FINISH (retry)",
    "RECOVER",
    "COUNTS",
    "PAGE",
    "ENQUEUE_MANY",
    "EMPTY",
)


@pytest.fixture
def doctor(monkeypatch, tmp_path, capsys):
    """Run ``butterfly mq doctor ARGS`` with only the MQ plugin; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", OTHERS)

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = main(["mq", "doctor", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_single_redis_passes_with_every_script_run(doctor, redis_server):
    code, out, _ = doctor(env={"BUTTERFLY_MQ_REDIS_URL": redis_server.url})
    assert code == 0, out
    assert "mode: single" in out and "all checks passed" in out and "FAILED" not in out
    for row in SCRIPT_ROWS:
        assert f"ok      script {row}" in out
    assert "ok      commands inside Lua" in out and "ok      keys of one queue on one server" in out
    assert "pick-up: the bell" in out
    assert "ok      script ENQUEUE_MARKED" in out and "enqueue: one script per message" in out


def test_cluster_passes_and_a_missing_cluster_flag_fails(doctor, redis_cluster):
    code, out, _ = doctor(env={"BUTTERFLY_MQ_REDIS_URL": redis_cluster.url, "BUTTERFLY_MQ_REDIS_CLUSTER": "true"})
    assert code == 0, out
    assert "mode: cluster (3 masters, cluster_state ok)" in out and out.count("cluster_state ok") >= 4
    code, out, _ = doctor("--redis-url", redis_cluster.url)  # the same node, but not said to be a cluster
    assert code == 1
    assert "FAILED  mode matches [mq] redis_cluster" in out and "set [mq] redis_cluster = true" in out


def test_twemproxy_with_hash_tag_passes_and_every_backend_is_asked(doctor, twemproxy, prefix):
    from butterfly_mq import enqueue

    enqueue("/doctor_test/job", {}, redis_url=twemproxy.url, prefix=prefix)
    code, out, _ = doctor(
        "--redis-url", twemproxy.url, "--prefix", prefix, "--proxy-config", str(twemproxy.config_path)
    )
    assert code == 0, out
    assert "mode: proxy" in out and "ok      proxy config (pool mq" in out
    assert "ok      each queue's keys on one backend (asked every backend)" in out
    assert "ok      every registered queue answers (1)" in out
    assert "pick-up: polling — the endpoint refuses XREAD BLOCK" in out


def test_twemproxy_without_hash_tag_fails_with_and_without_its_config(doctor, twemproxy_without_hash_tag):
    proxy = twemproxy_without_hash_tag
    code, out, _ = doctor("--redis-url", proxy.url)
    assert code == 1
    assert "FAILED  keys of one queue on one server" in out and "split across servers" in out
    code, out, _ = doctor("--redis-url", proxy.url, "--proxy-config", str(proxy.config_path))
    assert code == 1
    assert 'hash_tag is None, not "{}"' in out
    assert "FAILED  each queue's keys on one backend (asked every backend)" in out


def test_auto_eject_hosts_is_a_problem(doctor, twemproxy, tmp_path):
    config = tmp_path / "ejecting.yml"
    config.write_text(twemproxy.config_path.read_text().replace("auto_eject_hosts: false", "auto_eject_hosts: true"))
    code, out, _ = doctor("--redis-url", twemproxy.url, "--proxy-config", str(config))
    assert code == 1 and "auto_eject_hosts: true" in out


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "cannot read --proxy-config"),
        ("mq: [unclosed", "is not valid YAML"),
        ("other:\n  listen: 127.0.0.1:1\n", "no pool in"),
    ],
)
def test_bad_proxy_config_is_a_clear_error(doctor, twemproxy, tmp_path, content, message):
    path = tmp_path / "nutcracker.yml"
    if content is not None:
        path.write_text(content)
    code, out, err = doctor("--redis-url", twemproxy.url, "--proxy-config", str(path))
    assert code == 1 and message in err and "Traceback" not in err + out


def test_unreachable_endpoint_fails(doctor):
    code, out, _ = doctor("--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert code == 1 and "FAILED  endpoint answers PING" in out
