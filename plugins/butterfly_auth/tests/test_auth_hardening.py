"""Attacks on the login route, against real waitress: parallel guessing, spoofed proxy
headers, passwords typed into the user name field, hostile ``next`` values."""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from urllib.parse import urlencode, urljoin, urlsplit

import pytest

import butterfly_trace.plugin as trace_plugin
from butterfly_auth import users
from kernel.testing import Client

LIMIT = 5
#: argon2 costly enough (~10 ms) that checks overlap, cheap enough for a CI core.
SLOW_ENOUGH = {"auth.argon2_time_cost": 2, "auth.argon2_memory_kib": 8192, "auth.argon2_parallelism": 1}


def post_login(url: str, form: dict, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    """One form POST to ``/auth/login`` over a fresh connection; redirects are not followed."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        body = urlencode(form).encode()
        all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        connection.request("POST", "/auth/login", body=body, headers=all_headers)
        reply = connection.getresponse()
        headers: dict[str, str] = {}
        for key, value in reply.getheaders():  # NOTE: several Set-Cookie headers are joined
            headers[key.lower()] = f"{headers[key.lower()]}, {value}" if key.lower() in headers else value
        return reply.status, headers, reply.read()
    finally:
        connection.close()


def count_calls(monkeypatch, obj, name: str) -> list[int]:
    """Wrap ``obj.name`` so every call is counted (the real function still runs)."""
    calls = [0]
    lock = threading.Lock()
    original = getattr(obj, name)

    def counted(*args, **kwargs):
        with lock:
            calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


def in_parallel(count: int, send) -> list[int]:
    """Run ``send(index)`` on ``count`` threads released together; their statuses."""
    barrier = threading.Barrier(count)
    statuses = [0] * count

    def worker(index: int) -> None:
        barrier.wait()
        statuses[index] = send(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return statuses


@pytest.mark.slow
def test_sixty_parallel_guesses_get_at_most_the_limit_of_password_checks(
    auth_kernel, add_user, live_server, monkeypatch
):
    kernel = auth_kernel(
        settings={**SLOW_ENOUGH, "auth.login_max_failures": LIMIT, "server.threads": 16}, plugins=[trace_plugin]
    )
    victim = add_user(kernel)
    checks = count_calls(monkeypatch, users, "verify_credentials")  # the argon2 check of a login
    server = live_server(kernel)

    def guess(index: int) -> int:
        # every request claims another client address: the peer is not a trusted proxy
        spoofed = {"X-Forwarded-For": f"198.51.100.{index}", "X-Real-IP": f"203.0.113.{index}"}
        return post_login(server.url, {"username": victim, "password": f"guess {index}"}, spoofed)[0]

    statuses = in_parallel(60, guess)
    assert sorted(set(statuses)) == [401, 429], statuses
    assert statuses.count(401) <= LIMIT and checks[0] <= LIMIT, (statuses.count(401), checks[0])

    # one address guessing 60 user names behind forged proxy headers is held to the limit too
    checks[0] = 0

    def spray(index: int) -> int:
        spoofed = {"X-Forwarded-For": f"10.{index}.0.1, 192.0.2.{index}", "X-Real-IP": f"192.0.2.{index}"}
        return post_login(server.url, {"username": f"spray{index}", "password": "x" * 12}, spoofed)[0]

    statuses = in_parallel(60, spray)
    assert statuses.count(401) <= LIMIT and checks[0] <= LIMIT, (statuses.count(401), checks[0])
    assert statuses.count(429) == 60 - statuses.count(401)


def test_a_successful_login_hands_its_attempt_back(auth_kernel, add_user):
    kernel = auth_kernel(settings={"auth.login_max_failures": 2})
    client = Client(kernel)
    name = add_user(kernel)
    for _ in range(5):  # right passwords never use up the address's attempts
        assert client.post("/auth/login", json={"username": name, "password": "correct horse battery"}).status == 200
    assert client.post("/auth/login", json={"username": name, "password": "wrong password"}).status == 401
    # a success clears the name's failures; the address keeps its one
    assert client.post("/auth/login", json={"username": name, "password": "correct horse battery"}).status == 200
    assert client.post("/auth/login", json={"username": name, "password": "wrong again"}).status == 401
    assert client.post("/auth/login", json={"username": name, "password": "correct horse battery"}).status == 429


def test_failed_login_logs_never_hold_an_unknown_name(auth_kernel, add_user):
    kernel = auth_kernel(plugins=[trace_plugin])
    client = Client(kernel)
    known = add_user(kernel)
    typed_password = "Tr0ub4dor-" + uuid.uuid4().hex[:8]  # a password typed into the user name field
    for form in (
        {"username": typed_password, "password": "whatever it was"},
        {"username": typed_password, "password": "again"},
        {"username": "not a name at all: " + typed_password, "password": "x"},
    ):
        assert client.post("/auth/login", data=form).status == 401
    assert client.post("/auth/login", json={"username": known, "password": "wrong password"}).status == 401
    kernel.shutdown()  # NOTE: flushes and closes the log files
    logs = "".join(path.read_text(encoding="utf-8") for path in kernel.log_dir.glob("*.log"))
    assert typed_password not in logs
    lines = [json.loads(line) for line in (kernel.log_dir / "acc.log").read_text().splitlines()]
    failures = [line for line in lines if line["path"] == "/auth/login"]
    notes = [line["res"][0] for line in failures]
    # the same unknown name gives the same fingerprint, so repeated tries still show up
    assert notes[0] == notes[1] != notes[2] and notes[0].startswith("login failed: #")
    assert failures[0]["params"]["username"] == notes[0].removeprefix("login failed: ")
    assert notes[3] == f"login failed: {known}" and failures[3]["params"]["username"] == known


NEXT_CASES = [
    ("/中文", "/%E4%B8%AD%E6%96%87"),
    ("/demo_fsm/get?ticket=工单 1&x=é", "/demo_fsm/get?ticket=%E5%B7%A5%E5%8D%95%201&x=%C3%A9"),
    ("/already%20encoded?a=%2F", "/already%20encoded?a=%2F"),
    ("//evil.example/", "/"),
    ("/\\evil.example", "/"),
    ("https://evil.example/", "/"),
    ("/\t/evil.example", "/"),
    ("/\u3000/evil.example", "/%E3%80%80/evil.example"),
    ("javascript:alert(1)", "/"),
]


@pytest.mark.parametrize(("next_path", "location"), NEXT_CASES)
def test_login_form_redirects_to_next_percent_encoded_and_never_off_site(
    auth_kernel, add_user, live_server, next_path, location
):
    kernel = auth_kernel()
    name = add_user(kernel)
    server = live_server(kernel)
    form = {"username": name, "password": "correct horse battery", "next": next_path}
    status, headers, _ = post_login(server.url, form, {"Accept": "text/html"})
    assert status == 303 and headers["location"] == location
    assert urlsplit(urljoin(server.url + "/auth/login", headers["location"])).netloc == urlsplit(server.url).netloc
    assert "butterfly_token=" in headers["set-cookie"]
