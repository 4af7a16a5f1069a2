"""``butterfly wuxing`` (the real entry point, in-process) against a real waitress server."""

from __future__ import annotations

import pytest

import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_wuxing.plugin
from butterfly_wuxing import wuxing_of
from butterfly_wuxing.cli import format_table
from kernel.cli import main
from kernel.testing import free_port


def run_cli(*argv: str) -> int:
    return main(["wuxing", *argv])


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
    assert run_cli("get", "web-1", "-n", "ops", "detail", "--url", server.url) == 0  # the README's order
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


def test_sections_are_created_filled_enabled_and_listed(server, capsys):
    common = ["--url", server.url, "-n", "web"]
    assert run_cli("section", "create", "app", "-V", "1", "i|workers:=4", "s|tier=gold", "--enable", *common) == 0
    out = capsys.readouterr().out
    assert "created section web/app version 1 (enabled)" in out
    assert [line.split()[:3] for line in out.splitlines()[3:5]] == [
        ["i|workers", "int", "4"],
        ["s|tier", "string", "gold"],
    ]
    assert run_cli("section", "create", "app", "-V", "2", *common) == 0
    assert "not enabled yet" in capsys.readouterr().out
    assert run_cli("section", "add-item", "app", "zone", "--type", "string", "--default", "a", "-V", "2", *common) == 0
    assert capsys.readouterr().out.strip() == "added zone (string, default a)"
    assert run_cli("section", "add-item", "app", "f|ratio", "-V", "2", "--default", "0.5", *common) == 0
    assert run_cli("section", "delete-item", "app", "f|ratio", "-V", "2", *common) == 0
    assert run_cli("create", "svc-1", "-s", "app", "-V", "2", *common) == 1  # not enabled yet
    assert "ERR_SECTION_IS_NOT_ENABLED" in capsys.readouterr().err
    assert run_cli("section", "enable", "app", "-V", "2", *common) == 0
    assert run_cli("section", "add-item", "app", "late", "--type", "int", "-V", "2", *common) == 1  # frozen now
    assert "ERR_SECTION_IS_ENABLED" in capsys.readouterr().err
    assert run_cli("section", "get", "app", "-V", "2", *common) == 0
    out = capsys.readouterr().out
    assert "zone" in out and "ratio" not in out and out.rstrip().endswith("1 item(s), enabled")
    assert run_cli("section", "list", *common) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:-1]]
    assert sorted((row[1], row[2], row[4]) for row in rows) == [("app", "1", "true"), ("app", "2", "true")]
    # instance values: k=v (the server converts it to the item's type) and k:=json
    assert run_cli("create", "svc-1", "-s", "app", "-V", "1", "i|workers=8", *common) == 0
    assert run_cli("get", "svc-1", *common) == 0
    assert "i|workers  8" in capsys.readouterr().out
    assert run_cli("section", "delete", "app", "-V", "2", *common) == 0
    assert run_cli("section", "get", "app", "-V", "2", *common) == 1


def test_usage_and_transport_errors_have_their_own_exit_codes(capsys):
    assert run_cli("create", "x", "-n", "ops", "--url", f"http://127.0.0.1:{free_port()}") == 2
    assert "needs --section, --section-version" in capsys.readouterr().err
    assert run_cli("get", "x", "-n", "ops", "--url", f"http://127.0.0.1:{free_port()}") == 3
    assert "cannot reach" in capsys.readouterr().err
    assert run_cli("create", "x", "-n", "ops", "-s", "h", "-V", "1", "--items", "{bad") == 2
    assert "--items is not valid JSON" in capsys.readouterr().err
    assert run_cli("get", "x", "-n", "ops", "simple", "detail") == 2
    assert "one view, simple or detail" in capsys.readouterr().err


def test_format_table_aligns_columns():
    assert format_table(["A", "LONGER"], [["xyz", 1], ["q", {"k": None}]]).splitlines() == [
        "A    LONGER",
        "---  -----------",
        "xyz  1",
        'q    {"k": null}',
    ]
