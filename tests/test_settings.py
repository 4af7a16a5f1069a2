"""Settings: declared types and defaults; file < env < CLI; clear errors naming key and source."""

from __future__ import annotations

import json

import pytest

from kernel import ConfigError, Kernel, hookimpl


class DemoSettings:
    """Declares ``[demo]`` with one setting of each kind."""

    @hookimpl
    def butterfly_add_settings(self, settings):
        add = settings.add
        add("demo", "from_default", int, 10, "stays at its default", owner="demo")
        add("demo", "from_file", int, 10, "set in the file", owner="demo")
        add("demo", "from_env", int, 10, "set in the file and the env", owner="demo")
        add("demo", "from_cli", int, 10, "set everywhere", owner="demo")
        add("demo", "enabled", bool, False, "a switch", owner="demo")
        add("demo", "ratio", float, 0.5, "a number", owner="demo")
        add("demo", "names", list, [], "a list", owner="demo")
        add("demo", "mode", str, "fast", "a choice", choices=("fast", "safe"), owner="demo")
        add("demo", "token", str, None, "a secret", secret=True, owner="demo")


def create(tmp_path, *, config=None, environ=None, overrides=None, config_path=None, disabled=False):
    environ = dict(environ or {})
    if disabled:
        environ["BUTTERFLY_DISABLE_PLUGINS"] = "demo"
    base = {"server.data_dir": str(tmp_path / "data"), "server.log_dir": str(tmp_path / "logs")}
    return Kernel.create(
        config=config if config_path is None else None,
        config_path=config_path,
        environ=environ,
        overrides={**base, **(overrides or {})},
        plugins=[(DemoSettings(), "demo")],
        load_entrypoints=False,
    )


def test_defaults_file_env_cli_precedence_and_origins(tmp_path):
    kernel = create(
        tmp_path,
        config={"demo": {"from_file": 1, "from_env": 1, "from_cli": 1}},
        environ={"BUTTERFLY_DEMO_FROM_ENV": "2", "BUTTERFLY_DEMO_FROM_CLI": "2"},
        overrides={"demo.from_cli": "3"},
    )
    demo = kernel.settings.section("demo")
    assert (demo.from_default, demo.from_file, demo.from_env, demo.from_cli) == (10, 1, 2, 3)
    assert kernel.settings.get("demo", "from_cli") == 3
    origins = {row["key"]: row["origin"] for row in kernel.settings.describe() if row["section"] == "demo"}
    assert (origins["from_default"], origins["from_file"], origins["from_env"], origins["from_cli"]) == (
        "default",
        "file",
        "env",
        "cli",
    )
    with pytest.raises(AttributeError, match=r"no setting \[demo\] nope"):
        demo.nope  # noqa: B018


def test_toml_file_values_are_typed(tmp_path):
    path = tmp_path / "butterfly.toml"
    path.write_text(
        '[demo]\nenabled = true\nratio = 2\nnames = ["a", "b"]\nmode = "safe"\n[server]\nport = 9001\nmax_body = 2048\n'
    )
    kernel = create(tmp_path, config_path=path)
    demo = kernel.settings.section("demo")
    assert (demo.enabled, demo.ratio, demo.names, demo.mode) == (True, 2.0, ["a", "b"], "safe")
    assert kernel.settings.get("server", "port") == 9001
    assert kernel.max_body == 2048


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_env_booleans(tmp_path, raw, expected):
    kernel = create(tmp_path, environ={"BUTTERFLY_DEMO_ENABLED": raw})
    assert kernel.settings.get("demo", "enabled") is expected


def test_env_list_is_comma_separated(tmp_path):
    kernel = create(tmp_path, environ={"BUTTERFLY_DEMO_NAMES": "a, b,,c"})
    assert kernel.settings.get("demo", "names") == ["a", "b", "c"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"config": {"nope": {"x": 1}}}, r"unknown section \[nope\] in the given config; valid sections: demo, server"),
        ({"config": {"demo": {"colour": "red"}}}, r"unknown setting \[demo\] colour in the given config; valid keys: "),
        ({"config": {"demo": 3}}, r"\[demo\] in the given config must be a table"),
        (
            {"environ": {"BUTTERFLY_SERVER_NOPE": "1"}},
            r"unknown setting \[server\] nope \(from environment variable BUTTERFLY_SERVER_NOPE\)",
        ),
        ({"overrides": {"demo.nope": "1"}}, r"unknown setting \[demo\] nope \(from the command line\)"),
        (
            {"config": {"demo": {"from_file": "ten"}}},
            r"bad value for \[demo\] from_file \(from the given config\): invalid literal for int",
        ),
        ({"config": {"demo": {"from_file": 1.5}}}, r"bad value for \[demo\] from_file .*expected an integer"),
        ({"config": {"demo": {"from_file": True}}}, r"bad value for \[demo\] from_file .*expected an integer"),
        (
            {"environ": {"BUTTERFLY_SERVER_PORT": "http"}},
            r"bad value for \[server\] port \(from environment variable BUTTERFLY_SERVER_PORT\)",
        ),
        (
            {"environ": {"BUTTERFLY_DEMO_ENABLED": "maybe"}},
            r"bad value for \[demo\] enabled \(from environment variable BUTTERFLY_DEMO_ENABLED\): expected a boolean",
        ),
        ({"overrides": {"demo.ratio": "lots"}}, r"bad value for \[demo\] ratio \(from the command line\)"),
        ({"config": {"demo": {"mode": "quick"}}}, r"bad value for \[demo\] mode .*'quick' is not one of fast, safe"),
        ({"config": {"demo": {"names": {"a": 1}}}}, r"bad value for \[demo\] names .*expected a list"),
        ({"config": {"server": {"disable_plugins": 5}}}, r"bad value for \[server\] disable_plugins"),
    ],
)
def test_bad_config_is_an_error_naming_the_key_and_its_source(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create(tmp_path, **kwargs)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r"invalid TOML in .*bad.toml"):
        create(tmp_path, config_path=path)
    with pytest.raises(ConfigError, match=r"config file not found: .*missing.toml"):
        create(tmp_path, config_path=tmp_path / "missing.toml")
    path.write_text("[server]\nthreads = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad value for \[server\] threads \(from .*bad.toml\)"):
        create(tmp_path, config_path=path)


