"""A Twemproxy (nutcracker) pool as ``butterfly mq doctor --proxy-config`` reads it.

Only what the MQ depends on is checked: ``hash_tag: "{}"`` (every key of a queue on one
server), ``auto_eject_hosts: false`` (an ejected server's queues would be written
elsewhere and split), ``redis: true``, and the backends, which the doctor then inspects
directly to see where keys written through the proxy really landed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from kernel.errors import ConfigError


@dataclass
class Backend:
    """One ``servers:`` entry: ``host:port:weight [name]``."""

    host: str
    port: int
    name: str

    def url(self, password: str | None, db: int) -> str:
        """A URL to reach this server directly."""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"


@dataclass
class ProxyPool:
    """The pool of a nutcracker yml that a Redis URL points at."""

    name: str
    listen: str
    options: dict[str, Any]
    backends: list[Backend] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Settings that break the MQ, each with the fix."""
        found = []
        if self.options.get("hash_tag") != "{}":
            found.append(
                f'pool {self.name}: hash_tag is {self.options.get("hash_tag")!r}, not "{{}}" — keys of one queue '
                'land on different servers and its scripts see half of them; add hash_tag: "{}"'
            )
        if self.options.get("auto_eject_hosts") is True:
            found.append(
                f"pool {self.name}: auto_eject_hosts: true — an ejected server's queues are written to another "
                "server and split (messages stranded when it returns); set auto_eject_hosts: false"
            )
        if self.options.get("redis") is not True:
            found.append(f"pool {self.name}: redis: true is missing — the pool speaks memcached")
        if not self.backends:
            found.append(f"pool {self.name}: no servers")
        return found

    def backend_url(self, backend: Backend) -> str:
        """The URL of one backend, with the pool's ``redis_auth`` and ``redis_db``."""
        return backend.url(self.options.get("redis_auth"), int(self.options.get("redis_db") or 0))


def _backend(entry: Any, pool: str) -> Backend:
    text = str(entry).strip()
    address, _, name = text.partition(" ")
    host_port, _, _weight = address.rpartition(":")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"pool {pool}: cannot read server {text!r}; expected host:port:weight [name]")
    return Backend(host, int(port), name.strip() or f"{host}:{port}")


def load_pool(path: str | Path, redis_url: str) -> ProxyPool:
    """The pool in ``path`` that listens on ``redis_url``'s port.

    :param path: a nutcracker yml
    :param redis_url: the URL the MQ uses (a Twemproxy listener)
    :raises ConfigError: the file cannot be read or parsed, or no pool listens on that port
    """
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --proxy-config {path}: {exc.strerror or exc}") from None
    try:
        pools = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--proxy-config {path} is not valid YAML: {exc}") from None
    if not isinstance(pools, dict) or not all(isinstance(v, dict) for v in pools.values()):
        raise ConfigError(f"--proxy-config {path} is not a nutcracker config (expected pools: name → settings)")
    port = urlsplit(redis_url).port or 6379
    listening = [
        name for name, options in pools.items() if str(options.get("listen", "")).rpartition(":")[2] == str(port)
    ]
    if not listening:
        raise ConfigError(f"no pool in {path} listens on port {port} (pools: {', '.join(map(str, pools))})")
    name = listening[0]
    options = pools[name]
    servers = options.get("servers") or []
    return ProxyPool(str(name), str(options.get("listen")), options, [_backend(entry, name) for entry in servers])
