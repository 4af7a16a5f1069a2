"""Fixtures for the MQ suite: a real redis-server, Twemproxy and Redis Cluster, test handlers.

Every test gets its own key prefix, so tests share Redis servers without ever
flushing them.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid

import pytest

import butterfly_mq.plugin
from butterfly_mq.connection import connect
from kernel import BadRequest, Response, hookimpl

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
#: The Redis topologies every core test runs against (butterfly_mq.testing starts them).
MODES = ["direct", "twemproxy", "cluster"]


@pytest.fixture(params=MODES)
def redis_mode(request):
    """``direct`` (one redis-server), ``twemproxy`` (nutcracker, two servers) or ``cluster`` (3 masters)."""
    return request.param


@pytest.fixture
def redis_url(request, redis_mode, monkeypatch):
    """The URL a test runs against; for the cluster, ``BUTTERFLY_MQ_REDIS_CLUSTER`` is set too."""
    if redis_mode == "direct":
        return request.getfixturevalue("redis_server").url
    if redis_mode == "twemproxy":
        return request.getfixturevalue("twemproxy").url
    monkeypatch.setenv("BUTTERFLY_MQ_REDIS_CLUSTER", "true")
    return request.getfixturevalue("redis_cluster").url


@pytest.fixture
def redis_cluster_mode(redis_mode):
    """True when the test runs on the Redis Cluster."""
    return redis_mode == "cluster"


@pytest.fixture
def redis_client(redis_url, redis_cluster_mode):
    """A client of the test's endpoint (a cluster client on the cluster)."""
    client = connect(redis_url, cluster=redis_cluster_mode)
    yield client
    client.close()


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

    def __init__(self, counter_url: str | None = None, counter_key: str = "runs", cluster: bool = False) -> None:
        self.counter = connect(counter_url, cluster=cluster) if counter_url else None
        self.counter_key = counter_key
        self.seen: list[dict] = []

    @hookimpl
    def butterfly_register_routes(self, register):
        for name in ("ok", "biz", "boom", "slow", "count", "flaky"):
            # NOTE: a plugin's own routes are topics only when it asks (the user's apps always are)
            register(f"/t/{name}", getattr(self, name), protocol=json_protocol, kind="json", meta={"mq_topic": True})

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
def mq_kernel(make_kernel, redis_url, redis_cluster_mode, prefix):
    """Factory: a kernel with the MQ on ``redis_url`` and the ``/t/`` handlers; ``start=True`` starts it.

    ``plugins`` adds plugins (e.g. the router, for pages), ``other_settings`` their
    ``{"section.key": value}`` settings; other keyword arguments are ``[mq]`` settings.
    """

    def factory(start: bool = False, handlers: Handlers | None = None, plugins=(), other_settings=None, **settings):
        handlers = handlers or Handlers(redis_url, f"{prefix}:runs", cluster=redis_cluster_mode)
        values = {"mq.redis_url": redis_url, "mq.redis_cluster": redis_cluster_mode, "mq.prefix": prefix, **FAST}
        values.update({f"mq.{key}": value for key, value in settings.items()})
        values.update(other_settings or {})
        kernel = make_kernel(plugins=[*plugins, butterfly_mq.plugin, handlers], settings=values)
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
