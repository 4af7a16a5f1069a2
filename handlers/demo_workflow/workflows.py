"""The 星桥 xingqiao demo workflows, found by the plugin in this app's ``workflows.py``."""

from __future__ import annotations

from butterfly_xingqiao import workflow


@workflow("word_count")
def word_count(flow, text: str, parts: int = 4):
    """Count words: split, count each part in parallel, add up, publish."""
    if not 1 <= parts <= 100:
        raise ValueError("parts must be 1..100")
    split = flow.task("/demo_workflow/split", text=text, parts=parts)
    counts = [flow.task("/demo_workflow/count", chunk=split["chunks"][i], retries=2) for i in range(parts)]
    total = flow.task(
        "/demo_workflow/total",
        counts=[part["words"] for part in counts],
        longest=[part["longest"] for part in counts],
        save=True,
    )
    flow.task("/demo_workflow/publish", words=total["words"], retries=1, timeout=30, save=True)


@workflow("greet")
def greet(flow, name: str, times: int = 1):
    """The design document's example, over the demo_api handlers."""
    hello = flow.task("/demo_api/hello", str_info=name * times)
    ping = flow.task("/demo_api/ping", after=[hello], retries=2)
    flow.task("/demo_api/hello", str_info=hello["str_info"], after=[ping], save=True)
