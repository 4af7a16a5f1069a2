"""Declaring workflows and drawing graphs: pure Python, no kernel."""

from __future__ import annotations

import itertools

import pytest

from butterfly_xingqiao import Flow, workflow
from butterfly_xingqiao.definition import REF_KEY, encode_params, workflow_of
from butterfly_xingqiao.graph import layers_of, render_svg


def test_tasks_refs_and_implicit_dependencies():
    flow = Flow("t")
    hello = flow.task("/demo_api/hello", str_info="x")
    ping = flow.task("/demo_api/ping", after=[hello], retries=2, timeout=5)
    last = flow.task("/demo_api/hello", str_info=hello["str_info"], items=[ping["a"]["b"], 3], save=True)
    assert [t.label for t in flow.tasks] == ["hello", "ping", "hello_2"]
    assert flow.tasks[1].upstream == {0} and flow.tasks[1].retries == 2 and flow.tasks[1].timeout == 5.0
    assert flow.tasks[2].upstream == {0, 1} and flow.tasks[2].save
    assert encode_params(flow.tasks[2].params) == {
        "str_info": {REF_KEY: [0, ["str_info"]]},
        "items": [{REF_KEY: [1, ["a", "b"]]}, 3],
    }
    assert repr(last["x"][0]) == "hello_2['x'][0]" and flow.errors == [] and flow.cycle() is None


def test_shift_operators_add_edges_and_a_cycle_is_found():
    flow = Flow("t")
    a, b, c = (flow.task(f"/app/{name}") for name in "abc")
    assert (a >> b) is b and ([a, b] >> c) is c
    assert flow.tasks[2].upstream == {0, 1} and flow.cycle() is None
    c >> a
    loop = flow.cycle()
    assert loop[0] == loop[-1] and len(loop) >= 3
    # each step of the reported loop really is an edge: upstream → downstream
    labels = {t.label: t for t in flow.tasks}
    for upstream, downstream in itertools.pairwise(loop):
        assert labels[upstream].index in labels[downstream].upstream


def test_mistakes_are_collected_with_task_and_param():
    flow = Flow("t")
    other = Flow("other").task("/app/x")
    flow.task("no-slash", retries=-1, timeout=0, after="first")
    flow.task("/app/y", value=other["v"])
    with pytest.raises(TypeError):
        flow.add_edge(other, flow.task("/app/z"))
    params = {(e["task"], e["param"]) for e in flow.errors}
    assert params == {
        ("no-slash", "route"),
        ("no-slash", "retries"),
        ("no-slash", "timeout"),
        ("no-slash", "after"),
        ("y", "value"),
    }


def test_workflow_decorator_and_param_binding():
    @workflow("greet")
    def greet(flow, name: str, times: int = 1):
        """Say hello."""
        flow.task("/demo_api/hello", str_info=name * times)

    declared = workflow_of(greet)
    assert declared.job_type == "greet" and declared.doc == "Say hello."
    assert declared.binder().bind({"name": "a", "times": "3"}) == {"name": "a", "times": 3}
    assert [p["name"] for p in declared.binder().describe()] == ["name", "times"]
    for bad in ("", "has space", "x" * 65):
        with pytest.raises(ValueError):
            workflow(bad)


def test_layers_and_svg():
    tasks = [
        {"task_index": 0, "task_label": "split", "task_cmd": "/a/split", "task_status": "finished", "upstream": []},
        *[
            {"task_index": i, "task_label": f"part{i}", "task_cmd": "/a/p", "task_status": "started", "upstream": [0]}
            for i in range(1, 5)
        ],
        {
            "task_index": 5,
            "task_label": "<total>",
            "task_cmd": "/a/t",
            "task_status": "waiting",
            "upstream": [1, 2, 3, 4],
            "error": "x & y",
            "attempts": 2,
            "cost": 1.5,
        },
    ]
    assert layers_of(tasks) == [[0], [1, 2, 3, 4], [5]]
    svg = render_svg(tasks, title="job <1>")
    assert svg.startswith("<svg") and svg.count('class="task ') == 6 and svg.count("marker-end=") == 8
    assert "&lt;total&gt;" in svg and "<total>" not in svg and "x &amp; y" in svg and "job &lt;1&gt;" in svg
    assert "<script" not in svg and "href" not in svg
    xs = lambda svg: {part.split('"')[0] for part in svg.split('<rect x="')[1:]}  # noqa: E731
    assert len(xs(render_svg(tasks)) - xs(svg[: svg.index('class="task')])) == 3  # 3 layers: 3 columns, left to right
    chain = [
        {
            "task_index": i,
            "task_label": f"c{i}",
            "task_cmd": "/a/c",
            "task_status": "finished",
            "upstream": [i - 1] if i else [],
        }
        for i in range(10)
    ]
    tall = render_svg(chain)
    assert len(xs(tall) - xs(tall[: tall.index('class="task')])) == 1  # a long chain runs top to bottom


@pytest.mark.parametrize("module", ["butterfly_xingqiao.hookspecs", "butterfly_mq.hookspecs"])
def test_plugin_hookspecs_are_documented(module):
    import importlib
    import inspect
    import re

    specs = [
        f for _, f in inspect.getmembers(importlib.import_module(module), inspect.isfunction) if f.__module__ == module
    ]
    assert specs
    for func in specs:
        doc = inspect.getdoc(func)
        assert func.__name__.startswith("butterfly_") and re.search(r"\bRuns\b", doc)
        for name in inspect.signature(func).parameters:
            assert re.search(rf"^:param {name}:", doc, re.MULTILINE), (func.__name__, name)
        assert re.search(r"^:return:", doc, re.MULTILINE)
