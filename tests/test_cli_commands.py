"""``butterfly`` as users run it (real subprocesses): help, routes, plugins, call, errors."""

from __future__ import annotations

import json

import pytest

CALC_PLUGIN = '''
import inspect
from kernel import BadRequest, Response, hookimpl


def typed(func):
    """A tiny router-like protocol: bind params by name, convert int hints."""
    signature = inspect.signature(func)

    def protocol(request, route):
        params, kwargs, errors = dict(request.params), {}, []
        for name, param in list(signature.parameters.items())[1:]:
            if name not in params:
                if param.default is param.empty:
                    errors.append({"param": name, "reason": "missing"})
                continue
            value = params.pop(name)
            if param.annotation is int and not isinstance(value, int):
                try:
                    value = int(value)
                except ValueError:
                    errors.append({"param": name, "reason": "not an integer"})
                    continue
            kwargs[name] = value
        errors += [{"param": key, "reason": "unknown parameter"} for key in params]
        if errors:
            raise BadRequest("bad params", data={"errors": errors})
        return func(request, **kwargs)
    return protocol


def double(x):
    y = x * 2
    return y


def add(request, a: int, b: int = 2):
    total = a + b
    doubled = double(total)
    return Response.json({"stat": "OK", "sum": total, "doubled": doubled})


def echo(request):
    return Response.json({"stat": "OK", "params": request.params, "source": request.source})


def refuse(request):
    return Response.json({"stat": "ERR_NO_MONEY", "balance": 0})


def fail(request):
    raise RuntimeError("secret detail")


def text(request):
    return Response(200, [("Content-Type", "text/plain")], "plain text reply".encode())


@hookimpl
def butterfly_register_routes(register):
    register("/calc/add", add, protocol=typed(add), kind="json")
    register("/calc/echo", echo, kind="json")
    register("/calc/refuse", refuse, kind="json")
    register("/calc/fail", fail, kind="json", admin=True)
    register("/calc/text", text, kind="http", methods=["GET"])


def calc_hello(args):
    print(f"hello from calc, loud={args.loud}")
    return 7


@hookimpl
def butterfly_add_commands(subparsers):
    parser = subparsers.add_parser("calc-hello", help="say hello from the calc plugin")
    parser.add_argument("--loud", action="store_true")
    parser.set_defaults(run=calc_hello)
'''


@pytest.fixture
def cli(butterfly_cli):
    butterfly_cli.write_plugin("calc_plugin", CALC_PLUGIN)
    return butterfly_cli


