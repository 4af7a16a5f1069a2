"""app.log / err.log: reqid on every line, tracebacks, rotation, per-kernel files."""

from __future__ import annotations

import gc
import json
import logging
import threading

import structlog

import butterfly_trace.plugin as trace_plugin
from butterfly_trace import files
from kernel.testing import Client, build_kernel


def test_every_handler_log_line_carries_the_reqid(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    reqid = Client(kernel).get("/ok", query={"a": "1"}).headers["x-reqid"]
    lines = [
        line
        for line in read_json_lines(kernel.log_dir / "app.log")
        if line.get("logger", "").startswith("tests.trace_app")
    ]
    assert [line["event"] for line in lines] == ["handling ok", "a stdlib warning from the handler"]
    assert all(line["reqid"] == reqid for line in lines)
    assert structlog.contextvars.get_contextvars() == {}  # cleared after the request


def test_in_process_call_log_lines_carry_reqid_and_parent(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    kernel.call("/ok", {}, source="mq", reqid="msg-7", parent_reqid="http-1")
    (line,) = [line for line in read_json_lines(kernel.log_dir / "app.log") if line["event"] == "handling ok"]
    assert (line["reqid"], line["parent_reqid"]) == ("msg-7", "http-1")
    assert structlog.contextvars.get_contextvars() == {}


def test_nested_call_restores_the_outer_context(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    reqid = Client(kernel).get("/nested").headers["x-reqid"]
    events = {line["event"]: line for line in read_json_lines(kernel.log_dir / "app.log")}
    assert events["before inner call"]["reqid"] == reqid
    assert events["after inner call"]["reqid"] == reqid
    assert "parent_reqid" not in events["after inner call"]
    assert events["handling ok"]["parent_reqid"] == reqid and events["handling ok"]["reqid"] != reqid


def test_handler_exception_goes_to_err_log_not_to_the_client(trace_kernel, read_lines):
    kernel = trace_kernel()
    response = Client(kernel).get("/boom")
    assert response.status == 500
    assert response.json() == {"stat": "ERR_SERVER_EXCEPTION"}
    assert b"Traceback" not in response.body and b"division" not in response.body
    errors = [json.loads(line) for line in read_lines(kernel.log_dir / "err.log")]
    (error,) = [line for line in errors if line["event"] == "handler exception"]
    assert error["reqid"] == response.headers["x-reqid"] and error["path"] == "/boom"
    assert error["level"] == "error"
    assert "Traceback (most recent call last)" in error["traceback"]
    assert "in boom" in error["traceback"] and "ZeroDivisionError: division by zero in boom" in error["traceback"]
    every_log = "\n".join(
        line for name in ("err.log", "app.log", "acc.log") for line in read_lines(kernel.log_dir / name)
    )
    assert "hunter2-local-secret" not in every_log  # frame locals are never logged


def test_err_log_holds_warnings_only_app_log_holds_all(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    Client(kernel).get("/ok")
    app_events = [line["event"] for line in read_json_lines(kernel.log_dir / "app.log")]
    err_events = [line["event"] for line in read_json_lines(kernel.log_dir / "err.log")]
    assert "handling ok" in app_events and "handling ok" not in err_events
    assert "a stdlib warning from the handler" in err_events


def test_slow_requests_log_a_warning_with_timings(trace_kernel, read_json_lines):
    kernel = trace_kernel({"trace.slow_threshold": 0.005})
    client = Client(kernel)
    client.get("/slow")
    slow = [line for line in read_json_lines(kernel.log_dir / "err.log") if line["event"] == "slow request"]
    assert len(slow) == 1
    assert slow[0]["path"] == "/slow" and slow[0]["cost"] >= 0.005 and "sleep" in slow[0]["talk"]


def test_rotation_keeps_every_line(trace_kernel, read_json_lines):
    kernel = trace_kernel({"trace.log_max_bytes": 4000, "trace.log_backups": 50})
    client = Client(kernel)
    threads = [
        threading.Thread(target=lambda: [client.get("/ok", query={"i": str(i)}) for i in range(25)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log_files = sorted(kernel.log_dir.glob("acc.log*"))
    assert len(log_files) > 3, log_files
    assert all(path.stat().st_size <= 4000 for path in log_files)
    lines = [line for path in log_files for line in read_json_lines(path)]  # every line is whole JSON
    assert len(lines) == 100 and len({line["reqid"] for line in lines}) == 100
    for name in ("app.log", "err.log"):  # the stdlib logs rotate the same way
        assert len(list(kernel.log_dir.glob(name + ".*"))) >= 1


def test_rotation_drops_only_the_oldest_backup(tmp_path):
    from butterfly_trace.files import RotatingWriter

    writer = RotatingWriter(tmp_path / "x.log", max_bytes=10, backups=2)
    for index in range(5):
        writer.write(f"line{index}\n".encode())
    writer.close()
    contents = [(tmp_path / name).read_text() for name in ("x.log", "x.log.1", "x.log.2")]
    assert contents == ["line4\n", "line3\n", "line2\n"]
    assert not (tmp_path / "x.log.3").exists()


def test_zero_backups_never_rotates(tmp_path):
    from butterfly_trace.files import RotatingWriter

    writer = RotatingWriter(tmp_path / "x.log", max_bytes=10, backups=0)
    for index in range(5):
        writer.write(f"line{index}\n".encode())
    writer.close()
    assert (tmp_path / "x.log").read_text().count("\n") == 5
    assert list(tmp_path.iterdir()) == [tmp_path / "x.log"]


def test_two_kernels_write_their_own_files(trace_kernel, tmp_path, read_json_lines):
    first = trace_kernel({"server.log_dir": str(tmp_path / "first")})
    second = trace_kernel({"server.log_dir": str(tmp_path / "second")})
    Client(first).get("/ok", query={"who": "first"})
    Client(second).get("/raw")
    Client(second).get("/raw")
    assert [line["path"] for line in read_json_lines(tmp_path / "first" / "acc.log")] == ["/ok"]
    assert [line["path"] for line in read_json_lines(tmp_path / "second" / "acc.log")] == ["/raw", "/raw"]


def test_same_log_dir_shares_one_writer_and_no_duplicate_handlers(trace_kernel, read_json_lines):
    first, second = trace_kernel(), trace_kernel()
    assert first.log_dir == second.log_dir
    mine = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, files.LogFileHandler) and h.writer.path.parent == first.log_dir
    ]
    assert sorted(h.writer.path.name for h in mine) == ["app.log", "err.log"]  # once, not per kernel
    Client(first).get("/ok")
    Client(second).get("/ok")
    assert len(read_json_lines(first.log_dir / "acc.log")) == 2
    app_lines = [line for line in read_json_lines(first.log_dir / "app.log") if line["event"] == "handling ok"]
    assert len(app_lines) == 2  # each record written once


def test_shutdown_detaches_handlers_and_closes_files(tmp_path):
    kernel = build_kernel(tmp_path, [trace_plugin])
    log_dir = kernel.log_dir
    mine = [key for key in files.open_keys() if str(log_dir) in key]
    assert len(mine) == 2
    kernel.startup()
    kernel.shutdown()
    assert not [key for key in files.open_keys() if str(log_dir) in key]
    assert not [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, files.LogFileHandler) and str(log_dir) in str(h.writer.path)
    ]


def test_never_started_kernel_releases_files_when_collected(tmp_path):
    kernel = build_kernel(tmp_path, [trace_plugin])
    log_dir = str(kernel.log_dir)
    assert any(log_dir in key for key in files.open_keys())
    del kernel
    gc.collect()
    assert not any(log_dir in key for key in files.open_keys())


def test_concurrent_writers_lose_no_line(tmp_path):
    from butterfly_trace.files import RotatingWriter

    writer = RotatingWriter(tmp_path / "c.log", max_bytes=20_000, backups=100)

    def hammer(thread_no: int) -> None:
        for line_no in range(500):
            writer.write(json.dumps({"t": thread_no, "n": line_no, "pad": "x" * 40}).encode() + b"\n")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    paths = sorted(tmp_path.glob("c.log*"))
    assert len(paths) > 5 and all(path.stat().st_size <= 20_000 for path in paths)
    records = [json.loads(line) for path in paths for line in path.read_text().splitlines()]
    assert len(records) == 8 * 500
    for thread_no in range(8):
        assert sorted(r["n"] for r in records if r["t"] == thread_no) == list(range(500))


def test_writer_reopens_after_close(tmp_path):
    from butterfly_trace.files import RotatingWriter

    writer = RotatingWriter(tmp_path / "r.log", max_bytes=0, backups=0)
    writer.write(b"one\n")
    writer.close()
    writer.write(b"two\n")
    writer.close()
    assert (tmp_path / "r.log").read_text() == "one\ntwo\n"
