"""``butterfly mq doctor``: can the MQ work on this endpoint? Checked for real.

1. **Mode**: a single Redis, a proxy (Twemproxy refuses ``INFO``) or a Redis Cluster
   (``cluster_enabled:1``) — and whether that matches ``[mq] redis_cluster``.
2. **Commands**: every command the MQ sends outside Lua, each command its scripts run
   inside Lua, and every one of its Lua scripts, in the order of a message's life
   (enqueue → ready index → pop → renew → retry → recover → pop → finish → page → requeue
   → return → delete → batch enqueue → empty → purge, heartbeat, lock), on scratch keys;
   and whether the endpoint serves ``XREAD BLOCK`` (the bell: a note, Twemproxy does not).
3. **Placement**: the keys of one queue must live on one server. Probe keys sharing each
   queue's hashtag are written one by one through the endpoint, then one script started
   on the first looks for the others; with ``--proxy-config`` every backend of the pool
   is also asked which probe keys it holds, and the pool's settings are checked.
4. **Queues**: every registered queue answers its counts (each server of a cluster or
   pool is reached).

Every row is a :class:`Check`; any failed one makes the command exit non-zero.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from butterfly_mq.connection import ERRORS, connect
from butterfly_mq.instances import InstanceRegistry
from butterfly_mq.keys import KEY_NAMES, QueueKeys, RegistryKeys
from butterfly_mq.queue import Outcome, Queue, counts_for, registered_topics
from butterfly_mq.ready import ReadyIndex
from butterfly_mq.script_calls import Script, run_pipelined
from butterfly_mq.scripts import SCRIPTS

# Every command the MQ's scripts run server-side; each is tried under pcall.
LUA_PROBE = r"""
local k = KEYS
local checks = {
  TIME = function() return redis.call('TIME') end,
  RPUSH = function() return redis.call('RPUSH', k[1], 'a', 'b', 'c') end,
  LPUSH = function() return redis.call('LPUSH', k[1], 'z') end,
  LPOP = function() return redis.call('LPOP', k[1]) end,
  LLEN = function() return redis.call('LLEN', k[1]) end,
  LRANGE = function() return redis.call('LRANGE', k[1], 0, 1) end,
  LINDEX = function() return redis.call('LINDEX', k[1], 0) end,
  LREM = function() return redis.call('LREM', k[1], 1, 'b') end,
  LTRIM = function() return redis.call('LTRIM', k[1], 1, -1) end,
  ZADD = function() return redis.call('ZADD', k[2], 1, 'a', 2, 'b') end,
  ['ZADD XX CH'] = function() return redis.call('ZADD', k[2], 'XX', 'CH', 3, 'a') end,
  ZREM = function() return redis.call('ZREM', k[2], 'b') end,
  ZCARD = function() return redis.call('ZCARD', k[2]) end,
  ZRANGE = function() return redis.call('ZRANGE', k[2], 0, -1, 'WITHSCORES') end,
  ZREVRANGE = function() return redis.call('ZREVRANGE', k[2], 0, -1) end,
  ZRANGEBYSCORE = function() return redis.call('ZRANGEBYSCORE', k[2], '-inf', 10, 'WITHSCORES', 'LIMIT', 0, 5) end,
  HSET = function() return redis.call('HSET', k[3], 'f', 'v', 'g', 'w') end,
  HGET = function() return redis.call('HGET', k[3], 'f') end,
  HMGET = function() return redis.call('HMGET', k[3], 'f', 'g') end,
  HEXISTS = function() return redis.call('HEXISTS', k[3], 'f') end,
  HINCRBY = function() return redis.call('HINCRBY', k[3], 'n', 1) end,
  HDEL = function() return redis.call('HDEL', k[3], 'g') end,
  HSETNX = function() return redis.call('HSETNX', k[3], 'h', 'v') end,
  ['XADD MAXLEN ~'] = function() return redis.call('XADD', k[5], 'MAXLEN', '~', 100, '*', 'n', 1) end,
  INCR = function() return redis.call('INCR', k[4]) end,
  GET = function() return redis.call('GET', k[4]) end,
  DEL = function() return redis.call('DEL', k[4]) end,
  cjson = function() return cjson.encode(cjson.decode('{"a":1}')) end,
}
local missing = {}
for name, check in pairs(checks) do
  if not pcall(check) then missing[#missing + 1] = name end
end
redis.call('DEL', k[1], k[2], k[3], k[5])
return missing
"""

# KEYS: probe keys of one queue (same hashtag), written one by one through the endpoint
# → how many of them this server (the first key's) does NOT hold
PLACEMENT_PROBE = r"""
local absent = 0
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then absent = absent + 1 end
end
return absent
"""
#: Queues the placement check probes when fewer are registered (it is statistical).
SAMPLE_TOPICS = [f"/doctor/sample{i}" for i in range(16)]


@dataclass
class Check:
    """One row of the report."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    """What the doctor found."""

    mode: str
    configured_cluster: bool
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Check]:
        """The failed checks."""
        return [check for check in self.checks if not check.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        """Append a row; returns ``ok``."""
        self.checks.append(Check(name, ok, detail))
        return ok

    def run(self, name: str, probe: Callable[[], Any], expect: Callable[[Any], bool] | None = None) -> Any:
        """Run ``probe``; the row fails on an error, or when ``expect(result)`` is false."""
        try:
            result = probe()
        except ERRORS as exc:
            self.add(name, False, f"{type(exc).__name__}: {exc}"[:200])
            return None
        if expect is not None and not expect(result):
            self.add(name, False, f"unexpected reply {result!r}"[:200])
            return None
        self.add(name, True)
        return result


def detect_mode(url: str) -> tuple[str, str]:
    """``(mode, detail)``: ``single``, ``proxy``, ``cluster`` or ``unreachable``.

    :param url: the endpoint
    """
    client = connect(url, socket_timeout=3, retries=0)
    try:
        client.ping()
    except ERRORS as exc:
        return "unreachable", f"{type(exc).__name__}: {exc}"
    try:
        try:
            info = client.info("cluster")
        except ERRORS:
            return "proxy", "answers PING but refuses INFO (Twemproxy, or a Redis with INFO disabled)"
        if not int(info.get("cluster_enabled", 0)):
            version = client.info("server").get("redis_version", "?")
            return "single", f"Redis {version}"
        state = client.cluster("info")
        masters = sum(1 for node in client.cluster("nodes").values() if "master" in node.get("flags", ""))
        return "cluster", f"{masters} masters, cluster_state {state.get('cluster_state')}"
    finally:
        client.close()


def check_endpoint(
    url: str,
    prefix: str = "bc",
    *,
    cluster: bool = False,
    proxy_config: str | None = None,
    topics: list[str] | None = None,
) -> Report:
    """Run every check against ``url``.

    :param url: the endpoint the MQ uses
    :param prefix: the MQ's key prefix (its registered queues are checked)
    :param cluster: what ``[mq] redis_cluster`` says
    :param proxy_config: a nutcracker yml to check and whose backends to inspect
    :param topics: queues to check besides the registered ones (``[mq] queues``)
    :raises kernel.ConfigError: ``proxy_config`` cannot be read or names no pool on this port
    """
    pool = None
    if proxy_config:
        from butterfly_mq.proxyconfig import load_pool

        pool = load_pool(proxy_config, url)  # NOTE: a bad path is a ConfigError before any I/O
    mode, detail = detect_mode(url)
    report = Report(mode, cluster)
    report.notes.append(f"mode: {mode} ({detail}); configured: {'cluster' if cluster else 'single or proxy'}")
    if not report.add("endpoint answers PING", mode != "unreachable", "" if mode != "unreachable" else detail):
        return report
    if mode == "cluster" and not cluster:
        report.add(
            "mode matches [mq] redis_cluster",
            False,
            "the endpoint is a Redis Cluster node: set [mq] redis_cluster = true (BUTTERFLY_MQ_REDIS_CLUSTER=true)",
        )
    elif cluster and mode != "cluster":
        report.add("mode matches [mq] redis_cluster", False, f"[mq] redis_cluster = true, but the endpoint is {mode}")
    else:
        report.add("mode matches [mq] redis_cluster", True)
    client = connect(url, cluster=mode == "cluster", socket_timeout=3, retries=0)
    try:
        if mode == "cluster":
            _check_cluster_nodes(report, client)
        scratch = f"{prefix}-doctor-{uuid.uuid4().hex[:8]}"
        _check_plain_commands(report, client, scratch)
        _check_lua(report, client, scratch)
        _check_scripts(report, client, scratch)
        known = _known_topics(report, client, prefix, topics or [])
        _check_placement(report, client, scratch, known, pool)
        _check_queues(report, client, prefix, known)
    finally:
        client.close()
    return report


def _check_cluster_nodes(report: Report, client: Any) -> None:
    for node in client.get_primaries():
        name = f"master {node.host}:{node.port}"
        info = report.run(
            f"{name} answers, cluster_state ok",
            lambda node=node: client.get_redis_connection(node).cluster("info"),
            lambda info: info.get("cluster_state") == "ok",
        )
        if info is not None:
            report.notes.append(
                f"{name}: {info.get('cluster_known_nodes')} known nodes, slots ok {info.get('cluster_slots_ok')}"
            )


def _check_plain_commands(report: Report, client: Any, scratch: str) -> None:
    tag = f"{scratch}:{{registry}}"
    report.run(
        "SADD / SMEMBERS / SREM",
        lambda: (client.sadd(f"{tag}:set", "x"), client.smembers(f"{tag}:set"), client.srem(f"{tag}:set", "x")),
        lambda r: r[1] == {"x"} and r[2] == 1,
    )
    report.run(
        "HSET / HGET / HEXISTS / HGETALL / HDEL",
        lambda: (
            client.hset(f"{tag}:hash", "f", "v"),
            client.hget(f"{tag}:hash", "f"),
            client.hexists(f"{tag}:hash", "f"),
            client.hgetall(f"{tag}:hash"),
            client.hdel(f"{tag}:hash", "f"),
        ),
        lambda r: r[1] == "v" and r[3] == {"f": "v"} and r[4] == 1,
    )
    report.run(
        "SET NX PX / GET / DEL",
        lambda: (
            client.set(f"{tag}:lock", "t", nx=True, px=5000),
            client.set(f"{tag}:lock", "u", nx=True, px=5000),
            client.get(f"{tag}:lock"),
            client.delete(f"{tag}:lock"),
        ),
        lambda r: bool(r[0]) and not r[1] and r[2] == "t",
    )
    report.run(
        "pipeline without MULTI (several hashtags)",
        lambda: (
            client.pipeline(transaction=False)
            .set(f"{tag}:p", 1, px=5000)
            .set(f"{scratch}:{{x}}:p", 2, px=5000)
            .execute()
        ),
    )


def _check_lua(report: Report, client: Any, scratch: str) -> None:
    keys = [f"{scratch}:{{lua}}:{name}" for name in ("list", "zset", "hash", "n", "stream")]
    fresh = Script("doctor_probe", LUA_PROBE + f"\n-- {uuid.uuid4().hex}")  # never cached: tests EVAL
    report.run("EVALSHA → NOSCRIPT → EVAL fallback", lambda: fresh(client, keys))
    missing = report.run("EVALSHA of a cached script", lambda: fresh(client, keys))
    if missing is not None:
        report.add("commands inside Lua", not missing, f"missing: {', '.join(missing)}" if missing else "")


def _check_scripts(report: Report, client: Any, scratch: str) -> None:
    """Each of the MQ's scripts once, on a scratch queue, as a message goes through its life."""
    queue = Queue(client, "/doctor/check", scratch)
    info = {"id": "m1", "topic": queue.topic, "created_at": 0, "attempts": 0, "producer": "doctor"}
    ready = ReadyIndex(scratch)
    worker = "doctor:1"
    script_calls = [
        (
            "ENQUEUE + MARK_READY (one pipeline)",
            lambda: run_pipelined(client, [queue.enqueue_call("m1", "{}", info), ready.mark_call(queue.topic)]),
            lambda r: r[0] == 1,
        ),
        (
            "READY",
            lambda: ready.read(client, 0),
            lambda r: (queue.topic, r[0]) in r[2] and r[1],
        ),
        ("POP", lambda: queue.pop(5, 60_000, worker), lambda r: [m.msg_id for m in r] == ["m1"]),
        ("RENEW", lambda: SCRIPTS["RENEW"](client, queue.keys, [120_000, "m1"]), lambda r: r == 1),
        (
            "FINISH (retry)",
            lambda: queue.finish([Outcome("m1", worker, 1, "retry", retry_delay_ms=0)]),
            lambda r: r == [1],
        ),
        ("RECOVER (promotes due messages)", lambda: queue.recover(3), lambda r: r == 0),
        ("POP again", lambda: queue.pop(5, 60_000, worker), lambda r: [m.msg_id for m in r] == ["m1"]),
        (
            "FINISH (finished)",
            lambda: queue.finish([Outcome("m1", worker, 2, "finished", '{"stat":"OK"}', stat="OK")]),
            lambda r: r == [1],
        ),
        ("COUNTS", lambda: queue.counts(), lambda r: r["finished"] == 1),
        ("PAGE", lambda: queue.page("finished"), lambda r: r[0] == 1),
        ("REQUEUE", lambda: queue.requeue("m1"), lambda r: r == 1),
        ("RETURN_UNSTARTED", lambda: queue.return_unstarted(worker, queue.pop(5, 60_000, worker)), lambda r: r == 1),
        ("DELETE", lambda: queue.delete("m1"), lambda r: r is True),
        (
            "ENQUEUE_MANY",
            lambda: run_pipelined(client, [queue.enqueue_many_call([("m2", "{}"), ("m3", "{}"), ("m2", "{}")], "{}")]),
            lambda r: r == [[1, 1, 0]],
        ),
        ("EMPTY", lambda: queue.empty("queued"), lambda r: r == 2),
        ("PURGE", lambda: queue.purge("finished", 2**50), lambda r: r == 0),
    ]
    for name, probe, expect in script_calls:
        if report.run(f"script {name}", probe, expect) is None and name.startswith(("ENQUEUE", "POP")):
            break  # NOTE: the later steps need this one
    _check_enqueue_marked(report, client, queue, ready)
    registry = InstanceRegistry(client, scratch, "doctor")
    report.run("script HEARTBEAT", lambda: registry.beat({}), lambda r: int(r) > 0)
    report.run("script SERVER_TIME", lambda: registry.list(), lambda r: r and r[0]["name"] == "doctor")
    lock_key = RegistryKeys(scratch).cleanup_lock
    report.run(
        "script RELEASE_LOCK (compare-and-delete)",
        lambda: (
            client.set(lock_key, "t", nx=True, px=5000),
            SCRIPTS["RELEASE_LOCK"](client, [lock_key], ["x"]),
            SCRIPTS["RELEASE_LOCK"](client, [lock_key], ["t"]),
        ),
        lambda r: r[1] == 0 and r[2] == 1,
    )
    _check_bell(report, client, ready.bell)
    registry_keys = RegistryKeys(scratch)
    ready_keys = [registry_keys.ready, registry_keys.ready_counter, registry_keys.ready_epoch, registry_keys.ready_bell]
    for key in [*queue.keys, registry_keys.instances, *ready_keys]:
        try:
            client.delete(key)
        except ERRORS:
            pass


def _check_enqueue_marked(report: Report, client: Any, queue: Queue, ready: ReadyIndex) -> None:
    """Where the queue and the ready index share a server, a per-call enqueue is one script
    (ENQUEUE_MARKED): the producer's probe, then that script — a note says which it is."""
    if not isinstance(client, redis.Redis):
        report.notes.append("enqueue: two scripts per message (ENQUEUE + MARK_READY: a cluster)")
        return
    together = report.run(
        "script PROBE_SET + PROBE_CHECK (does the queue's server hold the ready index?)",
        lambda: run_pipelined(client, ready.probe_calls(queue.enqueue_keys[-1], uuid.uuid4().hex))[1],
        lambda r: r in (0, 1),
    )
    if together != 1:
        report.notes.append("enqueue: two scripts per message for this topic (ENQUEUE + MARK_READY)")
        return
    info = '{"id":"m4","topic":"/doctor/check","created_at":0,"attempts":0,"producer":"doctor"}'
    report.run(
        "script ENQUEUE_MARKED",
        lambda: (
            run_pipelined(
                client,
                [
                    (
                        SCRIPTS["ENQUEUE_MARKED"],
                        [*queue.enqueue_keys, *ready.mark_keys],
                        ["m4", "{}", info, 0, queue.topic, 100],
                    )
                ],
            ),
            ready.read(client, 0),
        ),
        lambda r: r[0] == [1] and any(topic == queue.topic and number == r[1][0] for topic, number in r[1][2]),
    )
    report.notes.append("enqueue: one script per message (ENQUEUE_MARKED: the queue's server holds the ready index)")


def _check_bell(report: Report, client: Any, bell: str) -> None:
    """Whether idle consumers can block on the bell (``XREAD BLOCK``) — a note, not a problem."""
    try:
        client.xread({bell: "$"}, block=10)
    except ERRORS as exc:
        report.notes.append(
            f"pick-up: polling — the endpoint refuses XREAD BLOCK ({type(exc).__name__}), as Twemproxy does; "
            "idle consumers read the ready index every [mq] pickup_interval"
        )
        return
    report.notes.append("pick-up: the bell — XREAD BLOCK works, idle consumers wait on it instead of polling")


def _known_topics(report: Report, client: Any, prefix: str, extra: list[str]) -> list[str]:
    registered = report.run("queue registry (SMEMBERS)", lambda: registered_topics(client, prefix)) or []
    return sorted(set(registered) | set(extra))


def _check_placement(report: Report, client: Any, scratch: str, topics: list[str], pool: Any) -> None:
    """Write probe keys of each queue's hashtag one by one; are they on one server?"""
    probed = topics if len(topics) >= len(SAMPLE_TOPICS) else sorted(set(topics) | set(SAMPLE_TOPICS))
    token = uuid.uuid4().hex[:8]
    probes = {topic: [f"{QueueKeys(topic, scratch).key(name)}:{token}" for name in KEY_NAMES] for topic in probed}
    split: list[str] = []
    try:
        pipe = client.pipeline(transaction=False)
        for keys in probes.values():
            for key in keys:
                pipe.set(key, "1", px=60_000)
        pipe.execute()
        probe = Script("doctor_placement", PLACEMENT_PROBE)
        for topic, keys in probes.items():
            if int(probe(client, keys)):
                split.append(topic)
    except ERRORS as exc:
        report.add("keys of one queue on one server", False, f"{type(exc).__name__}: {exc}"[:200])
        return
    report.add(
        "keys of one queue on one server",
        not split,
        f"the keys of {len(split)} of {len(probes)} queues are split across servers ({', '.join(split[:5])}"
        f'{", ..." if len(split) > 5 else ""}); the proxy needs hash_tag: "{{}}"'
        if split
        else f"{len(probes)} queues probed",
    )
    if pool is not None:
        _check_pool(report, pool, probes)
    for keys in probes.values():
        for key in keys:
            try:
                client.delete(key)
            except ERRORS:
                break


def _check_pool(report: Report, pool: Any, probes: dict[str, list[str]]) -> None:
    for problem in pool.problems():
        report.add("proxy config", False, problem)
    if not pool.problems():
        report.add(f"proxy config (pool {pool.name}: hash_tag, auto_eject_hosts, redis)", True)
    holders: dict[str, set[str]] = {topic: set() for topic in probes}
    for backend in pool.backends:
        server = connect(pool.backend_url(backend), socket_timeout=3, retries=0)
        try:
            pipe = server.pipeline(transaction=False)
            for keys in probes.values():
                for key in keys:
                    pipe.exists(key)
            found = iter(pipe.execute())
        except ERRORS as exc:
            report.add(f"backend {backend.name} reachable", False, f"{type(exc).__name__}: {exc}"[:200])
            continue
        finally:
            server.close()
        for topic, keys in probes.items():
            if sum(int(next(found)) for _ in keys):  # NOTE: consume one reply per key, always
                holders[topic].add(backend.name)
    split = sorted(topic for topic, names in holders.items() if len(names) > 1)
    layout = json.dumps(
        {name: sum(1 for names in holders.values() if name in names) for name in (b.name for b in pool.backends)}
    )
    report.add(
        "each queue's keys on one backend (asked every backend)",
        not split,
        f"{len(split)} of {len(probes)} queues have keys on several backends ({', '.join(split[:5])})"
        if split
        else f"queues per backend: {layout}",
    )


def _check_queues(report: Report, client: Any, prefix: str, topics: list[str]) -> None:
    if not topics:
        report.notes.append("no queue registered yet")
        return
    report.run(f"every registered queue answers ({len(topics)})", lambda: counts_for(client, topics, prefix))


def describe(report: Report) -> str:
    """The report as text (what the CLI prints)."""
    lines = [f"  {note}" for note in report.notes]
    for check in report.checks:
        mark = "ok    " if check.ok else "FAILED"
        lines.append(f"  {mark}  {check.name}{'  — ' + check.detail if check.detail else ''}")
    problems = report.problems
    lines.append(
        "all checks passed"
        if not problems
        else f"{len(problems)} problem(s): {', '.join(check.name for check in problems)}"
    )
    return "\n".join(lines)
