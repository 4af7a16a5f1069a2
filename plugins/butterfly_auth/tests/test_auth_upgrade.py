"""A 0.1 auth database served by the real 0.2 server (``python -m kernel run``).

``data/auth_models_0_1.py.txt`` is butterfly_auth/models.py as released in 0.1 (the
parent of the round's first commit, "Tooling: ruff lint and format ..."), byte for
byte. The test maps it with pony into an empty database of each backend — the tables
a 0.1 user has — fills them the way 0.1 did, then starts 0.2 on it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import jwt
import pytest
from argon2 import PasswordHasher

from butterfly_store import schema
from butterfly_store.urls import parse_store_url
from kernel.testing import ServerProcess, hermetic_environ

DATA = Path(__file__).parent / "data"
SECRET = "s" * 48
OLD_PASSWORD = "a password set in 0.1"


def _models_0_1(tmp_path: Path):
    """Import the 0.1 models module from its copy (a module of its own, not butterfly_auth.models)."""
    path = tmp_path / "auth_models_0_1.py"
    path.write_text((DATA / "auth_models_0_1.py.txt").read_text())
    spec = importlib.util.spec_from_file_location("auth_models_0_1", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_0_1_database(url: str, tmp_path: Path) -> str:
    """0.1's tables with two users (one with a changed password), a role, an API token; returns the token."""
    from pony.orm import Database, db_session

    target = parse_store_url(url)
    db = Database()
    _models_0_1(tmp_path).define_entities(db)
    db.bind(provider=target.provider, **target.options)
    db.generate_mapping(create_tables=True)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    token = "bf_" + secrets.token_urlsafe(32)  # 0.1's format: bf_ + 32 random bytes
    with db_session:
        admin = db.entities["AuthRole"](name="admin")
        old = db.entities["AuthUser"](
            name="olduser",
            password_hash=hasher.hash(OLD_PASSWORD),
            token_version=2,  # two password changes in 0.1
            created_at=datetime(2026, 1, 2, 3, 4, 5),
        )
        old.roles.add(admin)
        db.entities["AuthUser"](name="other", password_hash=hasher.hash("other password"))
        db.entities["AuthApiToken"](
            token_hash=hashlib.sha256(token.encode()).hexdigest(), prefix=token[:10], label="ci", user=old
        )
    db.disconnect()
    return token


def _old_session(name: str, version: int) -> str:
    """A session JWT as 0.1 issued it: ``sub`` is the user's name."""
    now = int(time.time())
    claims = {"sub": name, "jti": secrets.token_hex(16), "iat": now, "exp": now + 3600, "ver": version}
    return jwt.encode(claims, SECRET, algorithm="HS256")


