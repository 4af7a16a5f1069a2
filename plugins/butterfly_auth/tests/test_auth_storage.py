"""Users, passwords, sessions and API tokens on every store backend (SQLite, MariaDB, PostgreSQL)."""

from __future__ import annotations

import time

import pytest
from pony.orm import db_session

from butterfly_auth import api_tokens, models, sessions, users
from butterfly_store import get_db
from kernel.testing import Client

PASSWORD = "correct horse battery"


def test_user_password_is_argon2_hashed_and_roles_stored(auth_kernel, database_url, add_user):
    kernel = auth_kernel(database_url)
    name = add_user(kernel, roles=("admin", "ops"))
    info = users.get_user(kernel, name)
    assert info.roles == ("admin", "ops")
    with db_session:
        stored = get_db(kernel).entities[models.USER].get(name=name).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users.verify_credentials(kernel, name, PASSWORD).name == name
    assert users.verify_credentials(kernel, name, "wrong password") is None
    assert users.verify_credentials(kernel, "nobody-" + name, PASSWORD) is None
    assert name in [u.name for u in users.list_users(kernel)]


def test_user_management_errors(auth_kernel, database_url, add_user):
    kernel = auth_kernel(database_url)
    name = add_user(kernel)
    with pytest.raises(users.AuthError, match="already exists"):
        users.create_user(kernel, name, PASSWORD)
    with pytest.raises(users.AuthError, match="too short"):
        users.create_user(kernel, name + "x", "short")
    with pytest.raises(users.AuthError, match="invalid user name"):
        users.create_user(kernel, "bad name!", PASSWORD)
    with pytest.raises(users.AuthError, match="invalid role"):
        users.set_roles(kernel, name, ["Bad Role"])
    with pytest.raises(users.AuthError, match="no such user"):
        users.set_password(kernel, name + "zz", PASSWORD)
    assert users.get_user(kernel, name).roles == ()  # the failed set_roles changed nothing


def test_login_logout_revokes_the_session(auth_kernel, database_url, add_user, login, auth_header):
    kernel = auth_kernel(database_url)
    name = add_user(kernel)
    client = Client(kernel)
    token = login(client, name)["token"]
    assert client.get("/auth/me", headers=auth_header(token)).json()["user"] == name
    reply = client.post("/auth/logout", headers=auth_header(token))
    assert reply.json() == {"stat": "OK", "logged_out": True}
    again = client.get("/auth/me", headers=auth_header(token))
    assert again.status == 401 and "logged out" in again.headers["x-reason"]
    with db_session:
        assert get_db(kernel).entities[models.REVOKED_SESSION].exists(jti=sessions.decode(kernel, token)["jti"])


def test_set_password_ends_existing_sessions(auth_kernel, database_url, add_user, login, auth_header):
    kernel = auth_kernel(database_url)
    name = add_user(kernel)
    client = Client(kernel)
    token = login(client, name)["token"]
    users.set_password(kernel, name, "a brand new password")
    assert client.get("/auth/me", headers=auth_header(token)).status == 401
    assert client.post("/auth/login", json={"username": name, "password": PASSWORD}).status == 401
    login(client, name, "a brand new password")


def test_disabled_user_cannot_log_in_or_use_tokens(auth_kernel, database_url, add_user, login, auth_header):
    kernel = auth_kernel(database_url)
    name = add_user(kernel)
    client = Client(kernel)
    session = login(client, name)["token"]
    api_token, _ = api_tokens.create_token(kernel, name)
    users.set_active(kernel, name, False)
    assert client.get("/auth/me", headers=auth_header(session)).status == 401
    assert client.get("/auth/me", headers=auth_header(api_token)).status == 401
    assert client.post("/auth/login", json={"username": name, "password": PASSWORD}).status == 401


def test_api_token_create_use_revoke(auth_kernel, database_url, add_user, auth_header):
    kernel = auth_kernel(database_url)
    name = add_user(kernel)
    client = Client(kernel)
    token, info = api_tokens.create_token(kernel, name, label="deploy bot")
    assert token.startswith("bf_") and len(token) > 40 and info.prefix == token[:10]
    with db_session:
        row = get_db(kernel).entities[models.API_TOKEN][info.id]
        assert row.token_hash == api_tokens.hash_token(token) and token not in (row.token_hash, row.prefix + "x")
    me = client.get("/auth/me", headers=auth_header(token)).json()
    assert (me["user"], me["auth"]) == (name, "api_token")
    listed = list(api_tokens.list_tokens(kernel, name))
    assert [(t.id, t.label, t.usable) for t in listed] == [(info.id, "deploy bot", True)]
    api_tokens.revoke_token(kernel, info.id)
    refused = client.get("/auth/me", headers=auth_header(token))
    assert refused.status == 401 and "revoked" in refused.headers["x-reason"]
    assert api_tokens.list_tokens(kernel, name)[0].usable is False
    with pytest.raises(users.AuthError, match="no such token"):
        api_tokens.revoke_token(kernel, 10**9)


def test_api_token_over_http_is_shown_once_and_owner_scoped(auth_kernel, database_url, add_user, login, auth_header):
    kernel = auth_kernel(database_url)
    owner, other = add_user(kernel), add_user(kernel)
    client = Client(kernel)
    session = login(client, owner)["token"]
    created = client.post("/auth/tokens", json={"label": "ci", "expires_in": 3600}, headers=auth_header(session))
    assert created.status == 200, created.text
    token = created.json()["token"]
    listed = client.get("/auth/tokens", headers=auth_header(session)).json()["tokens"]
    assert [t["id"] for t in listed] == [created.json()["id"]] and "token" not in listed[0]
    assert client.get("/auth/verify", headers=auth_header(token)).headers["x-auth-user"] == owner
    # another user cannot revoke it
    other_session = login(client, other)["token"]
    assert (
        client.post("/auth/tokens/revoke", json={"id": created.json()["id"]}, headers=auth_header(other_session)).status
        == 404
    )
    assert (
        client.post("/auth/tokens/revoke", json={"id": created.json()["id"]}, headers=auth_header(session)).json()[
            "usable"
        ]
        is False
    )
    assert client.get("/auth/verify", headers=auth_header(token)).status == 401
    bad = client.post("/auth/tokens", json={"expires_in": "soon"}, headers=auth_header(session))
    assert bad.status == 400 and bad.json()["errors"][0]["param"] == "expires_in"


def test_api_token_expires(auth_kernel, database_url, add_user, auth_header):
    kernel = auth_kernel(database_url)
    name = add_user(kernel)
    token, _info = api_tokens.create_token(kernel, name, expires_in=1)
    client = Client(kernel)
    assert client.get("/auth/verify", headers=auth_header(token)).status == 200
    time.sleep(1.2)
    assert client.get("/auth/verify", headers=auth_header(token)).status == 401
    with pytest.raises(users.AuthError, match="positive"):
        api_tokens.create_token(kernel, name, expires_in=0)
