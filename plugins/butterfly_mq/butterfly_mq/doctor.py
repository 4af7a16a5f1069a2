"""``butterfly mq doctor``: does this endpoint support every command the MQ sends?

Runs each command the MQ uses — directly and inside Lua — against scratch keys
under their own hashtag, reports the missing ones, and warns about Twemproxy
settings that split or lose queues (``auto_eject_hosts``, ``hash_tag``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from butterfly_mq.connection import connect
from butterfly_mq.scripts import SCRIPTS, Script

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
  ZRANGE = function() return redis.call('ZRANGE', k[2], 0, -1) end,
  ZREVRANGE = function() return redis.call('ZREVRANGE', k[2], 0, -1) end,
  ZRANGEBYSCORE = function() return redis.call('ZRANGEBYSCORE', k[2], '-inf', 10, 'LIMIT', 0, 5) end,
  HSET = function() return redis.call('HSET', k[3], 'f', 'v', 'g', 'w') end,
  HGET = function() return redis.call('HGET', k[3], 'f') end,
  HMGET = function() return redis.call('HMGET', k[3], 'f', 'g') end,
  HEXISTS = function() return redis.call('HEXISTS', k[3], 'f') end,
  HINCRBY = function() return redis.call('HINCRBY', k[3], 'n', 1) end,
  HDEL = function() return redis.call('HDEL', k[3], 'g') end,
  cjson = function() return cjson.encode(cjson.decode('{"a":1}')) end,
}
local missing = {}
for name, check in pairs(checks) do
  if not pcall(check) then missing[#missing + 1] = name end
end
redis.call('DEL', k[1], k[2], k[3])
return missing
"""


def _check(results: list[tuple[str, bool, str]], name: str, probe: Callable[[], Any]) -> None:
    try:
        probe()
        results.append((name, True, ""))
    except (redis.RedisError, OSError) as exc:
        results.append((name, False, str(exc)[:120]))


def check_endpoint(url: str, prefix: str = "bc") -> list[tuple[str, bool, str]]:
    """Run every command the MQ needs against ``url``.

    :return: ``(check, ok, detail)`` rows
    """
    tag = f"{prefix}:{{doctor-{uuid.uuid4().hex[:8]}}}"
    keys = [f"{tag}:list", f"{tag}:zset", f"{tag}:hash"]
    results: list[tuple[str, bool, str]] = []
    client = connect(url, socket_timeout=3)
    _check(results, "PING", client.ping)
    _check(
        results,
        "SADD/SMEMBERS/SREM",
        lambda: (client.sadd(f"{tag}:set", "x"), client.smembers(f"{tag}:set"), client.srem(f"{tag}:set", "x")),
    )
    _check(
        results,
        "HSET/HGET/HEXISTS/HGETALL/HDEL",
        lambda: (
            client.hset(keys[2], "f", "v"),
            client.hget(keys[2], "f"),
            client.hexists(keys[2], "f"),
            client.hgetall(keys[2]),
            client.hdel(keys[2], "f"),
        ),
    )
    _check(
        results,
        "SET NX PX / GET / DEL",
        lambda: (
            client.set(f"{tag}:lock", "t", nx=True, px=5000),
            client.get(f"{tag}:lock"),
            client.delete(f"{tag}:lock"),
        ),
    )
    _check(results, "pipeline (no MULTI)", lambda: client.pipeline(transaction=False).ping().ping().execute())
    fresh = Script("doctor_probe", LUA_PROBE + f"\n-- {uuid.uuid4().hex}")  # never cached: tests EVAL
    _check(results, "EVALSHA→NOSCRIPT→EVAL fallback", lambda: fresh(client, keys))
    _check(results, "EVALSHA (cached script)", lambda: fresh(client, keys))
    try:
        missing = fresh(client, keys)
        results.append(("commands inside Lua", not missing, f"missing: {', '.join(missing)}" if missing else ""))
    except redis.RedisError as exc:
        results.append(("commands inside Lua", False, str(exc)[:120]))
    _check(results, "EVAL with server TIME", lambda: SCRIPTS["SERVER_TIME"](client, [f"{tag}:t"]))
    client.close()
    return results


def looks_like_twemproxy(url: str) -> bool:
    """Twemproxy refuses ``INFO`` (it closes the connection); a real Redis answers."""
    client = connect(url, socket_timeout=2)
    try:
        client.info("server")
        return False
    except redis.RedisError:
        return True
    finally:
        client.close()


def proxy_config_warnings(path: str | Path) -> list[str]:
    """Warnings about a nutcracker yml: ``auto_eject_hosts: true`` splits queues; no ``hash_tag: "{}"``."""
    text = Path(path).read_text()
    warnings = []
    if re.search(r"^\s*auto_eject_hosts:\s*true", text, re.M):
        warnings.append(
            "auto_eject_hosts: true — an ejected server's queues are written to another server and "
            "split (messages stranded when it returns); set auto_eject_hosts: false"
        )
    if not re.search(r"""^\s*hash_tag:\s*["']\{\}["']""", text, re.M):
        warnings.append(
            'hash_tag "{}" is missing — keys of one queue would land on different servers and '
            'every multi-key script fails; add hash_tag: "{}"'
        )
    return warnings
