"""``butterfly wuxing`` against a real waitress server."""

from __future__ import annotations

import argparse

import pytest

import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from butterfly_wuxing import wuxing_of
from butterfly_wuxing.cli import add_command, format_table
from kernel.testing import free_port


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="butterfly")
    add_command(parser.add_subparsers())
    args = parser.parse_args(["wuxing", *argv])
    return args.run(args)


@pytest.fixture
def server(make_kernel, live_server, tmp_path):
    (tmp_path / "empty").mkdir()
    kernel = make_kernel(
        plugins=[butterfly_store.plugin, butterfly_router.plugin, butterfly_wuxing.plugin],
        settings={"store.url": f"sqlite:///{tmp_path}/cli.db", "router.handlers_dir": str(tmp_path / "empty")},
    )
    wx = wuxing_of(kernel)
    for version, items in (
        ("1", {"i|cpu": ("int", 4, "cores"), "region": ("string", "bj", "")}),
        ("2", {"i|cpu": ("int", 4, "cores"), "zone": ("string", "a", "")}),
    ):
        wx.ensure_section("ops", "host", version, items)
    return live_server(kernel)


def test_the_original_cli_commands_over_http(server, capsys):
    common = ["--url", server.url, "-n", "ops"]
    assert run_cli("create", "web-1", *common, "-s", "host", "-V", "1", "--items", '{"i|cpu": 8}') == 0
    assert run_cli("create", "web-2", *common, "-s", "host", "-V", "1") == 0
    capsys.readouterr()
    assert run_cli("get", "web-1", *common) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["ITEM", "VALUE"] and "i|cpu   8" in out
    assert run_cli("get", "web-1", "detail", *common) == 0
    assert "cores" in capsys.readouterr().out
    assert run_cli("update", "web-1", "i|cpu", "16", "8", *common) == 0
    assert capsys.readouterr().out.strip() == "web-1 i|cpu: 8 -> 16"
    assert run_cli("update", "web-1", "i|cpu", "32", "8", *common) == 1
    assert "ERR_ITEM_UPDATE_FAILED" in capsys.readouterr().err
    assert run_cli("list", *common, "-s", "host", "--extra", "i|cpu,region") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["INSTANCE", "VERSION", "MD5", "UPDATED", "i|cpu", "region"]
    assert lines[2].split()[0] == "web-1" and lines[2].split()[-2:] == ["16", "bj"]
    assert lines[-1] == "2 instance(s)"
    assert run_cli("upgrade", "web-1", "2", *common) == 0
    out = capsys.readouterr().out
    assert "zone" in out and "region" in out and "now uses section version 2" in out
    assert run_cli("history", "web-1", "i|cpu", *common) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()[2:4]] == ["update", "create"]
    assert run_cli("delete", "web-1", *common) == 0
    assert run_cli("get", "web-1", *common) == 1
    assert "ERR_INSTANCE_IS_NOT_EXIST" in capsys.readouterr().err


def test_usage_and_transport_errors_have_their_own_exit_codes(capsys):
    assert run_cli("create", "x", "-n", "ops", "--url", f"http://127.0.0.1:{free_port()}") == 2
    assert "needs --section, --section-version" in capsys.readouterr().err
    assert run_cli("get", "x", "-n", "ops", "--url", f"http://127.0.0.1:{free_port()}") == 3
    assert "cannot reach" in capsys.readouterr().err
    assert run_cli("create", "x", "-n", "ops", "-s", "h", "-V", "1", "--items", "{bad") == 2


def test_format_table_aligns_columns():
    assert format_table(["A", "LONGER"], [["xyz", 1], ["q", {"k": None}]]).splitlines() == [
        "A    LONGER",
        "---  -----------",
        "xyz  1",
        'q    {"k": null}',
    ]
