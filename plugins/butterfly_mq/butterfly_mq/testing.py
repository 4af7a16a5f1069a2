"""Real Redis topologies for tests: a Redis Cluster and Twemproxy, started on free ports.

A pytest plugin (the repository's root ``conftest.py`` loads it when butterfly-mq is
installed) and a library for benchmarks:

* :class:`RedisClusterServers` — N ``redis-server --cluster-enabled yes`` masters in temp
  dirs, joined with ``redis-cli --cluster create``; a master can be killed and started
  again with its data (AOF, ``appendfsync always`` when ``durable``) and cluster state.
* :class:`Twemproxy` — ``nutcracker`` in front of two private redis-servers, with or
  without ``hash_tag: "{}"``.

Fixtures: ``redis_cluster`` and ``twemproxy`` (one per session), ``twemproxy_without_hash_tag``
(a second proxy over the same two servers). Nothing here touches the Redis at 6379.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from butterfly_mq.connection import connect
from kernel.testing import RedisServer, free_port

NUTCRACKER = shutil.which("nutcracker") or "/usr/sbin/nutcracker"
#: Milliseconds before cluster nodes consider a silent master failed (short, for tests).
NODE_TIMEOUT_MS = 2000


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} within {timeout:g} s")


class ClusterNode:
    """One ``redis-server --cluster-enabled yes`` in its own directory.

    :param port: its client port (the cluster bus gets another free port)
    :param durable: ``appendonly yes`` + ``appendfsync always``
    """

    def __init__(self, port: int, durable: bool) -> None:
        self.port = port
        self.bus_port = free_port()
        self.durable = durable
        self.dir = tempfile.mkdtemp(prefix="butterfly-cluster-node-")
        self.process: subprocess.Popen | None = None

    def start(self) -> ClusterNode:
        """Start it (again: same port, directory, data and ``nodes.conf``) and wait for PING."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(self.bus_port),
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--save",
                "",
                *persistence,
                "--dir",
                self.dir,
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: self.client().ping(), 10, f"cluster node on port {self.port} did not answer PING")
        return self

    def client(self) -> redis.Redis:
        """A plain client of this node alone (for CLUSTER INFO and the like)."""
        return connect(f"redis://127.0.0.1:{self.port}/0", socket_timeout=2)

    def kill(self) -> None:
        """SIGKILL (a crash); harmless when it is not running."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RedisClusterServers:
    """A Redis Cluster of ``masters`` masters and no replicas, on free ports.

    :param masters: how many masters (3 at least: ``redis-cli --cluster create`` wants 3)
    :param durable: AOF with ``appendfsync always`` on every node, so an acknowledged write
        survives :meth:`kill` and :meth:`start_node`
    """

    def __init__(self, masters: int = 3, durable: bool = False) -> None:
        self.nodes = [ClusterNode(free_port(), durable) for _ in range(masters)]

    @property
    def url(self) -> str:
        """A seed URL (the first node)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> RedisClusterServers:
        """Start the nodes, create the cluster, wait for ``cluster_state:ok`` everywhere."""
        for node in self.nodes:
            node.start()
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        subprocess.run(
            [
                redis_cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30) -> None:
        """Wait until every running node reports ``cluster_state:ok`` and knows every slot."""

        def ok() -> bool:
            for node in self.nodes:
                info = node.client().cluster("info")
                if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                    return False
            return True

        _wait(ok, timeout, "the Redis Cluster did not reach cluster_state:ok")

    def node_of(self, key: str) -> ClusterNode:
        """The master serving ``key``'s slot."""
        probe = self.nodes[0].client()
        slot = int(probe.cluster("keyslot", key))
        for low, high, master in _slot_ranges(probe):
            if low <= slot <= high:
                return next(node for node in self.nodes if node.port == master)
        raise LookupError(f"no master serves slot {slot}")

    def kill_node(self, node: ClusterNode) -> None:
        """SIGKILL one master (no replica takes over: its slots are down until it returns)."""
        node.kill()

    def start_node(self, node: ClusterNode) -> None:
        """Start a killed master again with its data and wait for ``cluster_state:ok``."""
        node.start()
        self.wait_ok(timeout=60)

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


def _slot_ranges(client: redis.Redis) -> list[tuple[int, int, int]]:
    """``(first slot, last slot, master port)`` rows from ``CLUSTER SLOTS``."""
    rows = client.execute_command("CLUSTER SLOTS")
    return [(int(row[0]), int(row[1]), int(row[2][1])) for row in rows]


class Twemproxy:
    """``nutcracker`` in front of two private redis-servers.

    :param backends: the servers behind it (default: two new ones, stopped with the proxy)
    :param hash_tag: write ``hash_tag: "{}"`` into the pool (keys of one queue on one server)
    """

    def __init__(self, backends: list[RedisServer] | None = None, *, hash_tag: bool = True) -> None:
        self.owns_backends = backends is None
        self.backends = backends or [RedisServer().start(), RedisServer().start()]
        self.hash_tag = hash_tag
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="butterfly-nutcracker-"))
        self.config_path = self.dir / "nutcracker.yml"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Twemproxy:
        """Write the yml, start nutcracker, wait until it proxies a PING."""
        if not Path(NUTCRACKER).exists():
            raise RuntimeError("nutcracker is missing: apt-get install nutcracker")
        servers = "\n".join(f"    - 127.0.0.1:{b.port}:1" for b in self.backends)
        tag = '  hash_tag: "{}"\n' if self.hash_tag else ""
        self.config_path.write_text(
            f"mq:\n  listen: 127.0.0.1:{self.port}\n  hash: fnv1a_64\n{tag}"
            f"  distribution: ketama\n  auto_eject_hosts: false\n  redis: true\n"
            f"  servers:\n{servers}\n"
        )
        self.process = subprocess.Popen(
            [NUTCRACKER, "-c", str(self.config_path), "-s", str(free_port()), "-o", str(self.dir / "nutcracker.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: connect(self.url, socket_timeout=1).ping(), 10, "nutcracker did not proxy a PING")
        return self

    def stop(self) -> None:
        """Stop the proxy (and its servers when it started them)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        if self.owns_backends:
            for backend in self.backends:
                backend.stop()


@pytest.fixture(scope="session")
def redis_cluster():
    """A 3-master Redis Cluster for the whole session (tests use their own key prefixes)."""
    cluster = RedisClusterServers().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def twemproxy():
    """A Twemproxy (``hash_tag: "{}"``) with two Redis servers behind it, for the session."""
    proxy = Twemproxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def twemproxy_without_hash_tag(twemproxy):
    """A second Twemproxy over the same two servers, without ``hash_tag`` (a broken pool)."""
    proxy = Twemproxy(twemproxy.backends, hash_tag=False).start()
    yield proxy
    proxy.stop()
