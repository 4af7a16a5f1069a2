"""The /ruqi/ page in headless Chromium, and the ``butterfly ruqi`` CLI over HTTP."""

from __future__ import annotations

import pytest

from butterfly_ruqi import service
from kernel.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def served(ruqi_kernel, tmp_path, live_server):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/ruqi.sqlite")
    server = live_server(kernel)  # starts the kernel (and its scheduler)
    return kernel, server


def test_page_lists_jobs_next_runs_and_history(served, chromium, tmp_path, poll):
    kernel, server = served
    state = kernel.extensions["ruqi"]
    service.add_job(
        state,
        {
            "job_id": "page-tick",
            "job_name": "<b>tick</b> every second",
            "job_trigger": "interval",
            "rule": "1s",
            "job_type": "handler",
            "target": "/ruqi_test/tick",
        },
    )
    service.add_job(
        state,
        {
            "job_id": "page-nightly",
            "job_trigger": "cron",
            "rule": "0 0 3 * * *",
            "job_type": "handler",
            "target": "/ruqi_test/tick",
            "timezone": "Asia/Shanghai",
        },
    )
    service.pause_job(state, "page-nightly")
    poll(lambda: service.get_history(state, job_id="page-tick", status="succeeded")["total"] >= 2)
    page = chromium.new_page()
    try:
        response = page.goto(f"{server.url}/ruqi/")
        assert response.status == 200 and "ruqi" in page.title()
        jobs = page.inner_text("#jobs")
        assert "page-tick" in jobs and "page-nightly" in jobs and "paused" in jobs and "interval" in jobs
        assert "<b>tick</b> every second" in jobs  # escaped, shown as text
        history = page.inner_text("#history")
        assert "succeeded" in history and "page-tick" in history
        assert page.locator("#instances tr").count() >= 2
        page.goto(f"{server.url}/ruqi/?job_id=page-nightly")
        assert "No runs recorded yet" in page.inner_text("body")
        shot = tmp_path / "ruqi-page.png"
        page.goto(f"{server.url}/ruqi/")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
    finally:
        page.close()


def test_cli_manages_jobs_over_http(served, capsys, poll):
    _, server = served
    base = ["ruqi", "--url", server.url]
    assert (
        main(
            [
                *base,
                "add",
                "cli-job",
                "--trigger",
                "cron",
                "--rule",
                "0 */5 * * * *",
                "--type",
                "handler",
                "--target",
                "/ruqi_test/tick",
                "--payload",
                '{"note": "cli"}',
            ]
        )
        == 0
    )
    assert main([*base, "list"]) == 0
    listing = capsys.readouterr().out
    assert "cli-job" in listing and "0 */5 * * * *" in listing and "1 job(s)" in listing
    assert main([*base, "run", "cli-job"]) == 0
    assert '"fire_id"' in capsys.readouterr().out

    def history():
        main([*base, "history", "cli-job"])
        out = capsys.readouterr().out
        return "succeeded" in out and out

    assert "cli-job" in poll(history)
    assert main([*base, "pause", "cli-job"]) == 0 and main([*base, "resume", "cli-job"]) == 0
    assert main([*base, "remove", "cli-job"]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                *base,
                "add",
                "bad",
                "--trigger",
                "interval",
                "--rule",
                "often",
                "--type",
                "handler",
                "--target",
                "/ruqi_test/tick",
            ]
        )
        == 1
    )
    assert "butterfly: error: ERR_BAD_PARAMS: rule: interval rule 'often'" in capsys.readouterr().err
    assert main(["ruqi", "--url", "http://127.0.0.1:9", "list"]) == 3
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err
