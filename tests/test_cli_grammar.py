"""One grammar for ``butterfly`` and its plugins, through the real command (subprocesses).

Global options before or after any command, ``BUTTERFLY_URL`` / ``BUTTERFLY_TOKEN``,
secrets never echoed, 401/403 hints, quiet one-shot commands, bare values bound in
signature order, and ``k:=json`` for ``mq enqueue`` — against a live server or a
private Redis where the command talks to one.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from kernel.testing import free_port

CALC_PLUGIN = '''
import structlog
from kernel import BadRequest, Response, hookimpl

log = structlog.get_logger("calc")


def add(request, a: int, b: int = 2):
    return Response.json({"stat": "OK", "sum": a + b})


def add_protocol(request, route):
    """Bind ``a`` and ``b`` by name, as ints (a tiny stand-in for the router)."""
    params = dict(request.params)
    try:
        kwargs = {name: int(value) for name, value in params.items() if name in ("a", "b")}
    except ValueError as exc:
        raise BadRequest(f"bad a/b: {exc}") from None
    if "a" not in kwargs or set(params) - {"a", "b"}:
        raise BadRequest("a is required; only a and b are known")
    return add(request, **kwargs)


@hookimpl
def butterfly_configure(kernel):
    log.info("calc configured")
    log.warning("calc warns")


@hookimpl
def butterfly_register_routes(register):
    register("/calc/add", add, protocol=add_protocol, kind="json")


def calc_hello(args):
    print(f"hello, token given: {bool(args.token)}, verbose: {args.verbose}")
    return 7


@hookimpl
def butterfly_add_commands(subparsers):
    parser = subparsers.add_parser("calc-hello")
    parser.set_defaults(run=calc_hello)
'''

HELLO_APP = textwrap.dedent("""
    def greet(req, name: str = "world", times: int = 1):
        return "OK", {"message": " ".join([f"hello, {name}!"] * times)}