def test_env_for_a_section_nobody_declared_is_ignored(tmp_path):
    # another program's BUTTERFLY_* variables, or a plugin that is not installed
    kernel = create(tmp_path, environ={"BUTTERFLY_ELSEWHERE_KEY": "1", "BUTTERFLY_TEST_REDIS_URL": "redis://x"})
    assert kernel.settings.get("demo", "from_default") == 10


def test_disabled_plugins_section_is_ignored(tmp_path):
    kernel = create(
        tmp_path,
        config={"demo": {"colour": "red", "from_file": "not even an int"}},
        environ={"BUTTERFLY_DEMO_FROM_ENV": "x"},
        disabled=True,
    )
    assert ("demo", "from_file") not in kernel.settings.declared
    info = next(info for info in kernel.plugins if info.name == "demo")
    assert (info.enabled, info.reason) == (False, "disabled by BUTTERFLY_DISABLE_PLUGINS")
    assert "demo" not in [kernel.pm.get_name(p) for p in kernel.pm.get_plugins()]


def test_a_setting_declared_twice_names_both_owners(tmp_path):
    class Clash:
        @hookimpl
        def butterfly_add_settings(self, settings):
            settings.add("demo", "mode", str, "x", "again", owner="clash")

    with pytest.raises(ConfigError, match=r"setting \[demo\] mode declared twice \((demo and clash|clash and demo)\)"):
        Kernel.create(
            config={}, environ={}, plugins=[(DemoSettings(), "demo"), (Clash(), "clash")], load_entrypoints=False
        )


def test_secrets_are_masked_in_describe(tmp_path):
    kernel = create(tmp_path, environ={"BUTTERFLY_DEMO_TOKEN": "hunter2"})
    assert kernel.settings.get("demo", "token") == "hunter2"
    row = next(row for row in kernel.settings.describe() if row["key"] == "token")
    assert row["value"] == "********"
    assert "hunter2" not in json.dumps(kernel.settings.describe())


SECRET_PLUGIN = """
from kernel import hookimpl


@hookimpl
def butterfly_add_settings(settings):
    settings.add("vault", "token", str, None, "API token", secret=True, owner="vault")
    settings.add("vault", "url", str, "mysql://app:pa55word@db.local:3306/app", "database URL", owner="vault")
    settings.add("vault", "mirrors", list, [], "mirror URLs", owner="vault")
    settings.add("vault", "retries", int, 3, "retry count", owner="vault")
"""


def test_config_command_shows_origins_and_masks_secrets(butterfly_cli):
    butterfly_cli.write_plugin("vault_plugin", SECRET_PLUGIN)
    (butterfly_cli.cwd / "butterfly.toml").write_text(
        "[vault]\nmirrors = ['https://u:mirror-secret@m1.example/', 'https://m2.example/']\n[server]\nthreads = 4\n"
    )
    result = butterfly_cli.run(
        "config", "--json", "--set", "vault.retries=5", env={"BUTTERFLY_VAULT_TOKEN": "tok-123456"}
    )
    assert result.returncode == 0, result.stderr
    for secret in ("tok-123456", "pa55word", "mirror-secret"):
        assert secret not in result.stdout
    rows = {(row["section"], row["key"]): row for row in json.loads(result.stdout)}
    assert rows[("vault", "token")]["value"] == "********"
    assert rows[("vault", "token")]["origin"] == "env BUTTERFLY_VAULT_TOKEN"
    assert rows[("vault", "url")]["value"] == "mysql://app:********@db.local:3306/app"
    assert rows[("vault", "mirrors")]["value"] == ["https://u:********@m1.example/", "https://m2.example/"]
    assert rows[("vault", "mirrors")]["origin"] == "file butterfly.toml"
    assert rows[("vault", "retries")] | {"help": None} == {
        "section": "vault",
        "key": "retries",
        "value": 5,
        "origin": "cli",
        "env": "BUTTERFLY_VAULT_RETRIES",
        "help": None,
        "owner": "vault",
    }
    assert rows[("server", "threads")]["value"] == 4
    assert rows[("server", "port")]["origin"] == "default"

    table = butterfly_cli.run("config", env={"BUTTERFLY_VAULT_TOKEN": "tok-123456"})
    assert table.returncode == 0
    assert "tok-123456" not in table.stdout and "pa55word" not in table.stdout
    assert table.stdout.splitlines()[0].split() == ["SECTION", "KEY", "VALUE", "ORIGIN", "HELP"]
    token_line = next(line for line in table.stdout.splitlines() if line.startswith("vault    token"))
    assert "********" in token_line and "env BUTTERFLY_VAULT_TOKEN" in token_line
