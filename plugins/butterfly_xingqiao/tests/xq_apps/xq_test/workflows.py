"""Workflows of xingqiao's tests."""

from __future__ import annotations

from butterfly_xingqiao import workflow


@workflow("fan")
def fan(flow, key: str, width: int = 10, seconds: float = 0.0):
    """One start task, ``width`` parallel parts, one task adding them up."""
    start = flow.task("/xq_test/work", key=key, tag="start")
    parts = [
        flow.task("/xq_test/work", key=key, tag=f"part{i}", value=i, seconds=seconds, after=[start])
        for i in range(width)
    ]
    flow.task("/xq_test/collect", key=key, values=[part["value"] for part in parts], save=True)


@workflow("chain")
def chain(flow, key: str, length: int = 5, seconds: float = 0.0):
    """``length`` tasks, each after the previous one."""
    previous = None
    for i in range(length):
        previous = flow.task(
            "/xq_test/work", key=key, tag=f"c{i}", seconds=seconds, after=[previous] if previous else []
        )


@workflow("fragile")
def fragile(flow, key: str, retries: int = 1):
    """A task that fails while its tag is marked broken, between two plain ones."""
    first = flow.task("/xq_test/work", key=key, tag="first")
    weak = flow.task("/xq_test/fragile", key=key, tag="weak", retries=retries, after=[first])
    flow.task("/xq_test/work", key=key, tag="last", value=weak["runs"], save=True)


@workflow("slow_start")
def slow_start(flow, key: str, seconds: float = 2.0, width: int = 3, timeout: float | None = None):
    """A slow first task, then ``width`` quick ones."""
    first = flow.task("/xq_test/work", key=key, tag="slow", seconds=seconds, timeout=timeout)
    for i in range(width):
        flow.task("/xq_test/work", key=key, tag=f"after{i}", after=[first])


@workflow("held")
def held(flow, key: str, width: int = 3):
    """A first task that runs until the test releases it, then ``width`` quick ones."""
    first = flow.task("/xq_test/hold", key=key, tag="held")
    for i in range(width):
        flow.task("/xq_test/work", key=key, tag=f"after{i}", after=[first])


@workflow("loop")
def loop(flow, key: str):
    """Three tasks in a circle (refused at creation)."""
    a = flow.task("/xq_test/work", key=key, tag="a")
    b = flow.task("/xq_test/work", key=key, tag="b", after=[a])
    c = flow.task("/xq_test/work", key=key, tag="c", after=[b])
    c >> a


@workflow("bad_tasks")
def bad_tasks(flow, key: str):
    """Every kind of mistake a task can make (refused at creation)."""
    first = flow.task("/xq_test/work", key=key, tag="ok")
    flow.task("/xq_test/typed", n="many")
    flow.task("/nowhere/at_all")
    flow.task("/xq_test/typed", n=1, colour="red")
    flow.task("/xq_test/typed", n=first["value"], shade=first["tag"])
    flow.task("/xq_test/work", key=key)


@workflow("missing_value")
def missing_value(flow, key: str):
    """A task reading a key its upstream never returns (fails when it would start)."""
    first = flow.task("/xq_test/work", key=key, tag="first")
    flow.task("/xq_test/typed", n=first["no_such_key"])


@workflow("explodes")
def explodes(flow, key: str):
    """A task whose handler raises, with two retries."""
    flow.task("/xq_test/explode", key=key, retries=2)


@workflow("mesh")
def mesh(flow, key: str, width: int = 40, tail: int = 10, seconds: float = 0.1):
    """A fan-out/fan-in, then a chain that carries the sum down to its last task (saved)."""
    start = flow.task("/xq_test/work", key=key, tag="start")
    parts = [
        flow.task("/xq_test/work", key=key, tag=f"part{i}", value=i, seconds=seconds, after=[start])
        for i in range(width)
    ]
    carried = flow.task("/xq_test/collect", key=key, values=[part["value"] for part in parts])["total"]
    for i in range(tail):
        carried = flow.task(
            "/xq_test/work", key=key, tag=f"tail{i}", value=carried, seconds=seconds, save=i == tail - 1
        )["value"]


@workflow("nul_result")
def nul_result(flow, key: str):
    """A handler result holding a NUL character, passed on to the next task."""
    first = flow.task("/xq_test/nul")
    flow.task("/xq_test/typed", n=1, names=[first["text"]], save=True)
