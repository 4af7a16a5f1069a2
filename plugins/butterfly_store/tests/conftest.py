"""Fixtures of the store tests: a probe plugin with one entity and three routes."""

from __future__ import annotations

import pytest

from kernel import Response, hookimpl


class ProbePlugin:
    """Defines ``StoreProbe`` and routes that write it: ``/probe/add``, ``/probe/fail``,
    ``/probe/dup``, ``/probe/nested``."""

    @hookimpl(optionalhook=True)
    def butterfly_store_define_entities(self, db):
        from pony.orm import PrimaryKey, Required

        class StoreProbe(db.Entity):
            _table_ = "store_probe"
            name = PrimaryKey(str, 64)
            note = Required(str, 64)

    @hookimpl
    def butterfly_register_routes(self, register, kernel):
        from butterfly_store import get_db

        def probe():
            return get_db(kernel).entities["StoreProbe"]

        def add(request):
            probe()(name=request.params["name"], note="added")
            return Response.json({"stat": "OK"})

        def fail(request):
            probe()(name=request.params["name"], note="doomed")
            raise RuntimeError("boom after a write")

        def dup(request):
            # NOTE: no flush: the duplicate key only fails at commit, after the handler returned.
            probe()(name=request.params["name"], note="first")
            return Response.json({"stat": "OK"})

        def nested(request):
            probe()(name=request.params["name"], note="outer")
            inner = kernel.call("/probe/add", {"name": request.params["name"] + "-inner"})
            return Response.json({"stat": inner.stat or "OK"})

        register("/probe/add", add)
        register("/probe/fail", fail)
        register("/probe/dup", dup)
        register("/probe/nested", nested)


@pytest.fixture
def probe_plugin():
    """A fresh probe plugin object (register it with make_kernel)."""
    return ProbePlugin()


@pytest.fixture
def probe_factory():
    """The probe plugin class (to build several)."""
    return ProbePlugin


def _probe_names(kernel, prefix: str) -> set[str]:
    """Names of StoreProbe rows starting with ``prefix`` (own session)."""
    from pony.orm import db_session, select

    from butterfly_store import get_db

    entity = get_db(kernel).entities["StoreProbe"]
    with db_session:
        return set(select(p.name for p in entity if p.name.startswith(prefix)))


@pytest.fixture
def probe_names():
    """``probe_names(kernel, prefix)`` → names of StoreProbe rows starting with ``prefix``."""
    return _probe_names
