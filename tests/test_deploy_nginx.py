"""``deploy/`` run for real: nginx in front of two instances started by the systemd unit's command.

``deploy/nginx.conf`` runs on a real nginx, used as shipped except for its ports and
paths (free ports, temporary directories, and ``user root`` when the tests run as
root, because those directories are private). The two instances run
``deploy/butterfly@.service``'s ``ExecStart`` and ``Environment`` with
``deploy/butterfly.toml`` (two workers each), sharing one store and one
``[auth] secret`` given through the environment, as the unit's ``EnvironmentFile`` would.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from kernel.daemon import child_pids, is_server_alive
from kernel.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "nginx.conf"
UNIT = ROOT / "deploy" / "butterfly@.service"
INSTANCE_CONFIG = ROOT / "deploy" / "butterfly.toml"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "correct-horse-battery"
ADMIN = ("--password", PASSWORD, "--role", "admin")

PROBE_PLUGIN = """
import os
from kernel import Response, hookimpl


def pid(request):
    return Response.json({"stat": "OK", "pid": os.getpid()})


@hookimpl
def butterfly_register_routes(register):
    register("/probe/pid", pid, kind="json")
"""


def render_config(port: int, upstreams: list[int], static_dir: Path, reports_dir: Path, host_header: str) -> str:
    """``deploy/nginx.conf`` with the test's ports and paths (and nothing else) swapped in."""
    text = CONFIG.read_text()
    swaps = [
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ("server 127.0.0.1:8001 ", f"server 127.0.0.1:{upstreams[0]} "),
        ("server 127.0.0.1:8002 ", f"server 127.0.0.1:{upstreams[1]} "),
        ("alias /srv/butterfly/static/;", f"alias {static_dir}/;"),
        ("alias /srv/butterfly/reports/;", f"alias {reports_dir}/;"),
        ("user www-data;", "user root;" if os.geteuid() == 0 else ""),
    ]
    for old, new in swaps:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    if host_header != "$http_host":
        text = text.replace("proxy_set_header Host $http_host;", f"proxy_set_header Host {host_header};")
    return text


