"""A state change never runs on a safe method — checked on the full install's route table.

Every installed plugin is loaded (entry points on), with the demo apps, a SQLite
store and the MQ on a private Redis database. After seeding some state through the
POST routes, every route that accepts GET is called as an admin, twice: with
parameters naming the seeded objects, and with parameters naming new ones. Around
each call the test takes a snapshot of every database row, every Redis key and the
process's log level; any difference fails the test and names the route. A route
added later (by any plugin) is walked the same way, from its signature.

A second test plants two routes that do change state on GET — one of them the old
``GET /demo_fsm/create`` — and checks that the walk reports exactly them.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from butterfly_auth import users
from kernel import Response, hookimpl
from kernel.testing import Client

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
FAST_HASHING = {"auth.argon2_time_cost": 1, "auth.argon2_memory_kib": 1024, "auth.argon2_parallelism": 1}
#: The Redis database of this module only (tests keep to their own prefixes or databases).
REDIS_DB = 11

#: Values for parameters the installed routes take, naming the objects :func:`seed` made.
EXISTING: dict[str, Any] = {
    "ticket": "CHG-walk",
    "title": "walked",
    "event": "approve",
    "str_info": "x",
    "a": 1,
    "b": 2,
    "rounds": 1,
    "n": 10,
    "delay": 0,
    "name": "demo/butterfly-demo.html",
    "level": "DEBUG",
    "message": "walk",
    "days": 30,
    "namespace": "walk",
    "section_name": "cfg",
    "section_version": "1",
    "instance_name": "inst",
    "item_name": "s|password",
    "items": "s|password",
    "extra_items": "s|password",
    "item_value": "changed",
    "item_default": "changed",
    "item_type": "string",
    "items_data": '{"s|password": "changed"}',
    "is_valid": "false",
    "job_id": "walk-job",
    "job_name": "walked",
    "job_trigger": "interval",
    "rule": "2h",
    "job_type": "handler",
    "target": "/demo_api/ping",
    "payload": '{"k": 1}',
    "queue": "/demo_async_job/work",
    "topic": "/demo_async_job/work",
    "state": "queued",
    "role": "admin",
    "next": "/",
    "label": "walked",
    "expires_in": 60,
    "id": 1,
}
#: The same, naming objects that do not exist yet (a GET that creates them is caught too).
FRESH: dict[str, Any] = {
    **EXISTING,
    "ticket": "CHG-fresh",
    "instance_name": "fresh",
    "item_name": "s|fresh",
    "job_id": "fresh-job",
    "namespace": "fresh",
    "section_name": "fresh",
}


def fallback(type_name: str | None) -> Any:
    """A value of the described type, for parameters :data:`EXISTING` does not name."""
    text = type_name or ""
    if text.startswith("Literal["):
        return text[len("Literal[") :].split(",")[0].strip(" ]'\"")
    for kind, value in (("int", 1), ("float", 1.0), ("bool", "true"), ("dict", "{}"), ("list", "walk")):
        if text.startswith(kind):
            return value
    return "walk"


def params_for(route, values: dict[str, Any]) -> dict[str, Any]:
    """Query parameters for ``route``: its own from its signature, else every known one.

    Required parameters always get a value; optional ones only when ``values`` names
    them (the others keep their defaults).
    """
    binder = route.meta.get("binder")
    if binder is None:  # a plugin's raw endpoint reads what it wants from the query
        return dict(values)
    return {
        spec["name"]: values.get(spec["name"], fallback(spec["type"]))
        for spec in binder.describe()
        if spec["required"] or spec["name"] in values
    }


class Snapshot:
    """Every row of the SQLite store, every key of the Redis database, the root log level."""

    def __init__(self, database: Path, redis_url: str) -> None:
        self.database = database
        self.redis = redis.Redis.from_url(redis_url)

    def take(self) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            for (table,) in tables:
                rows[table] = sorted(map(repr, connection.execute(f'SELECT * FROM "{table}"').fetchall()))
        keys = {key: self.redis.dump(key) for key in self.redis.scan_iter(count=1000)}
        return {"rows": rows, "keys": keys, "log_level": logging.getLogger().level}

    @staticmethod
    def difference(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
        changed = [
            f"table {t}"
            for t in sorted(set(before["rows"]) | set(after["rows"]))
            if before["rows"].get(t) != after["rows"].get(t)
        ]
        changed += [
            f"redis {k!r}"
            for k in sorted(set(before["keys"]) | set(after["keys"]))
            if before["keys"].get(k) != after["keys"].get(k)
        ]
        if before["log_level"] != after["log_level"]:
            changed.append("root log level")
        return changed


def full_install(make_kernel, tmp_path: Path, redis_url: str, plugins=()):
    """Every installed plugin with the demo apps; the MQ on this module's Redis database."""
    return make_kernel(
        plugins=plugins,
        load_entrypoints=True,
        settings={
            "store.url": f"sqlite:///{tmp_path}/walk.db",
            "router.handlers_dir": str(REPO / "handlers"),
            "router.static_dir": str(REPO / "static"),
            "mq.redis_url": redis_url,
            "mq.prefix": "walk" + uuid.uuid4().hex[:6],
            **FAST_HASHING,
        },
    )


