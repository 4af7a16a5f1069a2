"""Third-party plugins found through entry points, as installed distributions.

A distribution is "installed" into a private site directory the way pip lays out
a wheel (module + ``<name>-<version>.dist-info`` with ``METADATA`` and
``entry_points.txt``) and put on ``PYTHONPATH`` for a real ``butterfly``
subprocess. NOTE: nothing is installed into the shared virtualenv — other test
runs in it would see the test plugin — and no network or build step is needed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

THIRD_PARTY = """
from pathlib import Path
from kernel import Response, hookimpl

# a side effect at import: proves whether the module was imported at all
with open(Path("thirdparty_imported"), "a") as marker:
    marker.write("imported\\n")


def greet(request):
    settings = request.kernel.settings.section("thirdparty")
    return Response.json({"stat": "OK", "greeting": settings.greeting, "times": settings.times})


@hookimpl
def butterfly_add_settings(settings):
    settings.add("thirdparty", "greeting", str, "hello", "what greet says", owner="thirdparty")
    settings.add("thirdparty", "times", int, 1, "how often", owner="thirdparty")


@hookimpl
def butterfly_register_routes(register):
    register("/thirdparty/greet", greet, kind="json")
"""

MISSPELLED = """
from kernel import hookimpl


@hookimpl
def butterfly_reqest_started(request):
    pass
"""


def install_distribution(site: Path, dist: str, version: str, module: str, source: str, entry_point: str) -> None:
    """Lay out an installed distribution in ``site`` (what pip does for a wheel)."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[butterfly.plugins]\n{entry_point} = {module}\n")
    (info / "top_level.txt").write_text(f"{module}\n")
    (info / "INSTALLER").write_text("test\n")
    (info / "RECORD").write_text(f"{module}.py,,\n{info.name}/METADATA,,\n{info.name}/entry_points.txt,,\n")


@pytest.fixture
def cli(butterfly_cli):
    site = butterfly_cli.cwd / "site"
    butterfly_cli.site = site
    butterfly_cli.env["PYTHONPATH"] = f"{site}:{butterfly_cli.env['PYTHONPATH']}"
    return butterfly_cli


def plugins_of(result) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


@pytest.mark.slow
def test_installed_plugin_is_listed_serves_its_route_and_reads_its_settings(cli):
    install_distribution(
        cli.site, "butterfly-thirdparty-demo", "2.5.1", "bfly_thirdparty_demo", THIRD_PARTY, "thirdparty"
    )
    row = plugins_of(cli.run("plugins", "--json"))["thirdparty"]
    assert (row["dist"], row["version"], row["status"], row["module"]) == (
        "butterfly-thirdparty-demo",
        "2.5.1",
        "enabled",
        "bfly_thirdparty_demo",
    )
    assert Path(row["location"]) == cli.site

    called = cli.run("call", "/thirdparty/greet", env={"BUTTERFLY_THIRDPARTY_TIMES": "3"})
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == {"stat": "OK", "greeting": "hello", "times": 3}
    assert (cli.cwd / "thirdparty_imported").exists()

    routes = json.loads(cli.run("routes", "--json").stdout)
    assert [(r["path"], r["plugin"]) for r in routes] == [("/thirdparty/greet", "thirdparty")]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["env", "config"])
def test_disabled_plugin_is_never_imported(cli, how):
    install_distribution(
        cli.site, "butterfly-thirdparty-demo", "2.5.1", "bfly_thirdparty_demo", THIRD_PARTY, "thirdparty"
    )
    # its section in the config file is ignored while it is off
    config = "[thirdparty]\ngreeting = 'ignored'\n"
    if how == "env":
        cli.env["BUTTERFLY_DISABLE_PLUGINS"] += ",thirdparty"
        reason = "disabled by BUTTERFLY_DISABLE_PLUGINS"
    else:
        config += "[server]\ndisable_plugins = ['thirdparty']\n"
        reason = "disabled by [server] disable_plugins"
    (cli.cwd / "butterfly.toml").write_text(config)

    row = plugins_of(cli.run("plugins", "--json"))["thirdparty"]
    assert (row["status"], row["reason"], row["version"]) == ("disabled", reason, "2.5.1")
    called = cli.run("call", "/thirdparty/greet")
    assert called.returncode == 1
    assert json.loads(called.stdout) == {"stat": "ERR_NOT_FOUND"}
    assert json.loads(cli.run("routes", "--json").stdout) == []
    assert not (cli.cwd / "thirdparty_imported").exists()


def test_one_plugin_name_from_two_distributions_is_an_error(cli):
    install_distribution(cli.site, "dist-alpha", "1.0", "bfly_twin_alpha", "", "twin")
    install_distribution(cli.site, "dist-beta", "1.0", "bfly_twin_beta", "", "twin")
    result = cli.run("plugins")
    assert result.returncode == 1
    assert "butterfly: error: plugin name 'twin' is provided by two distributions: " in result.stderr
    assert "dist-alpha (bfly_twin_alpha)" in result.stderr and "dist-beta (bfly_twin_beta)" in result.stderr
    assert "Traceback" not in result.stderr


def test_misspelled_hook_fails_startup_naming_it(cli):
    install_distribution(cli.site, "butterfly-typo", "0.1", "bfly_typo", MISSPELLED, "typo")
    result = cli.run("routes")
    assert result.returncode == 1
    assert result.stderr.startswith("butterfly: error: plugin \"typo\": unknown hook 'butterfly_reqest_started'")
    assert "Traceback" not in result.stderr


def test_the_builtin_kernel_plugin_cannot_be_disabled(cli):
    result = cli.run("plugins", env={"BUTTERFLY_DISABLE_PLUGINS": "kernel"})
    assert result.returncode == 1
    assert "butterfly: error: plugin 'kernel' is part of the kernel and cannot be disabled" in result.stderr


def test_broken_installed_plugin_names_its_distribution(cli):
    install_distribution(
        cli.site, "butterfly-broken", "0.3", "bfly_broken", "raise ImportError('no libfoo')\n", "broken"
    )
    result = cli.run("routes")
    assert result.returncode == 1
    assert 'error importing plugin "broken" from butterfly-broken 0.3: no libfoo' in result.stderr
    # ... and switching it off is the way out
    disabled = cli.env["BUTTERFLY_DISABLE_PLUGINS"] + ",broken"
    assert cli.run("routes", env={"BUTTERFLY_DISABLE_PLUGINS": disabled}).returncode == 0
