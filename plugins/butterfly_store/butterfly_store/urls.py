"""``[store] url``: parse a database URL into pony ``bind`` arguments, mask passwords.

Supported forms (the SQLAlchemy spelling, so URLs can be shared)::

    sqlite:///relative/path.db        relative to the working directory
    sqlite:////absolute/path.db       four slashes: an absolute path
    sqlite:///:memory:                a private in-memory database (tests)
    mysql://user:password@host:3306/dbname?charset=utf8mb4     (PyMySQL)
    postgresql://user:password@host:5432/dbname                (psycopg2)

Query parameters are passed to the driver's ``connect`` (digit strings become ints).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

#: URL scheme → pony provider name.
SCHEMES = {
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mysql+pymysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgres",
    "postgres": "postgres",
    "postgresql+psycopg2": "postgres",
}
DEFAULT_PORTS = {"mysql": 3306, "postgres": 5432}


@dataclass
class StoreTarget:
    """Where the store connects: pony's provider name and ``bind`` keyword arguments.

    :param provider: ``sqlite``, ``mysql`` or ``postgres``
    :param options: keyword arguments for :meth:`pony.orm.Database.bind`
    :param display: the URL with its password masked (safe for logs and errors)
    """

    provider: str
    options: dict[str, Any] = field(default_factory=dict)
    display: str = ""

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file (absolute), or ``None`` for servers and in-memory databases."""
        if self.provider != "sqlite" or self.options["filename"].startswith(":"):
            return None
        return self.options["filename"]


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (for logs and errors).

    :param url: any URL; text that does not parse is returned with everything
        between ``://`` and ``@`` masked
    :return: the masked URL
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        head, sep, tail = url.partition("://")
        return f"{head}{sep}***@{tail.rpartition('@')[2]}" if "@" in tail else url


def _query_options(query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        options[key] = int(value) if value.isdigit() else value
    return options


def parse_store_url(url: str, *, connect_timeout: float = 5.0) -> StoreTarget:
    """Turn ``[store] url`` into a :class:`StoreTarget`.

    :param url: the database URL (see the module docstring)
    :param connect_timeout: seconds a server connection attempt may take
    :return: the provider and its bind options
    :raises ValueError: on an unknown scheme or a URL without the needed parts;
        the message names the valid choices and never the password
    """
    display = mask_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"cannot parse database URL {display}: {exc}") from None
    scheme = parts.scheme.lower()
    provider = SCHEMES.get(scheme)
    if provider is None:
        raise ValueError(
            f"unknown database URL scheme {scheme!r} in {display}; use one of: {', '.join(sorted(SCHEMES))}"
        )
    if provider == "sqlite":
        # NOTE: "sqlite:///x.db" → path "/x.db" → relative "x.db"; "sqlite:////x.db" → "/x.db".
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
        if not path:
            raise ValueError(f"database URL {display} names no file; e.g. sqlite:///data/butterfly.db")
        if path == ":memory:":
            return StoreTarget("sqlite", {"filename": ":sharedmemory:"}, display)
        return StoreTarget("sqlite", {"filename": os.path.abspath(path), "create_db": True}, display)
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database:
        raise ValueError(
            f"database URL {display} needs a host and a database name, "
            f"e.g. {scheme}://user:password@127.0.0.1:{DEFAULT_PORTS[provider]}/butterfly"
        )
    options: dict[str, Any] = {
        "host": parts.hostname,
        "port": port or DEFAULT_PORTS[provider],
        "user": unquote(parts.username or ""),
    }
    if parts.password is not None:
        options["password"] = unquote(parts.password)
    # NOTE: PyMySQL and psycopg2 both take database= and connect_timeout= (whole seconds).
    options.update(database=database, connect_timeout=max(1, round(connect_timeout)))
    if provider == "mysql":
        options["charset"] = "utf8mb4"
    options.update(_query_options(parts.query))
    return StoreTarget(provider, options, display)
