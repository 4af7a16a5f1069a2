"""``deploy/logrotate.conf`` run by the real ``logrotate`` on an instance started as
``deploy/butterfly@.service`` starts it (two workers, ``deploy/butterfly.toml``).

Only the paths and the owner change, and the postrotate's ``systemctl reload`` becomes
what systemd runs for it: the unit's ``ExecReload`` with ``$MAINPID``. Nothing may be
lost, and nothing written to the rotated files once the workers reopened theirs.
"""

from __future__ import annotations

import grp
import importlib.util
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "logrotate.conf"
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
_spec = importlib.util.spec_from_file_location("deploy_nginx", Path(__file__).with_name("test_deploy_nginx.py"))
assert _spec and _spec.loader
deploy = importlib.util.module_from_spec(_spec)
sys.modules["deploy_nginx"] = deploy
_spec.loader.exec_module(deploy)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(LOGROTATE).exists(), reason="logrotate is not installed"),
]
RELOAD_IN_CONFIG = "systemctl reload 'butterfly@*.service'"


def render(base: Path, main_pid: int) -> str:
    """The shipped config with this test's paths, owner and the unit's ExecReload swapped in."""
    text = CONFIG.read_text()
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    reload = deploy.unit_service_lines()["ExecReload"][0].replace("$MAINPID", str(main_pid))
    swaps = [("/srv/butterfly/logs", str(base / "logs")), ("butterfly butterfly", f"{user} {group}")]
    swaps.append((RELOAD_IN_CONFIG, reload))
    for old, new in swaps:
        assert old in text, old
        text = text.replace(old, new)
    return text


def reqids(path: Path) -> list[str]:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line["reqid"] for line in lines if line["path"] == "/probe/pid"]


def send(port: int, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        status, headers, body = deploy.request(port, "GET", "/probe/pid")
        assert status == 200, body
        ids.append(headers["x-reqid"])
    return ids


def test_logrotate_renames_and_the_reload_moves_every_worker_to_the_new_files(tmp_path):
    base = tmp_path
    (base / "plugins").mkdir()
    (base / "plugins" / "probe_plugin.py").write_text(textwrap.dedent(deploy.PROBE_PLUGIN))
    (base / "deploy").mkdir()
    shutil.copy(deploy.INSTANCE_CONFIG, base / "deploy" / "butterfly.toml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUTTERFLY_")}
    env.update(
        PYTHONPATH=str(base / "plugins"),
        BUTTERFLY_PLUGINS="probe_plugin",
        BUTTERFLY_STORE_URL=f"sqlite:///{base / 'shared.db'}",
        BUTTERFLY_AUTH_SECRET="test-secret-" + uuid.uuid4().hex,
    )
    instance = deploy.Instance(base, env)
    try:
        instance.start()
        workers = instance.worker_pids
        acc, app = instance.log_dir / "acc.log", instance.log_dir / "app.log"
        before = send(instance.port, 30)
        deploy.wait_until(lambda: set(before) <= set(reqids(acc)), "the first access lines")

        conf = base / "logrotate.conf"
        conf.write_text(render(base, instance.process.pid))
        conf.chmod(0o644)
        done = subprocess.run(
            [LOGROTATE, "--force", "--state", str(base / "logrotate.state"), str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

        def reopened() -> set[int]:
            lines = [json.loads(line) for line in app.read_text().splitlines()] if app.exists() else []
            return {line["pid"] for line in lines if line.get("event") == "log files reopened"}

        deploy.wait_until(lambda: reopened() == workers, "every worker to reopen its files")
        after = send(instance.port, 30)
    finally:
        instance.stop()
    (rotated,) = instance.log_dir.glob("acc.log-*")  # dateext; delaycompress keeps it plain
    # (the instance's readiness probes are in the rotated file too)
    assert set(before) <= set(reqids(rotated)) and not set(after) & set(reqids(rotated))
    assert sorted(reqids(acc)) == sorted(after)
    assert oct(acc.stat().st_mode & 0o777) == "0o640"