def test_help_lists_every_builtin_command_and_plugin_commands(cli):
    result = cli.run("--help")
    assert result.returncode == 0
    for command in ("run", "start", "stop", "restart", "status", "routes", "plugins", "config", "call", "calc-hello"):
        assert f"    {command}" in result.stdout
    for command in ("run", "start", "stop", "restart", "status", "routes", "plugins", "config", "call"):
        sub = cli.run(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "--config" in sub.stdout and "--set" in sub.stdout


def test_no_command_prints_help_and_exits_2(cli):
    result = cli.run()
    assert result.returncode == 2
    assert "usage: butterfly" in result.stdout


def test_plugin_command_runs_with_its_exit_code(cli):
    result = cli.run("calc-hello", "--loud")
    assert result.returncode == 7
    assert result.stdout.strip() == "hello from calc, loud=True"


def test_routes_table_shows_signature_kind_admin_and_plugin(cli):
    result = cli.run("routes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PATH", "METHODS", "KIND", "ADMIN", "PLUGIN", "HANDLER", "SIGNATURE"]
    add_line = next(line for line in lines if line.startswith("/calc/add "))
    assert add_line.split()[1:] == ["any", "json", "-", "calc_plugin", "calc_plugin.add", "a:int", "b:int=2"]
    fail_line = next(line for line in lines if line.startswith("/calc/fail "))
    assert "admin" in fail_line.split()
    text_line = next(line for line in lines if line.startswith("/calc/text "))
    assert text_line.split()[1:3] == ["GET", "http"]


def test_routes_json(cli):
    result = cli.run("routes", "--json")
    assert result.returncode == 0, result.stderr
    routes = {row["path"]: row for row in json.loads(result.stdout)}
    assert set(routes) == {"/calc/add", "/calc/echo", "/calc/refuse", "/calc/fail", "/calc/text"}
    assert routes["/calc/add"]["signature"] == "a:int b:int=2"
    assert routes["/calc/fail"]["admin"] == "admin"
    assert routes["/calc/text"]["methods"] == "GET"


def test_plugins_lists_builtin_extra_and_disabled_installed(cli):
    result = cli.run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {row["name"]: row for row in json.loads(result.stdout)}
    assert plugins["kernel"]["status"] == "enabled"
    assert plugins["kernel"]["dist"] == "butterfly-kernel"
    assert plugins["calc_plugin"]["status"] == "enabled"
    assert plugins["calc_plugin"]["reason"] == "loaded from BUTTERFLY_PLUGINS"
    assert plugins["calc_plugin"]["location"].endswith("calc_plugin.py")
    installed = [row for row in plugins.values() if row["dist"] not in ("butterfly-kernel", "-")]
    for row in installed:  # the fixture switches every installed plugin off
        assert row["status"] == "disabled"
        assert row["reason"] == "disabled by BUTTERFLY_DISABLE_PLUGINS"
    table = cli.run("plugins")
    assert table.stdout.splitlines()[0].split() == ["NAME", "DIST", "VERSION", "STATUS", "REASON", "LOCATION"]


def test_call_converts_strings_by_type_hints_and_prints_pretty_json(cli):
    result = cli.run("call", "/calc/add", "a=3", "b=4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"stat": "OK", "sum": 7, "doubled": 14}
    assert result.stdout.startswith("{\n  ")


def test_call_values_are_strings_and_colon_equals_passes_json(cli):
    result = cli.run("call", "/calc/echo", "s=1", "n:=1", 'items:=[1, "x"]', 'obj:={"k": null}', "flag:=true", "eq=a=b")
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply["params"] == {"s": "1", "n": 1, "items": [1, "x"], "obj": {"k": None}, "flag": True, "eq": "a=b"}
    assert reply["source"] == "cli"


def test_call_json_params_and_key_value_override(cli):
    result = cli.run("call", "/calc/echo", "--json-params", '{"a": 1, "b": [2]}', "a=override")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"] == {"a": "override", "b": [2]}


@pytest.mark.parametrize(
    "args, message",
    [
        (["/calc/echo", "novalue"], "too many values for /calc/echo: it takes none by position"),
        (["/calc/echo", "n:={bad"], "bad JSON for parameter 'n'"),
        (["/calc/echo", "=x"], "the key is empty"),
        (["/calc/echo", "--json-params", "[1]"], "--json-params must be a JSON object"),
        (["/calc/echo", "--json-params", "{"], "--json-params is not valid JSON"),
    ],
)
def test_call_bad_arguments_exit_2_with_a_clear_message(cli, args, message):
    result = cli.run("call", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_call_error_stats_exit_1(cli):
    refused = cli.run("call", "/calc/refuse")
    assert refused.returncode == 1
    assert json.loads(refused.stdout) == {"stat": "ERR_NO_MONEY", "balance": 0}

    missing = cli.run("call", "/calc/add", "b=1")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["errors"] == [{"param": "a", "reason": "missing"}]
    assert "usage: butterfly call /calc/add a:int b:int=2" in missing.stderr

    crashed = cli.run("call", "/calc/fail")  # an admin route: in-process calls are trusted
    assert crashed.returncode == 1
    assert json.loads(crashed.stdout) == {"stat": "ERR_SERVER_EXCEPTION"}
    assert "secret detail" not in crashed.stdout

    unknown = cli.run("call", "/nope/nothing")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) == {"stat": "ERR_NOT_FOUND"}


def test_call_non_json_reply_prints_body_and_headers(cli):
    result = cli.run("call", "/calc/text")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plain text reply"
    assert "HTTP 200" in result.stderr
    assert "Content-Type: text/plain" in result.stderr


def test_call_without_path_prints_usage_of_every_route(cli):
    result = cli.run("call")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "butterfly call /calc/add a:int b:int=2",
        "butterfly call /calc/echo",
        "butterfly call /calc/fail",
        "butterfly call /calc/refuse",
        "butterfly call /calc/text",
    ]


def test_call_trace_shows_handler_and_callee_lines_on_stderr(cli):
    result = cli.run("call", "/calc/add", "a=3", "--trace")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"stat": "OK", "sum": 5, "doubled": 10}  # stdout stays JSON
    trace = result.stderr
    assert "\x1b[" not in trace  # not a terminal: no colour codes
    assert "Starting var:.. a = 3" in trace
    assert "total = a + b" in trace and "New var:....... total = 5" in trace
    assert "def double(x):" in trace and "New var:....... y = 10" in trace  # the callee, one level down
    assert "Elapsed time" in trace
    # the kernel's own request path is not traced
    assert "def handle(" not in trace and "def call(" not in trace


