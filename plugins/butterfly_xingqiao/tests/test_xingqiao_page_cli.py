"""The /xingqiao/ pages in headless Chromium at phone and desktop widths, and the CLI over HTTP."""

from __future__ import annotations

import pytest

from butterfly_xingqiao import jobs
from kernel.cli import main

pytestmark = pytest.mark.slow
WIDTHS = (390, 1280)


@pytest.fixture
def served(xq_kernel, tmp_path, live_server):
    kernel = xq_kernel(f"sqlite:///{tmp_path}/xq.sqlite", start=False)
    return kernel, live_server(kernel)  # starts the kernel: consumer and sweep


def no_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_pages_list_jobs_and_draw_live_dags(served, chromium, tmp_path, counter, counter_key, xq):
    kernel, server = served
    state = kernel.extensions["xingqiao"]
    done = jobs.create_job(state, "fan", job_extra={"key": counter_key, "width": 6}, job_name="<b>fan</b> job")[
        "job_id"
    ]
    counter.sadd(f"{counter_key}:broken", "weak")
    failed = jobs.create_job(state, "fragile", job_extra={"key": counter_key, "retries": 0})["job_id"]
    running = jobs.create_job(state, "held", job_extra={"key": counter_key})["job_id"]
    assert xq.wait_job(kernel, done)["job_status"] == "finished"
    assert xq.wait_job(kernel, failed)["job_status"] == "failed"
    xq.wait_for(lambda: jobs.get_tasklist(state, running)[0]["task_status"] == "started")
    for width in WIDTHS:
        page = chromium.new_page(viewport={"width": width, "height": 900})
        problems: list[str] = []
        page.on(
            "console", lambda message, seen=problems: seen.append(message.text) if message.type == "error" else None
        )
        page.on("pageerror", lambda error, seen=problems: seen.append(str(error)))
        try:
            response = page.goto(f"{server.url}/xingqiao/")
            assert response.status == 200 and "xingqiao" in page.title()
            # the shared layout: one stylesheet, the navigation bar, a strict CSP, nothing inline
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert page.locator("link[rel=stylesheet]").count() == 1 and page.locator("style").count() == 0
            assert page.locator("#nav a[href='/xingqiao/'][aria-current=page]").count() == 1
            listing = page.inner_text("#jobs")
            assert "<b>fan</b> job" in listing  # escaped, shown as text
            assert page.locator("#jobs tbody tr").count() == 3
            assert "fan" in page.inner_text("#job-types") and no_overflow(page)
            page.screenshot(path=str(tmp_path / f"xingqiao-jobs-{width}.png"), full_page=True)

            page.click(f"a[href='/xingqiao/job?job_id={done}']")
            assert page.locator("#graph svg").count() == 1
            assert page.locator("#graph g.task.finished").count() == 8
            assert page.locator("#tasks tbody tr[data-status=finished]").count() == 8
            assert page.locator("body[data-refresh]").count() == 0  # ended: no live refresh
            assert page.locator("#delete-job").count() == 1 and page.locator("#cancel-job").count() == 0
            assert no_overflow(page)
            page.screenshot(path=str(tmp_path / f"xingqiao-job-{width}.png"), full_page=True)

            page.goto(f"{server.url}/xingqiao/job?job_id={failed}")
            assert page.inner_text("#job-status") == "failed"
            assert page.locator("#graph g.task.failed").count() == 1 and "ERR_BROKEN" in page.inner_text("#tasks")
            assert page.locator("#graph g.task.waiting").count() == 1

            page.goto(f"{server.url}/xingqiao/job?job_id={running}")
            assert page.locator("#graph g.task.started").count() == 1
            assert page.locator("#graph g.task.waiting").count() == 3
            assert page.locator("body[data-refresh]").count() == 1  # live while it runs
            assert page.locator("#cancel-job").count() == 1
            assert no_overflow(page)
            page.screenshot(path=str(tmp_path / f"xingqiao-running-{width}.png"), full_page=True)
            assert problems == []
        finally:
            page.close()
    for name in ("jobs", "job", "running"):
        for width in WIDTHS:
            assert (tmp_path / f"xingqiao-{name}-{width}.png").stat().st_size > 10_000
    counter.set(f"{counter_key}:release", 1)
    assert xq.wait_job(kernel, running)["job_status"] == "finished"


def test_cli_over_http(served, capsys, counter, counter_key):
    _, server = served
    base = ["xingqiao", "--url", server.url]
    assert main([*base, "create", "fan", f"key={counter_key}", "width:=3", "--name", "cli-fan", "--wait"]) == 0
    out = capsys.readouterr().out
    assert "created: cli-fan (5 tasks)" in out and "finished ret_stat=OK tasks 5/5" in out and '"total": 3' in out
    assert main([*base, "list", "--status", "finished"]) == 0
    listing = capsys.readouterr().out
    assert "cli-fan" in listing and "1 job(s)" in listing
    assert main([*base, "cancel", "1"]) == 1 and "ERR_JOB_STATUS" in capsys.readouterr().err
    counter.sadd(f"{counter_key}:broken", "weak")
    assert main([*base, "create", "fragile", f"key={counter_key}", "retries:=0", "--wait"]) == 1
    assert "failed ret_stat=ERR_JOB_EXE_FAILED" in capsys.readouterr().out
    counter.srem(f"{counter_key}:broken", "weak")
    assert main([*base, "retry", "2"]) == 0 and "retried=1" in capsys.readouterr().out
    assert main([*base, "status", "2", "--wait"]) == 0 and "finished" in capsys.readouterr().out
    assert main([*base, "create", "bad_tasks", f"key={counter_key}"]) == 1
    err = capsys.readouterr().err
    assert "ERR_BAD_PARAMS" in err and "at_all route: no route /nowhere/at_all" in err
    assert main([*base, "create", "fan", "width"]) == 2 and "key=value" in capsys.readouterr().err
    assert main(["xingqiao", "--url", "http://127.0.0.1:9", "list"]) == 3
    assert "cannot reach" in capsys.readouterr().err
