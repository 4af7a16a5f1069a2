"""Fixtures for xingqiao's tests: kernels with store + router + trace + MQ + xingqiao on real parts.

Tasks run on a private redis-server (``redis_server``), under a key prefix of each
test; jobs live in SQLite, PostgreSQL or MariaDB scratch databases
(``butterfly_store.testing``). The handler app ``xq_apps/xq_test`` counts every run
in a Redis hash, so tests see what ran and how often.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

APPS = Path(__file__).with_name("xq_apps")
#: seconds, not minutes: leases, sweeps and backoffs happen within a test
FAST = {
    "mq.lease": 1.5,
    "mq.heartbeat_interval": 0.5,
    "mq.cleanup_interval": 1.0,
    "mq.poll_max_interval": 0.1,
    "mq.workers": 4,
    "mq.batch_size": 8,
    "xingqiao.sweep_interval": 0.2,
    "xingqiao.repair_after": 2.0,
    "xingqiao.backoff_base": 0.05,
    "xingqiao.backoff_max": 0.2,
}
ENDED = ("finished", "failed", "canceled")


def plugin_modules() -> list:
    """The plugins a xingqiao kernel needs (entry points are off in tests)."""
    import butterfly_mq.plugin
    import butterfly_router.plugin
    import butterfly_store.plugin
    import butterfly_trace.plugin
    import butterfly_xingqiao.plugin

    return [
        butterfly_store.plugin,
        butterfly_router.plugin,
        butterfly_trace.plugin,
        butterfly_mq.plugin,
        butterfly_xingqiao.plugin,
    ]


def settings_for(store_url: str, redis_url: str, prefix: str, handlers_dir: Path = APPS, **extra) -> dict:
    """Kernel settings for one instance of a test's cluster."""
    return {
        "store.url": store_url,
        "router.handlers_dir": str(handlers_dir),
        "mq.redis_url": redis_url,
        "mq.prefix": prefix,
        **FAST,
        **extra,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, scratch_databases, tmp_path) -> str:
    """SQLite and PostgreSQL (the server one is a per-session scratch database)."""
    return scratch_databases.url(request.param, tmp_path)


@pytest.fixture
def prefix() -> str:
    """An MQ key prefix of this test alone."""
    return f"xqt{uuid.uuid4().hex[:8]}"


@pytest.fixture
def counter_key(prefix) -> str:
    """The Redis hash the test handlers count runs in."""
    return f"{prefix}:runs"


@pytest.fixture
def counter(redis_server, monkeypatch):
    """A Redis client on the tests' redis-server; the test handlers use the same server."""
    import redis

    monkeypatch.setenv("XQ_TEST_REDIS_URL", redis_server.url)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def xq_kernel(make_kernel, redis_server, prefix, counter):
    """Factory: ``xq_kernel(store_url, start=True, **settings)`` → a kernel (started unless told)."""

    def factory(store_url: str, start: bool = True, **settings):
        values = settings_for(
            store_url, redis_server.url, prefix, **{k.replace("__", "."): v for k, v in settings.items()}
        )
        kernel = make_kernel(plugins=plugin_modules(), settings=values)
        if start:
            kernel.startup()
        return kernel

    return factory


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")


def wait_job(kernel, job_id: int, timeout: float = 30.0) -> dict:
    """The job's detail once it ended (finished, failed or canceled)."""
    from butterfly_xingqiao import jobs

    state = kernel.extensions["xingqiao"]

    def ended():
        detail = jobs.get_job_detail(state, job_id)
        return detail if detail["job_status"] in ENDED else None

    return wait_for(ended, timeout)


def transitions(kernel, job_id: int) -> list[tuple[int, int, str]]:
    """``(task_index, attempt, to_status)`` of every recorded transition of a job."""
    from butterfly_xingqiao import jobs

    return [
        (row["task_index"], row["attempt"], row["to"])
        for row in jobs.get_transitions(kernel.extensions["xingqiao"], job_id)
    ]


@pytest.fixture
def xq():
    """Helpers: ``wait_for``, ``wait_job``, ``transitions``."""
    import types

    return types.SimpleNamespace(wait_for=wait_for, wait_job=wait_job, transitions=transitions)


NUTCRACKER = "/usr/sbin/nutcracker"


class Twemproxy:
    """``nutcracker`` in front of two private redis-servers (``hash_tag: "{}"``), as the MQ supports."""

    def __init__(self) -> None:
        from kernel.testing import RedisServer, free_port

        self.backends = [RedisServer().start(), RedisServer().start()]
        self.port = free_port()
        self.stats_port = free_port()
        self.process = None

    @property
    def url(self) -> str:
        """The proxy's ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, work_dir: Path) -> Twemproxy:
        """Write its yml, start it, wait until a PING goes through."""
        import subprocess

        from butterfly_mq.connection import connect

        servers = "\n".join(f"    - 127.0.0.1:{backend.port}:1" for backend in self.backends)
        config = work_dir / "nutcracker.yml"
        config.write_text(
            f'xq:\n  listen: 127.0.0.1:{self.port}\n  hash: fnv1a_64\n  hash_tag: "{{}}"\n'
            f"  distribution: ketama\n  auto_eject_hosts: false\n  redis: true\n  servers:\n{servers}\n"
        )
        self.process = subprocess.Popen(
            [NUTCRACKER, "-c", str(config), "-s", str(self.stats_port), "-o", str(work_dir / "nutcracker.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = connect(self.url, socket_timeout=1)
        wait_for(lambda: _pings(client), timeout=10)
        return self

    def stop(self) -> None:
        """Stop the proxy and its servers."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        for backend in self.backends:
            backend.stop()


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def twemproxy(tmp_path):
    """A Twemproxy with two Redis servers behind it, for one test."""
    if not Path(NUTCRACKER).exists():
        pytest.fail("nutcracker is missing: apt-get install nutcracker")
    proxy = Twemproxy().start(tmp_path)
    yield proxy
    proxy.stop()