def admin_headers(kernel) -> dict[str, str]:
    """Authorization of a signed-in admin (a session JWT: checking it writes nothing)."""
    users.create_user(kernel, "walker", PASSWORD, ["admin"])
    reply = Client(kernel).post("/auth/login", json={"username": "walker", "password": PASSWORD})
    assert reply.status == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['token']}"}


def seed(client: Client, headers: dict[str, str]) -> dict[str, Any]:
    """Objects for the reads to find, made through the write routes; the ids they got."""
    writes = [
        ("/demo_fsm/create", {"ticket": EXISTING["ticket"], "title": "seeded"}),
        ("/wuxing/section_create", {"namespace": "walk", "section_name": "cfg", "section_version": "1"}),
        (
            "/wuxing/section_item_add",
            {"namespace": "walk", "section_name": "cfg", "section_version": "1", "item_name": "s|password"},
        ),
        ("/wuxing/section_enable", {"namespace": "walk", "section_name": "cfg", "section_version": "1"}),
        (
            "/wuxing/instance_create",
            {"namespace": "walk", "instance_name": "inst", "section_name": "cfg", "section_version": "1"},
        ),
        (
            "/ruqi/add_job",
            {"job_id": "walk-job", "job_trigger": "interval", "rule": "1h", "job_type": "handler", "target": "/ping"},
        ),
        ("/demo_async_job/add_job", {"n": 10, "delay": 3600}),
        ("/auth/tokens", {"label": "seeded"}),
    ]
    made: dict[str, Any] = {}
    for path, params in writes:
        reply = client.post(path, json=params, headers=headers)
        assert reply.status == 200 and reply.json()["stat"] == "OK", (path, reply.text[:300])
        made.update({key: value for key, value in reply.json().items() if key == "msg_id"})
    return made


def walk(kernel, headers: dict[str, str], snapshot: Snapshot, made: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Call every GET-accepting route with both value sets; ``(offences, walked paths)``.

    :param made: ids :func:`seed` got (added to the existing objects' values)
    """
    client = Client(kernel)
    offences, walked = [], []
    for route in kernel.routes:
        if not route.accepts_safe_method:
            continue
        walked.append(route.path)
        for values in ({**EXISTING, **made}, FRESH):
            before = snapshot.take()
            reply = client.get(route.path, query=params_for(route, values), headers=headers)
            changed = Snapshot.difference(before, snapshot.take())
            if changed:
                offences.append(f"GET {route.path} (status {reply.status}) changed {', '.join(changed)}")
    return offences, walked


@pytest.fixture
def walk_redis_url(redis_server) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}"


@pytest.mark.slow
def test_no_route_of_the_full_install_changes_state_on_get(make_kernel, tmp_path, walk_redis_url):
    kernel = full_install(make_kernel, tmp_path, walk_redis_url)
    headers = admin_headers(kernel)
    client = Client(kernel)
    made = seed(client, headers)
    admin_routes = [route.path for route in kernel.routes if route.admin]
    assert admin_routes and all(route.methods for route in kernel.routes if route.admin)
    offences, walked = walk(kernel, headers, Snapshot(tmp_path / "walk.db", walk_redis_url), made)
    assert offences == []
    # the walk reached the plugins' reads, and they found the seeded objects
    assert {"/wuxing/instance_get", "/ruqi/get_job", "/demo_fsm/get", "/canghai/api/queues", "/auth/tokens"} <= set(
        walked
    )
    for path in ("/wuxing/instance_get", "/ruqi/get_job", "/demo_fsm/get", "/canghai/api/msg"):
        reply = client.get(path, query=params_for(kernel.routes.lookup(path), {**EXISTING, **made}), headers=headers)
        assert reply.json()["stat"] == "OK", (path, reply.text[:200])


def _bump(request):
    """A plain endpoint that writes to Redis on any method (what the walk must catch)."""
    redis.Redis.from_url(request.kernel.settings.get("mq", "redis_url")).incr("walkprobe:hits")
    return Response.json({"stat": "OK"})


class StateChangingGets:
    """Two planted holes: the old ``GET /demo_fsm/create`` and a raw endpoint writing Redis."""

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        import handlers.demo_fsm
        from butterfly_router.config import state_of
        from butterfly_router.routing import build_route

        # NOTE: demo_fsm.create as it was before it became POST only: an admin route reached by GET.
        spec = build_route(handlers.demo_fsm.create, state_of(kernel))
        register("/planted/fsm_create", handlers.demo_fsm.create, **{**spec, "methods": ("GET", "POST")})
        register("/planted/bump", _bump, kind="json", methods=("GET", "POST"), admin=True)


@pytest.mark.slow
def test_the_walk_catches_a_route_that_changes_state_on_get(make_kernel, tmp_path, walk_redis_url):
    kernel = full_install(make_kernel, tmp_path, walk_redis_url, plugins=[(StateChangingGets(), "planted")])
    headers = admin_headers(kernel)
    made = seed(Client(kernel), headers)
    offences, _ = walk(kernel, headers, Snapshot(tmp_path / "walk.db", walk_redis_url), made)
    assert [offence.split(" (")[0] for offence in offences] == [
        "GET /planted/bump",
        "GET /planted/bump",
        "GET /planted/fsm_create",
    ]
    assert "table wuxing_instance" in offences[-1]