class Nginx:
    """nginx with ``-p <dir> -c <conf>`` in the foreground, on a free port."""

    def __init__(self, directory: Path, config: str, port: int) -> None:
        self.port = port
        self.directory = directory
        for sub in ("logs", "temp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        conf = directory / "nginx.conf"
        conf.write_text(config)
        if not Path(NGINX).exists():
            pytest.fail(f"{NGINX} is missing: apt-get install nginx (scripts/bootstrap.sh --test)")
        argv = [NGINX, "-p", f"{directory}/", "-c", str(conf), "-e", str(directory / "logs" / "error.log")]
        checked = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen([*argv, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: port_open(port), f"nginx on port {port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def unit_service_lines() -> dict[str, list[str]]:
    """``key -> [values]`` of the ``[Service]`` section of ``deploy/butterfly@.service``."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


class Instance:
    """One instance as ``systemctl start butterfly@<port>`` runs it (with the probe plugin)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        unit = unit_service_lines()
        command = unit["ExecStart"][0].replace("%i", str(self.port)).split()
        assert command[0] == "/srv/butterfly/.venv/bin/butterfly"
        self.argv = [str(Path(sys.executable).parent / "butterfly"), *command[1:]]
        self.env = dict(env)
        for assignment in unit.get("Environment", []):
            key, _, value = assignment.replace("%i", str(self.port)).partition("=")
            self.env[key] = value
        self.kill_signal = signal.Signals[unit["KillSignal"][0]]
        self.stop_timeout = float(unit["TimeoutStopSec"][0])
        self.log_dir = workdir / self.env["BUTTERFLY_SERVER_LOG_DIR"]
        self.process: subprocess.Popen | None = None

    def start(self) -> Instance:
        with (self.workdir / f"out-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(self._ready, f"instance on port {self.port}", 60)
        return self

    @property
    def worker_pids(self) -> set[int]:
        return set(child_pids(self.process.pid))

    def _ready(self) -> bool:
        assert self.process.poll() is None, (self.workdir / f"out-{self.port}.log").read_text()[-3000:]
        try:
            return len(self.worker_pids) == 2 and request(self.port, "GET", "/probe/pid")[0] == 200
        except OSError:
            return False

    def access_lines(self) -> list[dict]:
        path = self.log_dir / "acc.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def crash(self) -> None:
        """SIGKILL the supervisor and its workers, as a machine crash would."""
        for pid in self.worker_pids:
            os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """Stop as systemd does: KillSignal, then SIGKILL after TimeoutStopSec."""
        if self.process and self.process.poll() is None:
            workers = self.worker_pids
            self.process.send_signal(self.kill_signal)
            try:
                assert self.process.wait(self.stop_timeout) == 0
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
            finally:
                for pid in workers:  # never leave one behind
                    if is_server_alive(pid):
                        os.kill(pid, signal.SIGKILL)


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def port_open(port: int) -> bool:
    try:
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
        return True
    except OSError:
        return False


def request(port, method, path, *, headers=None, body=None, source="127.0.0.1"):
    """One request on a new connection from ``source``; ``(status, headers, body)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.headers, reply.read()
    finally:
        connection.close()


def browser_login(port: int, next_path: str) -> tuple[int, http.client.HTTPMessage]:
    """The login form's POST, as a browser on ``http://127.0.0.1:<port>`` sends it."""
    form = urllib.parse.urlencode({"username": "alice", "password": PASSWORD, "next": next_path})
    status, headers, _ = request(
        port,
        "POST",
        "/auth/login",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "text/html,application/xhtml+xml",
            "Origin": f"http://127.0.0.1:{port}",
            "Referer": f"http://127.0.0.1:{port}/auth/login?next={next_path}",
        },
    )
    return status, headers


def session_cookie(headers: http.client.HTTPMessage) -> str:
    cookies = [value.split(";", 1)[0] for value in headers.get_all("Set-Cookie") or []]
    session = [cookie for cookie in cookies if cookie.startswith("butterfly_token=")]
    assert session, cookies
    return session[0]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    base = tmp_path_factory.mktemp("deploy")
    plugin_dir = base / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "probe_plugin.py").write_text(textwrap.dedent(PROBE_PLUGIN))
    reports = base / "reports"
    reports.mkdir()
    (reports / "daily.txt").write_text("revenue: up\n")
    # the unit's WorkingDirectory: the instance config at deploy/butterfly.toml
    (base / "deploy").mkdir()
    shutil.copy(INSTANCE_CONFIG, base / "deploy" / "butterfly.toml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env.update(
        PYTHONPATH=str(plugin_dir),
        BUTTERFLY_PLUGINS="probe_plugin",
        # what /etc/butterfly/butterfly.env holds in production
        BUTTERFLY_STORE_URL=f"sqlite:///{base / 'shared.db'}",
        BUTTERFLY_AUTH_SECRET="test-secret-" + uuid.uuid4().hex,
    )
    added = subprocess.run(
        [sys.executable, "-m", "kernel", "--config", "deploy/butterfly.toml", "auth", "add-user", "alice", *ADMIN],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    instances = [Instance(base, env) for _ in range(2)]
    nginx = None
    try:
        for instance in instances:
            instance.start()
        port = free_port()
        config = render_config(port, [i.port for i in instances], ROOT / "static", reports, "$http_host")
        nginx = Nginx(base / "nginx", config, port)
        yield {"base": base, "instances": instances, "nginx": nginx, "port": port, "reports": reports}
    finally:
        if nginx is not None:
            nginx.stop()
        for instance in instances:
            instance.stop()


def answering_pids(port: int, count: int) -> list[int]:
    pids = []
    for _ in range(count):
        status, _, body = request(port, "GET", "/probe/pid")
        assert status == 200, body
        pids.append(json.loads(body)["pid"])
    return pids


@pytest.mark.slow
def test_requests_are_spread_over_both_instances(deployment):
    first, second = deployment["instances"]
    pids = set(answering_pids(deployment["port"], 12))
    assert pids <= first.worker_pids | second.worker_pids
    assert pids & first.worker_pids and pids & second.worker_pids


@pytest.mark.slow
def test_browser_login_through_nginx_then_admin_pages_and_protected_files(deployment):
    port = deployment["port"]
    # a protected file without a session: to the login page
    status, headers, _ = request(port, "GET", "/reports/daily.txt")
    assert status == 302 and headers["Location"] == "/auth/login?next=/reports/daily.txt"

    # the form post passes the CSRF origin check (Host keeps the port) and comes back with the cookie
    status, headers = browser_login(port, "/reports/daily.txt")
    assert status == 303, headers
    assert headers["Location"] == "/reports/daily.txt"
    cookie = {"Cookie": session_cookie(headers)}

    # auth_request lets the session through to the file nginx serves
    status, headers, body = request(port, "GET", "/reports/daily.txt", headers=cookie)
    assert (status, body) == (200, b"revenue: up\n")
    assert headers["X-Auth-User"] == "alice"

    # admin pages through nginx, on both instances (one secret, one store)
    for _ in range(4):
        status, _, body = request(port, "GET", "/auth/users", headers=cookie)
        assert status == 200 and "alice" in json.loads(body)["users"][0]["name"]
    status, headers, _ = request(port, "GET", "/ruqi", headers={**cookie, "Accept": "text/html"})
    assert status == 200 and headers["Content-Type"].startswith("text/html")

    # a cookie-authenticated write from this origin passes; without Origin or token it is refused
    origin = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"}
    status, _, body = request(port, "POST", "/auth/tokens", headers={**cookie, **origin}, body='{"label": "ci"}')
    assert status == 200, body
    status, headers, _ = request(
        port, "POST", "/auth/tokens", headers={**cookie, "Content-Type": "application/json"}, body="{}"
    )
    assert status == 403 and "needs an Origin header" in headers["x-reason"]


@pytest.mark.slow
def test_the_access_log_records_the_real_client_not_nginx_or_a_forged_header(deployment):
    # the client comes from 127.0.0.2; nginx (127.0.0.1) is the trusted peer of the instances
    status, headers, _ = request(
        deployment["port"], "GET", "/probe/pid", headers={"X-Forwarded-For": "6.6.6.6"}, source="127.0.0.2"
    )
    assert status == 200
    reqid = headers["x-reqid"]

    def logged() -> list[dict]:  # NOTE: the access log is written off the request thread, moments later
        lines = [line for instance in deployment["instances"] for line in instance.access_lines()]
        return [line for line in lines if line["reqid"] == reqid]

    wait_until(logged, "the access line")
    assert [line["ip"] for line in logged()] == ["127.0.0.2"]
    # nginx's own log has the same client
    assert re.search(
        r"^127\.0\.0\.2 .*GET /probe/pid", (deployment["nginx"].directory / "logs" / "access.log").read_text(), re.M
    )
    # straight to an instance, the same forged header from an untrusted peer is ignored
    instance = deployment["instances"][0]
    status, headers, _ = request(
        instance.port, "GET", "/probe/pid", headers={"X-Real-IP": "6.6.6.6"}, source="127.0.0.2"
    )
    wait_until(lambda: any(line["reqid"] == headers["x-reqid"] for line in instance.access_lines()), "the line")
    assert [line["ip"] for line in instance.access_lines() if line["reqid"] == headers["x-reqid"]] == ["127.0.0.2"]


@pytest.mark.slow
def test_static_files_are_served_by_nginx_not_the_instances(deployment):
    status, headers, body = request(deployment["port"], "GET", "/static/hello.html")
    assert (status, body) == (200, (ROOT / "static" / "hello.html").read_bytes())
    assert headers["ETag"] and headers["Cache-Control"] == "max-age=3600"
    lines = [line for instance in deployment["instances"] for line in instance.access_lines()]
    assert not [line for line in lines if line["path"].startswith("/static/")]


@pytest.mark.slow
def test_nginx_fails_over_when_an_instance_dies(deployment):
    survivor, victim = deployment["instances"]
    victim.crash()
    try:
        pids = answering_pids(deployment["port"], 10)
        assert set(pids) <= survivor.worker_pids
    finally:
        # NOTE: leave the instance running for the tests after this one; this nginx keeps it
        # out of the rotation for fail_timeout (10 s), which they do not rely on.
        victim.start()


@pytest.mark.slow
def test_host_without_the_port_breaks_browser_logins_behind_a_non_80_port(deployment, tmp_path):
    """Why the config says ``Host $http_host``: with ``$host`` the port is lost."""
    port = free_port()
    config = render_config(
        port, [i.port for i in deployment["instances"]], ROOT / "static", deployment["reports"], "$host"
    )
    nginx = Nginx(tmp_path / "nginx-host", config, port)
    try:
        status, headers = browser_login(port, "/ruqi")
        assert status == 403
        assert headers["x-reason"] == "cross-site login refused (Origin)"
    finally:
        nginx.stop()


def doc_block(language: str, containing: str) -> str:
    """The fenced ``language`` block of docs/production.md that contains ``containing``."""
    text = (ROOT / "docs" / "production.md").read_text()
    blocks = re.findall(rf"```{language}\n(.*?)```", text, re.S)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, (containing, blocks)
    return found[0]


@pytest.mark.slow
def test_the_documented_health_check_command(deployment):
    command = doc_block("bash", "/_meta/health").split("#", 1)[0].strip()
    instance = deployment["instances"][0]
    argv = shlex.split(command.replace("127.0.0.1:8001", f"127.0.0.1:{instance.port}"))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    health = json.loads(result.stdout)
    assert health["stat"] == "OK" and health["checks"]["store"]["ok"] is True


@pytest.mark.slow
def test_the_documented_tls_setup_logs_a_browser_in_over_https(deployment, tmp_path):
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed = ("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1")
    made = subprocess.run(
        ["openssl", *self_signed, "-keyout", str(key), "-out", str(certificate)],
        capture_output=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    https_port, http_port = free_port(), free_port()
    tls = doc_block("nginx", "ssl_certificate")
    tls = tls.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    tls = tls.replace("/etc/ssl/butterfly/fullchain.pem", str(certificate))
    tls = tls.replace("/etc/ssl/butterfly/privkey.pem", str(key))
    redirect = doc_block("nginx", "return 301").replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    config = render_config(
        https_port, [i.port for i in deployment["instances"]], ROOT / "static", deployment["reports"], "$http_host"
    )
    config = config.replace(f"listen 127.0.0.1:{https_port};", textwrap.indent(tls, " " * 8).strip())
    config = config[: config.rstrip().rindex("}")] + textwrap.indent(redirect, " " * 4) + "}\n"
    nginx = Nginx(tmp_path / "nginx-tls", config, https_port)
    try:
        context = ssl.create_default_context(cafile=str(certificate))
        context.check_hostname = False  # the certificate names 127.0.0.1 as CN only

        def https(method, path, headers=None, body=None):
            connection = http.client.HTTPSConnection("127.0.0.1", https_port, timeout=30, context=context)
            try:
                connection.request(method, path, body=body, headers=headers or {})
                reply = connection.getresponse()
                return reply.status, reply.headers, reply.read()
            finally:
                connection.close()

        form = urllib.parse.urlencode({"username": "alice", "password": PASSWORD, "next": "/ruqi"})
        status, headers, _ = https(
            "POST",
            "/auth/login",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "text/html",
                "Origin": f"https://127.0.0.1:{https_port}",
            },
        )
        assert (status, headers["Location"]) == (303, "/ruqi")
        status, _, body = https("GET", "/auth/users", headers={"Cookie": session_cookie(headers)})
        assert status == 200, body
        # plain HTTP is sent to HTTPS
        status, headers, _ = request(http_port, "GET", "/ruqi?x=1")
        assert (status, headers["Location"]) == (301, "https://127.0.0.1/ruqi?x=1")
    finally:
        nginx.stop()