class Server(ServerProcess):
    """``python -m kernel run --config ...`` in a subprocess, its output in ``server.log``."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        env = hermetic_environ()
        env["BUTTERFLY_DISABLE_PLUGINS"] = "mq,ruqi,wuxing,xingqiao"
        super().__init__(tmp_path, env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = tmp_path / "butterfly.toml"
        self.config.write_text(
            f'[server]\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\n'
            f'[store]\nurl = "{url}"\nconnect_backoff = 0.01\n'
            f'[auth]\nsecret = "{SECRET}"\n'
        )

    def request(self, path: str, *, form: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers={"Accept": "application/json"})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def server_on(tmp_path):
    """``server_on(url)``: a started :class:`Server` (its port accepts once plugins started,
    schema upgrades included); stopped with SIGTERM at teardown, killed if it hangs."""
    started: list[Server] = []

    def start(url: str) -> Server:
        server = Server(tmp_path, url)
        started.append(server)
        server.start("--config", str(server.config), timeout=60)
        return server

    yield start
    for server in started:
        try:
            if server.process is not None and server.process.poll() is None:
                server.stop(30)
        finally:
            server.kill()


def _users(url: str) -> dict[str, tuple]:
    target = parse_store_url(url)
    connection = schema.connect(target)
    try:
        ctx = schema.SchemaContext(connection, target.provider)
        rows = ctx.query(f"SELECT name, uid, token_version, created_at FROM {ctx.quote('auth_user')}")
        return {row[0]: row[1:] for row in rows}
    finally:
        connection.close()


def test_a_0_1_database_upgrades_when_0_2_starts(empty_database_url, tmp_path, server_on):
    api_token = _build_0_1_database(empty_database_url, tmp_path)
    old_jwt = _old_session("olduser", 2)

    server = server_on(empty_database_url)
    log = server.output()
    assert "auth.0001-user-uid" in log and "auth.0002-api-token-user-version" in log
    assert "retrying" not in log and "cannot connect" not in log

    # the old password signs in, with the roles it had
    status, body = server.request("/auth/login", form={"username": "olduser", "password": OLD_PASSWORD})
    assert status == 200, body
    assert body["user"] == "olduser" and body["roles"] == ["admin"]
    status, me = server.request("/auth/me", token=body["token"])
    assert status == 200 and me["user"] == "olduser" and me["roles"] == ["admin"]
    status, _ = server.request("/auth/login", form={"username": "olduser", "password": "a wrong password"})
    assert status == 401

    # the 0.1 API token goes on working; a 0.1 session does not (documented)
    status, me = server.request("/auth/me", token=api_token)
    assert status == 200 and me["user"] == "olduser" and me["auth"] == "api_token"
    status, _ = server.request("/auth/me", token=old_jwt)
    assert status == 401

    users = _users(empty_database_url)
    assert set(users) == {"olduser", "other"}
    uids = {row[0] for row in users.values()}
    assert len(uids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", uid) for uid in uids)
    assert users["olduser"][1] == 2
    created = users["olduser"][2]
    created = created if isinstance(created, datetime) else datetime.fromisoformat(str(created))
    assert abs(created - datetime(2026, 1, 2, 3, 4, 5)) < timedelta(seconds=1)

    # a restart finds nothing to do and keeps every uid
    server.stop()
    again = server_on(empty_database_url)
    assert {row[0] for row in _users(empty_database_url).values()} == uids
    status, _ = again.request("/auth/login", form={"username": "other", "password": "other password"})
    assert status == 200


def test_the_status_command_shows_the_auth_steps_pending_then_applied(empty_database_url, tmp_path):
    _build_0_1_database(empty_database_url, tmp_path)
    config = tmp_path / "cli.toml"
    config.write_text(
        f'[server]\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\n[store]\nurl = "{empty_database_url}"\n'
    )
    env = hermetic_environ()
    env["BUTTERFLY_DISABLE_PLUGINS"] = "mq,ruqi,wuxing,xingqiao"

    def butterfly(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kernel", "--config", str(config), *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    status = butterfly("store", "status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"auth\.0001-user-uid\s+pending", status.stdout)
    assert re.search(r"auth\.0002-api-token-user-version\s+pending", status.stdout)
    dry = butterfly("store", "upgrade", "--dry-run")
    assert dry.returncode == 0 and "would run auth.0001-user-uid" in dry.stdout
    assert "uid" not in schema_columns(empty_database_url, "auth_user")
    done = butterfly("store", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "ran auth.0001-user-uid" in done.stdout and "ran auth.0002-api-token-user-version" in done.stdout
    status = butterfly("store", "status")
    assert status.returncode == 0 and "schema up to date" in status.stdout
    assert re.search(r"auth\.0001-user-uid\s+applied", status.stdout)


def schema_columns(url: str, table: str) -> list[str]:
    target = parse_store_url(url)
    connection = schema.connect(target)
    try:
        return schema.SchemaContext(connection, target.provider).columns(table)
    finally:
        connection.close()


def test_a_database_made_by_0_2_before_steps_were_recorded_is_left_as_it_is(empty_database_url, tmp_path, make_kernel):
    from pony.orm import Database, db_session

    import butterfly_auth.plugin
    import butterfly_store.plugin
    from butterfly_auth import models, upgrades, users

    target = parse_store_url(empty_database_url)
    db = Database()
    models.define_entities(db)
    db.bind(provider=target.provider, **target.options)
    db.generate_mapping(create_tables=True)
    with db_session:
        uid = db.entities[models.USER](name="early", password_hash="x").uid
    db.disconnect()

    kernel = make_kernel(
        plugins=[butterfly_store.plugin, butterfly_auth.plugin], settings={"store.url": empty_database_url}
    )
    assert users.get_user_by_uid(kernel, uid) is not None  # the uid it had
    connection = schema.connect(target)
    try:
        ctx = schema.SchemaContext(connection, target.provider)
        assert upgrades.USER_UID_INDEX not in ctx.indexes("auth_user")  # pony's unique index is enough
        assert set(schema.read_records(ctx)) == {step.id for step in upgrades.STEPS}
    finally:
        connection.close()