def test_call_trace_of_a_rejected_call_still_prints_the_reply(cli):
    result = cli.run("call", "/calc/add", "a=x", "--trace")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"] == [{"param": "a", "reason": "not an integer"}]
    assert "total = a + b" not in result.stderr


def test_config_error_names_the_key_without_traceback(cli):
    (cli.cwd / "butterfly.toml").write_text("[server]\nport = 'eighty'\n")
    result = cli.run("routes")
    assert result.returncode == 1
    assert result.stderr.startswith("butterfly: error: bad value for [server] port (from butterfly.toml)")
    assert "Traceback" not in result.stderr


def test_missing_config_file_and_bad_set_option_are_errors(cli):
    missing = cli.run("--config", "nope.toml", "routes")
    assert missing.returncode == 1
    assert "butterfly: error: config file not found: nope.toml" in missing.stderr
    bad_set = cli.run("routes", "--set", "portonly")
    assert bad_set.returncode == 1
    assert "bad --set 'portonly': expected section.key=value" in bad_set.stderr


def test_config_option_after_the_subcommand(cli):
    (cli.cwd / "other.toml").write_text("[server]\nthreads = 3\n")
    result = cli.run("config", "--json", "--config", "other.toml")
    assert result.returncode == 0, result.stderr
    rows = {(row["section"], row["key"]): row for row in json.loads(result.stdout)}
    assert rows[("server", "threads")]["value"] == 3
    assert rows[("server", "threads")]["origin"] == "file other.toml"


def test_plugin_import_error_is_a_clean_error(cli):
    cli.write_plugin("broken_plugin", "import no_such_module_anywhere\n")
    result = cli.run("routes")
    assert result.returncode == 1
    assert 'butterfly: error: error importing plugin module "broken_plugin"' in result.stderr
    assert "no_such_module_anywhere" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_on_a_port_in_use_is_a_clean_error(cli):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli.run("run", "--port", str(port))
    assert result.returncode == 1
    assert f"butterfly: error: cannot listen on 127.0.0.1:{port}:" in result.stderr
    assert "Traceback" not in result.stderr


ROUTER_APP = '''
def triple(x):
    tripled = x * 3
    return tripled


def add(req, a: int, b: int = 2):
    """Add two numbers."""
    total = a + b
    return "OK", {"sum": total, "tripled": triple(total)}
'''


def test_call_and_trace_through_the_real_router(butterfly_cli):
    """The router calls the handler through a reference captured at registration;
    ``--trace`` must still follow it, and ``routes`` shows the router's signature."""
    pytest.importorskip("butterfly_router")
    app = butterfly_cli.cwd / "handlers" / "calcapp"
    app.mkdir(parents=True)
    (app / "__init__.py").write_text(ROUTER_APP)
    disabled = [name for name in butterfly_cli.env["BUTTERFLY_DISABLE_PLUGINS"].split(",") if name != "router"]
    env = {"BUTTERFLY_DISABLE_PLUGINS": ",".join(disabled)}

    result = butterfly_cli.run("call", "/calcapp/add", "a=4", "--trace", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"stat": "OK", "sum": 6, "tripled": 18}
    assert "Starting var:.. a = 4" in result.stderr  # converted by the router: an int
    assert "New var:....... total = 6" in result.stderr
    assert "New var:....... tripled = 18" in result.stderr

    routes = {row["path"]: row for row in json.loads(butterfly_cli.run("routes", "--json", env=env).stdout)}
    assert routes["/calcapp/add"]["plugin"] == "router"
    assert routes["/calcapp/add"]["signature"].startswith("a:int")
    usage = butterfly_cli.run("call", env=env).stdout
    assert f"butterfly call /calcapp/add {routes['/calcapp/add']['signature']}" in usage.splitlines()
