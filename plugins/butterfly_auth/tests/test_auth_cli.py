"""``butterfly auth ...`` run in-process against a configured SQLite store."""

from __future__ import annotations

import pytest

from butterfly_auth import api_tokens, users
from kernel.cli import load_kernel, main


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
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "prompted password")
    assert run("add-user", "bob") == 0  # --password omitted: prompted
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
