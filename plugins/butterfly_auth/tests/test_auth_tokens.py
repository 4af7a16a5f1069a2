"""Session JWTs (forgery, expiry), the login rate limit, the secret file and settings."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from butterfly_auth import sessions
from butterfly_auth.config import SECRET_FILE, state_of
from butterfly_auth.ratelimit import FailureLimiter
from kernel import ConfigError
from kernel.testing import Client


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _me(client, token):
    return client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_forged_jwts_are_refused(auth_kernel, add_user, login):
    kernel = auth_kernel()
    name, admin = add_user(kernel), add_user(kernel, ("admin",))
    client = Client(kernel)
    good = login(client, name)["token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    assert _me(client, good).status == 200
    header, payload, signature = good.split(".")
    forged = {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, admin": f"{_b64({'alg': 'none'})}.{_b64({**claims, 'sub': admin})}.",
        "tampered payload": f"{header}.{_b64({**claims, 'sub': admin})}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "wrong key": jwt.encode(claims, "another-secret-of-sufficient-length-123456", algorithm="HS256"),
        "HS512 with our key": jwt.encode(claims, state_of(kernel).secret, algorithm="HS512"),
        "missing exp": jwt.encode(
            {k: v for k, v in claims.items() if k != "exp"}, state_of(kernel).secret, algorithm="HS256"
        ),
        "sub not a string": jwt.encode({**claims, "sub": 1}, state_of(kernel).secret, algorithm="HS256"),
        "unknown user": jwt.encode({**claims, "sub": "ghost"}, state_of(kernel).secret, algorithm="HS256"),
    }
    for label, token in forged.items():
        reply = _me(client, token)
        assert reply.status == 401, label
        assert client.get("/auth/users", headers={"Authorization": f"Bearer {token}"}).status == 401, label


def test_session_expires_after_token_ttl(auth_kernel, add_user, login):
    kernel = auth_kernel(settings={"auth.token_ttl": 1})
    client = Client(kernel)
    reply = login(client, add_user(kernel))
    assert reply["expires_in"] == 1 and _me(client, reply["token"]).status == 200
    time.sleep(2.1)  # PyJWT compares whole seconds: exp = iat + 1 is past once 2 s have gone by
    expired = _me(client, reply["token"])
    assert expired.status == 401 and "expired" in expired.headers["x-reason"]


def test_login_is_rate_limited_per_user_and_per_ip(auth_kernel, add_user):
    kernel = auth_kernel(settings={"auth.login_max_failures": 3, "auth.login_failure_window": 60})
    client = Client(kernel)
    victim, other = add_user(kernel), add_user(kernel)
    for attempt in range(3):
        reply = client.post(
            "/auth/login", json={"username": victim, "password": f"guess {attempt}"}, remote_addr=f"10.0.0.{attempt}"
        )
        assert reply.status == 401 and reply.json()["stat"] == "ERR_UNAUTHORIZED"
    # the user is locked, from any address, even with the right password
    locked = client.post(
        "/auth/login", json={"username": victim, "password": "correct horse battery"}, remote_addr="10.9.9.9"
    )
    assert locked.status == 429 and locked.json()["stat"] == "ERR_TOO_MANY_REQUESTS"
    assert 0 < int(locked.headers["retry-after"]) <= 60
    # one address trying many user names is locked too
    for attempt in range(3):
        client.post("/auth/login", json={"username": f"nobody{attempt}", "password": "x" * 9}, remote_addr="192.0.2.7")
    assert (
        client.post(
            "/auth/login", json={"username": other, "password": "correct horse battery"}, remote_addr="192.0.2.7"
        ).status
        == 429
    )
    assert (
        client.post(
            "/auth/login", json={"username": other, "password": "correct horse battery"}, remote_addr="192.0.2.8"
        ).status
        == 200
    )


def test_limiter_window_and_reset():
    now = [1000.0]
    limiter = FailureLimiter(2, 60, clock=lambda: now[0])
    limiter.record_failure("user:a", "ip:1")
    assert limiter.retry_after("user:a") == 0
    now[0] += 10
    limiter.record_failure("user:a", "ip:1")
    assert limiter.retry_after("user:a") == 50  # the first failure leaves the window at t=1060
    assert limiter.retry_after("user:b", "ip:1") == 50
    now[0] += 50.5  # t=1060.5: the first failure has left the window
    assert limiter.retry_after("user:a") == 0
    limiter.record_failure("user:a", "ip:1")
    assert limiter.retry_after("user:a") == 10  # until the t=1010 failure leaves, at t=1070
    limiter.reset("user:a")
    assert limiter.retry_after("user:a") == 0 and limiter.retry_after("ip:1") == 10


def test_login_bad_input_is_a_clear_400(auth_kernel):
    client = Client(auth_kernel())
    missing = client.post("/auth/login", json={"username": "alice"})
    assert missing.status == 400 and missing.json()["errors"] == [{"param": "password", "reason": "required"}]
    wrong_type = client.post("/auth/login", json={"username": ["a"], "password": 5})
    assert wrong_type.status == 400 and {e["param"] for e in wrong_type.json()["errors"]} == {"username", "password"}
    assert client.post("/auth/login", body=b"{not json", headers={"Content-Type": "application/json"}).status == 400
    assert client.post("/auth/login", json=["a", "b"]).status == 400


def test_generated_secret_is_private_and_stable(auth_kernel, add_user, login):
    kernel = auth_kernel()
    assert not (kernel.data_dir / SECRET_FILE).exists()  # nothing written until first use
    token = login(Client(kernel), add_user(kernel))["token"]
    path = kernel.data_dir / SECRET_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    # a second kernel on the same data dir (a restart) accepts the old session
    again = auth_kernel()
    assert again.data_dir == kernel.data_dir and sessions.decode(again, token) is not None


def test_configured_secret_is_used_and_checked(auth_kernel, add_user, login):
    secret = "s" * 40
    kernel = auth_kernel(settings={"auth.secret": secret})
    token = login(Client(kernel), add_user(kernel))["token"]
    assert jwt.decode(token, secret, algorithms=["HS256"])["sub"]
    assert not (kernel.data_dir / SECRET_FILE).exists()
    with pytest.raises(ConfigError, match="too short"):
        auth_kernel(settings={"auth.secret": "short"})
    with pytest.raises(ConfigError, match="token_ttl"):
        auth_kernel(settings={"auth.token_ttl": 0})
