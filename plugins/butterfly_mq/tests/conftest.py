"""Fixtures for the MQ suite: real redis-server processes, a real Twemproxy, test handlers.

Every test gets its own key prefix, so tests share Redis servers without ever
flushing them.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis

import butterfly_mq.plugin
from butterfly_mq.connection import connect
from kernel import BadRequest, Response, hookimpl
from kernel.testing import RedisServer, free_port

NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
#: Settings in seconds so leases, heartbeats and cleanups happen within a test.
FAST = {
    "mq.lease": 1.5,
    "mq.heartbeat_interval": 0.5,
    "mq.cleanup_interval": 1.0,
    "mq.backoff_base": 0.05,
    "mq.poll_max_interval": 0.1,
    "mq.workers": 4,
    "mq.batch_size": 8,
}


class Twemproxy:
    """``nutcracker`` in front of two private redis-servers, ``hash_tag: "{}"``."""

    def __init__(self) -> None:
        self.backends = [RedisServer().start(), RedisServer().start()]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="butterfly-nutcracker-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Twemproxy:
        """Write the yml, start nutcracker, wait until it proxies a PING."""
        servers = "\n".join(f"    - 127.0.0.1:{b.port}:1" for b in self.backends)
        config = self.dir / "nutcracker.yml"
        config.write_text(
            f'mq:\n  listen: 127.0.0.1:{self.port}\n  hash: fnv1a_64\n  hash_tag: "{{}}"\n'
            f"  distribution: ketama\n  auto_eject_hosts: false\n  redis: true\n"
            f"  servers:\n{servers}\n"
        )
        self.process = subprocess.Popen(
            [NUTCRACKER, "-c", str(config), "-s", str(free_port()), "-o", str(self.dir / "nutcracker.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if connect(self.url, socket_timeout=1).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("nutcracker did not start")

    def stop(self) -> None:
        """Stop the proxy and its servers."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        for backend in self.backends:
            backend.stop()


@pytest.fixture(scope="session")
def twemproxy():
    """A session-wide Twemproxy with two Redis servers behind it."""
    if not Path(NUTCRACKER).exists():
        pytest.fail("nutcracker is missing: apt-get install nutcracker")
    proxy = Twemproxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture(params=["direct", "twemproxy"])
def redis_url(request, redis_server):
    """The Redis URL a test runs against: direct, or through Twemproxy."""
    if request.param == "direct":
        return redis_server.url
    return request.getfixturevalue("twemproxy").url


@pytest.fixture
def prefix():
    """A key prefix of this test alone."""
    return f"bct{uuid.uuid4().hex[:8]}"


def bind(func, params):
    """Bind ``params`` to ``func``'s signature like the router does (unknown → ERR_BAD_PARAMS)."""
    signature = inspect.signature(func)
    errors, values = [], {}
    for name in params:
        if name not in signature.parameters:
            errors.append({"param": name, "reason": "unknown parameter"})
    for name, parameter in signature.parameters.items():
        if name in params:
            try:
                kind = parameter.annotation
                values[name] = kind(params[name]) if kind in (int, float, str) else params[name]
            except (TypeError, ValueError):
                errors.append({"param": name, "reason": f"expected {parameter.annotation.__name__}"})
        elif parameter.default is inspect.Parameter.empty:
            errors.append({"param": name, "reason": "required"})
    if errors:
        raise BadRequest("bad params", data={"errors": errors})
    return values


def json_protocol(request, route):
    """A minimal stand-in for the router's JSON protocol (the router is another plugin)."""
    result = route.endpoint(**bind(route.endpoint, request.params))
    return Response.json(result if isinstance(result, dict) else {"stat": result})


class Handlers:
    """Test routes under ``/t/``; ``runs`` counts runs per message in Redis when ``counter_url`` is set."""

    def __init__(self, counter_url: str | None = None, counter_key: str = "runs") -> None:
        self.counter = connect(counter_url) if counter_url else None
        self.counter_key = counter_key
        self.seen: list[dict] = []

    @hookimpl
    def butterfly_register_routes(self, register):
        for name in ("ok", "biz", "boom", "slow", "count", "flaky"):
            register(f"/t/{name}", getattr(self, name), protocol=json_protocol, kind="json")

    def ok(self, n: int):
        self.seen.append({"n": n})
        return {"stat": "OK", "double": n * 2}

    def biz(self):
        return {"stat": "ERR_NOT_ALLOWED", "why": "business rule"}

    def boom(self):
        raise RuntimeError("kaboom")

    def slow(self, seconds: float, tag: str = ""):
        time.sleep(seconds)
        if self.counter is not None and tag:
            self.counter.hincrby(self.counter_key, tag, 1)
        return {"stat": "OK"}

    def count(self, tag: str):
        self.counter.hincrby(self.counter_key, tag, 1)
        return {"stat": "OK"}

    def flaky(self, fail_times: int, tag: str):
        runs = self.counter.hincrby(self.counter_key, tag, 1)
        if runs <= fail_times:
            raise RuntimeError(f"flaky failure {runs}")
        return {"stat": "OK", "runs": runs}


@pytest.fixture
def mq_kernel(make_kernel, redis_url, prefix):
    """Factory: a kernel with the MQ on ``redis_url`` and the ``/t/`` handlers; ``start=True`` starts it."""

    def factory(start: bool = False, handlers: Handlers | None = None, **settings):
        handlers = handlers or Handlers(redis_url, f"{prefix}:runs")
        values = {"mq.redis_url": redis_url, "mq.prefix": prefix, **FAST}
        values.update({f"mq.{key}": value for key, value in settings.items()})
        kernel = make_kernel(plugins=[butterfly_mq.plugin, handlers], settings=values)
        kernel.test_handlers = handlers
        if start:
            kernel.startup()
        return kernel

    return factory


@pytest.fixture
def mq():
    """Helpers: ``mq.wait_for(pred)``, ``mq.counts(kernel, topic)``, ``mq.queue(kernel, topic)``."""
    import types

    return types.SimpleNamespace(wait_for=wait_for, counts=counts, queue=queue_of, Handlers=Handlers)


def queue_of(kernel, topic):
    """The :class:`Queue` of ``topic`` on the kernel's MQ."""
    from butterfly_mq.queue import Queue

    service = kernel.extensions["mq"]
    return Queue(service.client, topic, service.config.prefix)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")


def counts(kernel, topic):
    """The queue's counts row."""
    from butterfly_mq.queue import Queue

    service = kernel.extensions["mq"]
    return Queue(service.client, topic, service.config.prefix).counts()


def dumps(value) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))