""")


@pytest.fixture
def cli(butterfly_cli):
    butterfly_cli.write_plugin("calc_plugin", CALC_PLUGIN)
    return butterfly_cli


def only(cli, *plugins: str) -> dict[str, str]:
    """An environment with only ``plugins`` of the installed ones switched on."""
    disabled = [name for name in cli.env["BUTTERFLY_DISABLE_PLUGINS"].split(",") if name not in plugins]
    return {"BUTTERFLY_DISABLE_PLUGINS": ",".join(disabled)}


# -- in-process commands ------------------------------------------------------------------------


def test_one_shot_commands_print_log_lines_only_with_verbose(cli):
    quiet = cli.run("call", "/calc/add", "a=1")
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout) == {"stat": "OK", "sum": 3}
    assert "calc warns" in quiet.stderr  # warnings still show, as readable console lines
    assert "calc configured" not in quiet.stderr and "{" not in quiet.stderr
    for argv in (["-v", "call", "/calc/add", "a=1"], ["call", "/calc/add", "a=1", "--verbose"]):
        loud = cli.run(*argv)
        assert loud.returncode == 0, loud.stderr
        assert "calc configured" in loud.stderr and json.loads(loud.stdout)["sum"] == 3


def test_call_binds_bare_values_in_signature_order(cli):
    assert json.loads(cli.run("call", "/calc/add", "3", "4").stdout)["sum"] == 7
    assert json.loads(cli.run("call", "/calc/add", "3", "b=5").stdout)["sum"] == 8
    assert json.loads(cli.run("call", "/calc/add", "b=5", "3").stdout)["sum"] == 8  # a bare value fills `a`

    too_many = cli.run("call", "/calc/add", "1", "2", "3")
    assert too_many.returncode == 2
    assert "too many values for /calc/add: it takes 2 (a, b) by position, got 3; not bound: '3'" in too_many.stderr
    assert "usage: butterfly call /calc/add a:int b:int=2" in too_many.stderr

    twice = cli.run("call", "/calc/add", "1", "a=2")
    assert twice.returncode == 2
    assert "parameter 'a' for /calc/add given twice: by position ('1') and as a=..." in twice.stderr


def test_usage_errors_never_echo_secrets(cli):
    secrets = {"password=hunter2-secret": "hunter2-secret", "--api-key=k3y-value-9": "k3y-value-9"}
    for word, secret in secrets.items():
        result = cli.run("routes", word)
        assert result.returncode == 2
        assert "unrecognized arguments" in result.stderr and "********" in result.stderr
        assert secret not in result.stderr + result.stdout
    spaced = cli.run("routes", "--client-secret", "s3cr3t-spaced")
    assert (
        spaced.returncode == 2 and "s3cr3t-spaced" not in spaced.stderr and "--client-secret ********" in spaced.stderr
    )
    from_env = cli.run("routes", "tok-from-env-1", env={"BUTTERFLY_TOKEN": "tok-from-env-1"})
    assert from_env.returncode == 2 and "tok-from-env-1" not in from_env.stderr


def test_global_options_reach_plugin_commands_before_or_after(cli):
    for argv in (["calc-hello", "--token", "T", "-v"], ["--token", "T", "-v", "calc-hello"]):
        result = cli.run(*argv)
        assert result.returncode == 7, result.stderr
        assert result.stdout.strip() == "hello, token given: True, verbose: True"
    from_env = cli.run("calc-hello", env={"BUTTERFLY_TOKEN": "T"})
    assert from_env.stdout.strip() == "hello, token given: True, verbose: False"


# -- commands that talk HTTP --------------------------------------------------------------------


@pytest.fixture
def server(make_kernel, live_server, tmp_path):
    """A live server with auth, ruqi and wuxing; an admin's and a viewer's API tokens."""
    import butterfly_auth.plugin
    import butterfly_router.plugin
    import butterfly_ruqi.plugin
    import butterfly_store.plugin
    import butterfly_wuxing.plugin
    from butterfly_auth import api_tokens, users

    (tmp_path / "handlers" / "hello").mkdir(parents=True)
    (tmp_path / "handlers" / "hello" / "__init__.py").write_text(HELLO_APP)
    kernel = make_kernel(
        plugins=[
            butterfly_store.plugin,
            butterfly_router.plugin,
            butterfly_auth.plugin,
            butterfly_ruqi.plugin,
            butterfly_wuxing.plugin,
        ],
        settings={
            "store.url": f"sqlite:///{tmp_path}/grammar.sqlite",
            "router.handlers_dir": str(tmp_path / "handlers"),
            "router.static_dir": "",
            "auth.bootstrap_admin": False,
            "auth.argon2_time_cost": 1,
            "auth.argon2_memory_kib": 1024,
            "auth.argon2_parallelism": 1,
        },
    )
    users.create_user(kernel, "root", "a long password", ["admin"])
    users.create_user(kernel, "viewer", "a long password", [])
    served = live_server(kernel)
    served.admin_token = api_tokens.create_token(kernel, "root")[0]
    served.viewer_token = api_tokens.create_token(kernel, "viewer")[0]
    return served


def job_args(job_id: str) -> list[str]:
    return ["ruqi", "add", job_id, "--trigger", "cron", "--rule", "0 0 3 * * *", "--type", "handler"]


def test_token_and_url_before_after_or_from_the_environment(cli, server):
    env = only(cli, "ruqi", "wuxing")
    token, url = server.admin_token, server.url
    after = cli.run(
        *job_args("after"), "--target", "/hello/greet", "name=Ada", "--token", token, "--url", url, "times:=2", env=env
    )
    assert after.returncode == 0, after.stderr
    assert after.stdout.startswith("added after; next run ")
    before = cli.run("--token", token, "--url", url, *job_args("before"), "--target", "/hello/greet", env=env)
    assert before.returncode == 0, before.stderr
    environment = cli.run(
        *job_args("environ"), "--target", "/hello/greet", env={**env, "BUTTERFLY_URL": url, "BUTTERFLY_TOKEN": token}
    )
    assert environment.returncode == 0, environment.stderr
    # the address from the config's [server] port when neither --url nor BUTTERFLY_URL is given
    job = cli.run("ruqi", "get", "after", "--set", f"server.port={server.port}", env=env)
    assert job.returncode == 0, job.stderr
    assert json.loads(job.stdout)["payload"] == {"name": "Ada", "times": 2}  # k=v a string, k:=json a number


def test_401_and_403_say_how_to_get_in_and_the_token_is_never_printed(cli, server):
    env = {**only(cli, "ruqi", "wuxing"), "BUTTERFLY_URL": server.url}
    anonymous = cli.run("wuxing", "section", "list", env=env)
    assert anonymous.returncode == 1
    assert "butterfly: error: ERR_UNAUTHORIZED" in anonymous.stderr
    assert "this needs a signed-in user: create an API token" in anonymous.stderr
    assert "butterfly auth add-token USER" in anonymous.stderr and "BUTTERFLY_TOKEN" in anonymous.stderr

    refused = cli.run(*job_args("x"), "--target", "/hello/greet", "--token", "bf_not-a-real-token", env=env)
    assert refused.returncode == 1 and "the token was refused" in refused.stderr
    assert "bf_not-a-real-token" not in refused.stderr

    viewer = cli.run("ruqi", "pause", "nothing", "--token", server.viewer_token, env=env)
    assert viewer.returncode == 1 and "ERR_FORBIDDEN" in viewer.stderr
    assert "butterfly auth set-roles USER admin" in viewer.stderr

    verbose = cli.run("-v", "wuxing", "section", "list", env={**env, "BUTTERFLY_TOKEN": server.admin_token})
    assert verbose.returncode == 0, verbose.stderr
    assert f"> GET {server.url}/wuxing/section_list" in verbose.stderr and "< 200" in verbose.stderr
    assert server.admin_token not in verbose.stderr + verbose.stdout


def test_an_unreachable_server_exits_3_without_showing_a_url_password(cli):
    result = cli.run("ruqi", "list", "--url", f"http://ops:pw-in-url@127.0.0.1:{free_port()}", env=only(cli, "ruqi"))
    assert result.returncode == 3
    assert "cannot reach http://ops:********@127.0.0.1:" in result.stderr
    assert "pw-in-url" not in result.stderr


# -- mq and auth ----------------------------------------------------------------------------------


def test_mq_enqueue_reads_json_values_and_binds_bare_values(butterfly_cli, redis_server):
    cli = butterfly_cli
    (cli.cwd / "handlers" / "hello").mkdir(parents=True)
    (cli.cwd / "handlers" / "hello" / "__init__.py").write_text(HELLO_APP)
    env = {**only(cli, "mq", "router"), "BUTTERFLY_MQ_REDIS_URL": redis_server.url, "BUTTERFLY_MQ_PREFIX": "grammar"}
    typed = cli.run("mq", "enqueue", "/app/job", "a:=1", "b=1", "c:=[1, null]", "--msg-id", "grammar-1", env=env)
    assert typed.returncode == 0, typed.stderr
    bound = cli.run("mq", "enqueue", "/hello/greet", "Ada", "times:=2", "--msg-id", "grammar-2", env=env)
    assert bound.returncode == 0, bound.stderr
    assert (typed.stdout.strip(), bound.stdout.strip()) == ("grammar-1", "grammar-2")
    # no start-up log lines: only the warning that nobody consumes these topics yet
    for result in (typed, bound):
        assert all("no live instance consumes" in line for line in result.stderr.splitlines()), result.stderr
    from butterfly_mq import get_message

    assert get_message("grammar-1", redis_url=redis_server.url, prefix="grammar")["params"] == {
        "a": 1,
        "b": "1",
        "c": [1, None],
    }
    assert get_message("grammar-2", redis_url=redis_server.url, prefix="grammar")["params"] == {
        "name": "Ada",
        "times": 2,
    }


def test_auth_add_user_reads_the_password_from_stdin(butterfly_cli):
    cli = butterfly_cli
    import subprocess

    (cli.cwd / "butterfly.toml").write_text(
        "[auth]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\nargon2_parallelism = 1\n"
    )
    env = only(cli, "store", "auth")
    created = subprocess.run(
        cli.argv("auth", "add-user", "ada", "--role", "admin", "--password-stdin", "--config", "butterfly.toml"),
        input="a long password\n",
        cwd=cli.cwd,
        env={**cli.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created user ada (roles: admin)" and created.stderr == ""
    both = cli.run("auth", "add-user", "bob", "--password", "pw-on-the-line", "--password-stdin", env=env)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert "pw-on-the-line" not in both.stderr
