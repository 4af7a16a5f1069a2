"""pytest fixtures for plugins that store data: a scratch database per backend.

``database_url`` is parametrised over ``sqlite``, ``mysql`` (MariaDB) and
``postgresql``. Each server backend gets a fresh database for the test session,
dropped afterwards. Servers default to the local ones (127.0.0.1:3306 root, and
127.0.0.1:5432 root); override with ``BUTTERFLY_TEST_MYSQL`` / ``BUTTERFLY_TEST_POSTGRES``
(``host:port:user``). Unreachable servers skip — except with ``CI=true``, where a
reachable-by-default server that cannot be used is a failure.

``empty_database_url`` is parametrised the same way but gives each test a new, empty
database of its own (schema upgrade tests build old tables in it).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

BACKENDS = ("sqlite", "mysql", "postgresql")


def _server(env: str, default: str) -> tuple[str, int, str]:
    host, port, user = os.environ.get(env, default).split(":")
    return host, int(port), user


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def _unavailable(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (required when CI=true)")
    pytest.skip(what)


def create_database(backend: str, name: str) -> str:
    """Create the empty database ``name`` on the MariaDB/MySQL or PostgreSQL test server.

    :param backend: ``mysql`` or ``postgresql``
    :return: its store URL
    """
    if backend == "mysql":
        host, port, user = _server("BUTTERFLY_TEST_MYSQL", "127.0.0.1:3306:root")
        if not _reachable(host, port):
            _unavailable(f"MariaDB/MySQL not reachable at {host}:{port}")
        import pymysql

        conn = pymysql.connect(host=host, port=port, user=user, password="")
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
        return f"mysql://{user}@{host}:{port}/{name}"
    host, port, user = _server("BUTTERFLY_TEST_POSTGRES", "127.0.0.1:5432:root")
    if not _reachable(host, port):
        _unavailable(f"PostgreSQL not reachable at {host}:{port}")
    import psycopg2

    conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql://{user}@{host}:{port}/{name}"


def drop_database(backend: str, name: str) -> None:
    """Drop database ``name`` made by :func:`create_database`; a failure is printed, not raised."""
    try:
        if backend == "mysql":
            import pymysql

            host, port, user = _server("BUTTERFLY_TEST_MYSQL", "127.0.0.1:3306:root")
            conn = pymysql.connect(host=host, port=port, user=user, password="")
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            conn.close()
        else:
            import psycopg2

            host, port, user = _server("BUTTERFLY_TEST_POSTGRES", "127.0.0.1:5432:root")
            conn = psycopg2.connect(host=host, port=port, user=user, dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.close()
    except Exception as exc:  # noqa: BLE001 - cleanup must not fail the run
        print(f"warning: could not drop scratch database {name} on {backend}: {exc}")


class _ScratchDatabases:
    """Creates scratch databases lazily, drops them at session end."""

    def __init__(self) -> None:
        self.name = "butterfly_test_" + uuid.uuid4().hex[:10]
        self.created: dict[str, str] = {}

    def url(self, backend: str, tmp_dir) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_dir}/store.sqlite"
        if backend not in self.created:
            self.created[backend] = create_database(backend, self.name)
        return self.created[backend]

    def drop_all(self) -> None:
        for backend in self.created:
            drop_database(backend, self.name)


@pytest.fixture(scope="session")
def scratch_databases():
    """The session's scratch databases (one per server backend)."""
    scratch = _ScratchDatabases()
    yield scratch
    scratch.drop_all()


@pytest.fixture(params=BACKENDS)
def database_url(request, scratch_databases, tmp_path) -> str:
    """A store URL for each backend; server backends share one scratch database per session.

    Tables persist across tests of a session on MariaDB/PostgreSQL: tests must use
    their own names (unique ids) rather than expect empty tables.
    """
    return scratch_databases.url(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request, tmp_path) -> Iterator[str]:
    """A store URL for each backend naming a database of its own, empty, dropped after the test.

    For tests that need the tables as they were (schema upgrades): ``database_url``
    shares one database across a session.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.sqlite"
        return
    name = "butterfly_test_" + uuid.uuid4().hex[:10]
    url = create_database(request.param, name)
    try:
        yield url
    finally:
        drop_database(request.param, name)
