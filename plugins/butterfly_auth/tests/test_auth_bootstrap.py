"""The initial admin: created at server start-up on an empty store, its password in a 0600 file."""

from __future__ import annotations

import stat
import threading

import pytest

import butterfly_trace.plugin as trace_plugin
from butterfly_auth import bootstrap, users
from kernel.cli import main
from kernel.testing import Client

PASSWORD_FILE = "initial_admin_password"


def login(kernel, name: str, password: str):
    """``POST /auth/login`` → the reply."""
    return Client(kernel).post("/auth/login", json={"username": name, "password": password})


def admin_warnings(events: list[dict]) -> list[dict]:
    """The bootstrap's warning among captured structlog events."""
    return [e for e in events if e["log_level"] == "warning" and "initial admin" in e["event"]]


def test_startup_creates_admin_with_a_private_password_file(auth_kernel, captured_logs):
    kernel = auth_kernel()
    path = kernel.data_dir / PASSWORD_FILE
    assert users.list_users(kernel) == [] and not path.exists()  # building the kernel did nothing
    kernel.startup()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text(encoding="ascii").strip()
    assert len(password) >= 24
    assert [(u.name, u.roles) for u in users.list_users(kernel)] == [("admin", ("admin",))]
    assert sorted(p.name for p in kernel.data_dir.iterdir() if p.name.startswith(".")) == []  # no temp left

    reply = login(kernel, "admin", password)
    assert reply.status == 200, reply.text
    assert reply.json()["user"] == "admin" and reply.json()["roles"] == ["admin"]
    admin_page = Client(kernel).get("/auth/users", headers={"Authorization": f"Bearer {reply.json()['token']}"})
    assert admin_page.status == 200
    assert login(kernel, "admin", password + "x").status == 401

    [warning] = admin_warnings(captured_logs)
    assert warning["password_file"] == str(path) and warning["login_path"] == "/auth/login"
    assert captured_logs and not [e for e in captured_logs if password in repr(e)]


def test_password_never_reaches_the_log_files(auth_kernel):
    kernel = auth_kernel(plugins=[trace_plugin])
    kernel.startup()
    password = (kernel.data_dir / PASSWORD_FILE).read_text(encoding="ascii").strip()
    assert login(kernel, "admin", password).status == 200
    kernel.shutdown()  # flush and close the log files
    logs = {p.name: p.read_text(encoding="utf-8") for p in kernel.log_dir.glob("*.log")}
    assert PASSWORD_FILE in logs["err.log"] and "/auth/login" in logs["err.log"]  # the hint was logged
    assert [name for name, text in logs.items() if password in text] == []


def test_no_bootstrap_once_any_user_exists(auth_kernel, sqlite_url, tmp_path, captured_logs):
    first = auth_kernel()
    first.startup()
    path = first.data_dir / PASSWORD_FILE
    original = path.read_text(encoding="ascii")
    users.set_password(first, "admin", "changed by the admin")

    again = auth_kernel()  # same store, same data dir: a restart
    again.startup()
    assert path.read_text(encoding="ascii") == original  # left alone
    assert [u.name for u in users.list_users(again)] == ["admin"]
    assert login(again, "admin", "changed by the admin").status == 200
    assert len(admin_warnings(captured_logs)) == 1

    # a store whose only user is not an admin is not "empty" either
    other = auth_kernel(f"sqlite:///{tmp_path}/other.sqlite", settings={"server.data_dir": str(tmp_path / "d2")})
    users.create_user(other, "alice", "alice's password")
    other.startup()
    assert [u.name for u in users.list_users(other)] == ["alice"]
    assert not (tmp_path / "d2" / PASSWORD_FILE).exists()


def test_bootstrap_admin_false_creates_nothing(auth_kernel):
    kernel = auth_kernel(settings={"auth.bootstrap_admin": False})
    kernel.startup()
    assert users.list_users(kernel) == []
    assert not (kernel.data_dir / PASSWORD_FILE).exists()


def test_a_stale_file_is_replaced_when_the_store_is_empty_again(auth_kernel, tmp_path):
    kernel = auth_kernel()
    stale = kernel.ensure_data_dir() / PASSWORD_FILE
    stale.write_text("from-an-old-database\n")
    stale.chmod(0o644)
    kernel.startup()
    password = stale.read_text(encoding="ascii").strip()
    assert password != "from-an-old-database" and stat.S_IMODE(stale.stat().st_mode) == 0o600
    assert login(kernel, "admin", password).status == 200


@pytest.mark.parametrize("round_", range(3))  # NOTE: several rounds make hitting the commit race likely
def test_one_admin_when_instances_start_together(auth_kernel, captured_logs, round_):
    kernels = [auth_kernel() for _ in range(4)]  # one SQLite store, one data dir
    barrier = threading.Barrier(len(kernels))
    errors: list[BaseException] = []

    def start(kernel):
        try:
            barrier.wait()
            kernel.startup()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(k,)) for k in kernels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [(u.name, u.roles) for u in users.list_users(kernels[0])] == [("admin", ("admin",))]
    assert len(admin_warnings(captured_logs)) == 1  # exactly one instance created it
    assert [e for e in captured_logs if e["log_level"] == "error"] == []
    password = (kernels[0].data_dir / PASSWORD_FILE).read_text(encoding="ascii").strip()
    assert login(kernels[1], "admin", password).status == 200  # the file holds the winner's password
    assert sorted(p.name for p in kernels[0].data_dir.iterdir() if p.name.startswith(".")) == []


def test_one_shot_cli_commands_never_bootstrap(tmp_path, monkeypatch, capsys):
    config = tmp_path / "butterfly.toml"
    config.write_text(f'''
[server]
data_dir = "{tmp_path / "data"}"
log_dir = "{tmp_path / "logs"}"

[store]
url = "sqlite:///{tmp_path / "cli.sqlite"}"
''')
    monkeypatch.delenv("BUTTERFLY_CONFIG", raising=False)
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "mq,ruqi,wuxing")
    assert main(["--config", str(config), "auth", "list-users"]) == 0
    assert "admin" not in capsys.readouterr().out
    assert not (tmp_path / "data" / PASSWORD_FILE).exists()


@pytest.mark.parametrize("min_length, shortest", [(8, 24), (40, 40)])
def test_generated_password_meets_the_minimum_length(min_length, shortest):
    first, second = bootstrap.generate_password(min_length), bootstrap.generate_password(min_length)
    assert len(first) >= shortest and first != second
