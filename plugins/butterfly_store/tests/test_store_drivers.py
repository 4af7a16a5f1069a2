"""A missing database driver is one line naming the extra to install, never pony's traceback."""

from __future__ import annotations

import sys

import pytest

import butterfly_store.plugin
from butterfly_store.drivers import require_driver
from kernel import ConfigError
from kernel.cli import main


def hide_modules(monkeypatch, *names: str) -> None:
    """Make ``import name`` fail as if the module were not installed."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(
    ("url", "hidden", "extra"),
    [
        ("mysql://root@127.0.0.1:3306/db", ("pymysql", "MySQLdb"), "mysql"),
        ("postgresql://root@127.0.0.1:5432/db", ("psycopg2", "psycopg2cffi"), "postgresql"),
    ],
)
def test_a_kernel_without_the_driver_names_the_extra(make_kernel, monkeypatch, url, hidden, extra):
    hide_modules(monkeypatch, *hidden)
    with pytest.raises(ConfigError) as caught:
        make_kernel(plugins=[butterfly_store.plugin], settings={"store.url": url})
    message = str(caught.value)
    assert message.endswith(f"pip install 'butterfly-store[{extra}]'")
    assert "\n" not in message


def test_a_driver_that_is_installed_is_accepted_and_sqlite_needs_none():
    require_driver("mysql", "mysql://root@127.0.0.1/db")  # PyMySQL: the dev install has the extra
    require_driver("sqlite", "sqlite:///:memory:")


def test_the_cli_prints_one_line_and_exits_1(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "auth,mq,ruqi,wuxing")
    hide_modules(monkeypatch, "pymysql", "MySQLdb")
    assert main(["--set", "store.url=mysql://root:s3cret@127.0.0.1:1/db", "routes"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("butterfly: error: no MySQL/MariaDB driver for [store] url mysql://root:***@")
    assert err[-1].endswith("pip install 'butterfly-store[mysql]'")
    assert "Traceback" not in "\n".join(err) and "s3cret" not in "\n".join(err)
