"""Issue 9 for the logs: a traceback is written once, and secrets inside JSON-valued parameters are masked."""

from __future__ import annotations

from kernel.testing import Client


def test_a_5xx_traceback_goes_to_err_log_only(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    assert Client(kernel).get("/boom").status == 500
    errors = [line for line in read_json_lines(kernel.log_dir / "err.log") if line["event"] == "handler exception"]
    (error,) = errors
    assert "Traceback (most recent call last)" in error["traceback"]
    (app_line,) = [line for line in read_json_lines(kernel.log_dir / "app.log") if line["event"] == "handler exception"]
    # the same line, without the traceback: one bad request no longer fills both files
    assert app_line["traceback"] == "in err.log"
    assert app_line["reqid"] == error["reqid"] and app_line["error"] == error["error"]
    app_text = (kernel.log_dir / "app.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" not in app_text


def test_a_flood_of_one_error_writes_a_few_tracebacks_and_a_count(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    client = Client(kernel)
    for _ in range(50):
        assert client.get("/boom").status == 500
    kernel.error_limiter.flush()
    lines = read_json_lines(kernel.log_dir / "err.log")
    assert len([line for line in lines if line["event"] == "handler exception"]) == 3
    (count,) = [line for line in lines if line["event"] == "identical errors suppressed"]
    assert count["suppressed"] == 47 and "ZeroDivisionError" in count["error"]
    # the access log still has every request
    assert len([line for line in read_json_lines(kernel.log_dir / "acc.log") if line["path"] == "/boom"]) == 50


def test_secrets_inside_json_text_parameters_are_redacted(trace_kernel, read_json_lines, read_lines):
    kernel = trace_kernel()
    client = Client(kernel)
    client.get("/ok", query={"filter": '{"user": "alice", "password": "hunter2", "deep": [{"api_token": "t-1"}]}'})
    client.post("/ok", data={"payload": ' [{"secret": "s-2"}, 1]', "note": "{not json"})
    first, second = read_json_lines(kernel.log_dir / "acc.log")
    assert first["params"]["filter"] == '{"user":"alice","password":"***","deep":[{"api_token":"***"}]}'
    assert second["params"] == {"payload": '[{"secret":"***"},1]', "note": "{not json"}
    text = "\n".join(read_lines(kernel.log_dir / "acc.log"))
    assert "hunter2" not in text and "t-1" not in text and "s-2" not in text


def test_huge_or_hostile_json_text_parameters_cannot_break_the_access_log(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    client = Client(kernel)
    client.get("/ok", query={"big": '{"password": "' + "x" * 100_000 + '"}', "deep": "[" * 5000 + "]" * 5000})
    (line,) = read_json_lines(kernel.log_dir / "acc.log")
    assert line["params"]["big"] == "<JSON text, 100016 chars>"
    assert line["params"]["deep"].startswith("[[[") and len(line["params"]["deep"]) < 400


def test_writers_of_two_processes_follow_each_others_rotation(tmp_path):
    from butterfly_trace.files import RotatingWriter

    path = tmp_path / "acc.log"
    # two writers on one file, as two workers of `run --workers 2` have
    first = RotatingWriter(path, max_bytes=400, backups=20, rename_check_interval=0)
    second = RotatingWriter(path, max_bytes=400, backups=20, rename_check_interval=0)
    try:
        for number in range(60):
            (first if number % 2 else second).write(b"line %03d " % number + b"x" * 20 + b"\n")
    finally:
        first.close()
        second.close()
    files = sorted(tmp_path.glob("acc.log*"))
    lines = [line for file in files for line in file.read_bytes().splitlines()]
    assert sorted(lines) == sorted(b"line %03d " % n + b"x" * 20 for n in range(60))  # nothing lost
    # nobody kept writing into a file the other had rotated away: every file stays near the limit
    assert all(file.stat().st_size <= 400 for file in files), [file.stat().st_size for file in files]
    assert path.stat().st_size > 0


def test_access_lines_name_the_worker_under_run_workers(trace_kernel, read_json_lines, monkeypatch):
    from kernel import logs

    kernel = trace_kernel()
    Client(kernel).get("/ok")
    # `run --workers N` fills kernel.logs.PROCESS_FIELDS in each worker process
    monkeypatch.setattr(logs, "PROCESS_FIELDS", {"worker": 1, "pid": 4242}, raising=False)
    Client(kernel).get("/ok")
    single, worker = read_json_lines(kernel.log_dir / "acc.log")
    assert "worker" not in single and "pid" not in single
    assert (worker["worker"], worker["pid"], worker["path"]) == (1, 4242, "/ok")
