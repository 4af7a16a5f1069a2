"""The instance registry: who consumes what, and when each instance last beat.

One HASH (``bc:{registry}:instances``) maps an instance name to a JSON object.
The heartbeat script stamps it with the *server's* time, so liveness does not
depend on the clocks of the hosts agreeing.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
import uuid
from typing import Any

from butterfly_mq.keys import RegistryKeys
from butterfly_mq.scripts import SCRIPTS

#: An instance is dead after missing this many heartbeats.
MISSED_BEATS = 3
#: Dead or stopped instances stay listed this long (seconds) before cleanup forgets them.
FORGET_AFTER = 86400.0


def instance_name(port: int | str) -> str:
    """``host:port:pid:xxxx`` — unique per process start."""
    return f"{socket.gethostname()}:{port}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


def server_time_ms(client: Any, prefix: str = "bc") -> int:
    """Redis server time in ms (TIME runs inside EVAL: Twemproxy does not proxy it)."""
    return int(SCRIPTS["SERVER_TIME"](client, [RegistryKeys(prefix).instances]))


class InstanceRegistry:
    """Registers one instance and lists all of them.

    :param client: a ``redis.Redis``
    :param prefix: the key prefix
    :param name: this instance's name (:func:`instance_name`)
    :param static: fields that never change (host, port, pid, version, queues, ...)
    """

    def __init__(self, client: Any, prefix: str, name: str, static: dict[str, Any] | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.key = RegistryKeys(prefix).instances
        self.name = name
        self.static = {
            "name": name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "born": time.time(),
            **(static or {}),
        }

    def beat(self, counters: dict[str, Any], state: str = "running") -> int:
        """Write this instance's record with the server time as ``last_heartbeat``.

        :param counters: finished/failed/retried/... since start
        :param state: ``running`` or ``stopped``
        :return: the server time (ms)
        """
        record = json.dumps({**self.static, "state": state, "counters": counters})
        return int(SCRIPTS["HEARTBEAT"](self.client, [self.key], [self.name, record]))

    def list(self) -> list[dict[str, Any]]:
        """Every known instance with ``alive`` and ``heartbeat_age`` (seconds), newest first."""
        now = server_time_ms(self.client, self.prefix)
        instances = []
        for raw in self.client.hgetall(self.key).values():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            age = (now - int(record.get("last_heartbeat", 0))) / 1000
            interval = float(record.get("heartbeat_interval", 60))
            record["heartbeat_age"] = round(age, 1)
            record["alive"] = record.get("state") == "running" and age < MISSED_BEATS * interval
            instances.append(record)
        return sorted(instances, key=lambda r: (not r["alive"], r["heartbeat_age"]))

    def forget_dead(self) -> int:
        """Remove instances that have been dead or stopped for :data:`FORGET_AFTER` seconds."""
        gone = [r["name"] for r in self.list() if not r["alive"] and r["heartbeat_age"] > FORGET_AFTER]
        if gone:
            self.client.hdel(self.key, *gone)
        return len(gone)
