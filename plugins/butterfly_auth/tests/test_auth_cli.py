"""``butterfly auth ...`` run in-process against a configured SQLite store."""

from __future__ import annotations

import io
import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from butterfly_auth import api_tokens, sessions, users
from butterfly_auth.identity import resolve_session
from kernel.cli import load_kernel, main

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """A butterfly.toml with a private store and cheap hashing; the CLI reads it via --config."""
    path = tmp_path / "butterfly.toml"
    path.write_text(f'''
[server]
data_dir = "{tmp_path / "data"}"
log_dir = "{tmp_path / "logs"}"

[store]
url = "sqlite:///{tmp_path / "cli.sqlite"}"

[auth]
argon2_time_cost = 1
argon2_memory_kib = 1024
argon2_parallelism = 1
''')
    monkeypatch.delenv("BUTTERFLY_CONFIG", raising=False)
    # NOTE: only the store and auth matter here; keep unrelated plugins' commands out.
    monkeypatch.setenv("BUTTERFLY_DISABLE_PLUGINS", "mq,ruqi,wuxing")
    return str(path)


def _kernel(config_file):
    class Args:
        config = config_file

    return load_kernel(Args())


def test_user_and_token_commands(config_file, capsys, monkeypatch):
    run = lambda *argv: main(["--config", config_file, "auth", *argv])  # noqa: E731
    assert run("add-user", "alice", "--password", "a long password", "--role", "admin") == 0
    assert "created user alice (roles: admin)" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("prompted password\nignored second line\n"))
    assert run("add-user", "bob", "--password-stdin") == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run("add-user", "dora") == 1  # no terminal to ask on and no --password-stdin
    assert "--password-stdin" in capsys.readouterr().err
    assert run("add-user", "dora", "--password-stdin") == 1
    assert run("add-user", "bob", "--password", "another password") == 1
    assert "already exists" in capsys.readouterr().err
    assert run("add-user", "carol", "--password", "short") == 1
    assert "too short" in capsys.readouterr().err

    assert run("list-users") == 0
    listing = capsys.readouterr().out
    assert "alice" in listing and "admin" in listing and "bob" in listing and "carol" not in listing

    kernel = _kernel(config_file)
    assert users.verify_credentials(kernel, "bob", "prompted password") is not None
    assert run("set-password", "bob", "--password", "changed password") == 0
    assert users.verify_credentials(kernel, "bob", "changed password") is not None
    assert run("set-password", "nobody", "--password", "changed password") == 1

    capsys.readouterr()
    assert run("add-token", "alice", "--label", "ci", "--expires-in", "3600") == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("bf_") and "shown only now" in captured.err
    assert api_tokens.resolve_token(kernel, token).name == "alice"
    token_id = api_tokens.list_tokens(kernel, "alice")[0].id
    assert run("list-tokens") == 0 and token not in capsys.readouterr().out  # never printed again
    assert run("revoke-token", str(token_id)) == 0
    assert api_tokens.resolve_token(kernel, token) is None
    assert run("revoke-token", "999999") == 1
    assert run("set-roles", "bob", "ops", "viewer") == 0
    assert users.get_user(kernel, "bob").roles == ("ops", "viewer")


def test_delete_disable_and_recreate_end_every_older_session_and_token(config_file, capsys, monkeypatch):
    run = lambda *argv: main(["--config", config_file, "auth", *argv])  # noqa: E731
    kernel = _kernel(config_file)
    assert run("add-user", "erin", "--password", "first password", "--role", "admin") == 0
    erin = users.get_user(kernel, "erin")
    session = sessions.issue(kernel, erin)
    token, _ = api_tokens.create_token(kernel, "erin")
    assert resolve_session(kernel, session.token)[0].uid == erin.uid
    assert api_tokens.resolve_token(kernel, token).name == "erin"

    # disabling ends both for good: enabling again does not bring them back
    assert run("disable-user", "erin") == 0 and run("enable-user", "erin") == 0
    assert resolve_session(kernel, session.token)[0] is None
    assert api_tokens.resolve_token(kernel, token) is None
    assert users.verify_credentials(kernel, "erin", "first password") is not None

    # a password change ends the API tokens as well as the sessions
    session, (token, _) = (
        sessions.issue(kernel, users.get_user(kernel, "erin")),
        api_tokens.create_token(kernel, "erin"),
    )
    assert run("set-password", "erin", "--password", "second password") == 0
    assert resolve_session(kernel, session.token)[0] is None and api_tokens.resolve_token(kernel, token) is None

    # deleted and re-created under the same name and password: a different user to every credential
    session, (token, _) = (
        sessions.issue(kernel, users.get_user(kernel, "erin")),
        api_tokens.create_token(kernel, "erin"),
    )
    capsys.readouterr()
    assert run("delete-user", "erin") == 0
    assert "deleted user erin" in capsys.readouterr().out
    assert run("delete-user", "erin") == 1 and "no such user" in capsys.readouterr().err
    assert run("add-user", "erin", "--password", "second password", "--role", "admin") == 0
    again = users.get_user(kernel, "erin")
    assert again.uid != erin.uid and again.token_version == erin.token_version == 0
    assert resolve_session(kernel, session.token) == (None, None, "unknown or disabled user")
    assert api_tokens.resolve_token(kernel, token) is None and api_tokens.list_tokens(kernel, "erin") == []


@pytest.mark.slow
def test_add_user_asks_twice_on_a_terminal(config_file, tmp_path):
    """Through a real pseudo-terminal: the password is asked for twice, never echoed."""

    def add_user(name: str, answers: list[str]) -> tuple[int, str]:
        pid, fd = pty.fork()
        if pid == 0:  # the child: a session whose controlling terminal is the pty
            os.chdir(tmp_path)
            argv = [sys.executable, "-m", "kernel", "--config", config_file, "auth", "add-user", name]
            os.execv(sys.executable, argv)
        output, pending = b"", list(answers)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if not select.select([fd], [], [], 1)[0]:
                    continue
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
                if pending and output.rstrip().lower().endswith(b"password:"):
                    os.write(fd, pending.pop(0).encode() + b"\n")
                    output += b"|"  # NOTE: marks the prompt as answered
            else:
                os.kill(pid, signal.SIGKILL)
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")

    code, output = add_user("frank", ["a typed password", "a typed password"])
    assert code == 0, output
    assert "Password:" in output and "Repeat password:" in output and "created user frank" in output
    assert "a typed password" not in output  # no echo
    code, output = add_user("grace", ["one password", "another password"])
    assert code == 1 and "do not match" in output
    kernel = _kernel(config_file)
    assert users.verify_credentials(kernel, "frank", "a typed password") is not None
    assert users.get_user(kernel, "grace") is None
