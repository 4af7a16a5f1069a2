"""Fixtures for the butterfly-auth tests: kernels with store + auth, users, logins."""

from __future__ import annotations

import uuid

import pytest

import butterfly_auth.plugin as auth_plugin
import butterfly_store.plugin as store_plugin
from butterfly_auth import users
from kernel.testing import Client

PASSWORD = "correct horse battery"
#: Cheap argon2 parameters: the production default costs ~0.5 s per hash on a CI core.
FAST_HASHING = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 1024, "auth.argon2_parallelism": 1}


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A private SQLite store for tests that do not need every backend."""
    return f"sqlite:///{tmp_path}/auth.sqlite"


@pytest.fixture
def auth_kernel(make_kernel, sqlite_url):
    """Factory: a kernel with the store and auth plugins (plus ``plugins``) on ``url``."""

    def factory(url: str | None = None, settings: dict | None = None, plugins=()):
        merged = {"store.url": url or sqlite_url, **FAST_HASHING, **(settings or {})}
        return make_kernel(plugins=[store_plugin, auth_plugin, *plugins], settings=merged)

    return factory


@pytest.fixture
def fast_hashing() -> dict:
    """Settings for cheap argon2 hashing (merge into any kernel's settings)."""
    return dict(FAST_HASHING)


@pytest.fixture
def add_user():
    """Factory: ``add_user(kernel, roles=())`` creates a uniquely named user → its name.

    Names are unique because MariaDB/PostgreSQL tables outlive a single test.
    """

    def factory(kernel, roles=(), password: str = PASSWORD) -> str:
        name = "u" + uuid.uuid4().hex[:12]
        users.create_user(kernel, name, password, roles)
        return name

    return factory


@pytest.fixture
def login():
    """Factory: ``login(kernel_or_client, name)`` → the login reply's JSON (token, csrf_token...)."""

    def factory(target, name: str, password: str = PASSWORD) -> dict:
        client = target if isinstance(target, Client) else Client(target)
        reply = client.post("/auth/login", json={"username": name, "password": password})
        assert reply.status == 200, reply.text
        return reply.json()

    return factory


def bearer(token: str) -> dict[str, str]:
    """``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_header():
    """``auth_header(token)`` → ``{"Authorization": "Bearer <token>"}``."""
    return bearer
