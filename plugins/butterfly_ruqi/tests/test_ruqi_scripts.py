"""Script jobs: only inside script_dir (.., absolute, symlink escapes refused), off unless
allowed, argv without a shell, env + fire id, output cap, timeout kills the process group."""

from __future__ import annotations

import os
import time

import pytest

from butterfly_ruqi import service
from butterfly_ruqi.jobspec import JobSpec
from butterfly_ruqi.jobtypes import Fire
from butterfly_ruqi.types_script import ScriptJob
from kernel import BadRequest


@pytest.fixture
def scripts(tmp_path):
    folder = tmp_path / "scripts"
    folder.mkdir()
    (tmp_path / "outside.sh").write_text("echo escaped\n")
    (folder / "hello.sh").write_text(
        'echo "hello $1 fire=$RUQI_FIRE_ID job=$RUQI_JOB_ID color=$COLOR"\necho "$2"\nexit ${EXIT:-0}\n'
    )
    (folder / "loud.py").write_text("print('x' * 100000)\n")
    (folder / "spawner.sh").write_text('sleep 60 &\necho $! > "$1"\nsleep 60\n')
    (folder / "sneaky.sh").symlink_to(tmp_path / "outside.sh")
    return folder


@pytest.fixture
def script_kernel(ruqi_kernel, tmp_path, scripts):
    return ruqi_kernel(
        f"sqlite:///{tmp_path}/ruqi.sqlite", allow_scripts=True, script_dir=str(scripts), output_limit=2000
    )


def script_job(target, **fields):
    return {
        "job_id": "script-job",
        "job_trigger": "interval",
        "rule": "1h",
        "job_type": "script",
        "target": target,
        **fields,
    }


def run(kernel, target, options=None, timeout=10.0):
    spec = JobSpec("script-job", "s", "interval", "1h", "script", target, {}, options or {}, timeout=timeout)
    return ScriptJob().run(kernel, spec, Fire(42, "script-job", 0, True, "test"))


@pytest.mark.parametrize(
    "target,fragment",
    [
        ("../outside.sh", "outside"),
        ("sneaky.sh", "outside"),
        ("/etc/passwd", "outside"),
        ("nested/../../outside.sh", "outside"),
        ("missing.sh", "does not exist"),
        (".", "outside"),
    ],
)
def test_scripts_outside_script_dir_are_refused(script_kernel, target, fragment):
    state = script_kernel.extensions["ruqi"]
    with pytest.raises(BadRequest) as caught:
        service.add_job(state, script_job(target))
    assert caught.value.data["errors"][0]["param"] == "target" and fragment in caught.value.reason


def test_scripts_are_refused_unless_allowed(ruqi_kernel, tmp_path, scripts):
    kernel = ruqi_kernel(f"sqlite:///{tmp_path}/off.sqlite", script_dir=str(scripts))
    with pytest.raises(BadRequest) as caught:
        service.add_job(kernel.extensions["ruqi"], script_job("hello.sh"))
    assert "allow_scripts" in caught.value.reason
    assert not run(kernel, "hello.sh").ok  # a job stored while allowed does not run once disallowed


@pytest.mark.parametrize(
    "options,fragment",
    [
        ({"args": "a b; rm -rf /"}, "list of strings"),
        ({"args": [1, 2]}, "list of strings"),
        ({"env": {"A=B": "c"}}, "env"),
        ({"interpreter": "perl"}, "interpreter"),
        ({"shell": True}, "unknown script option"),
    ],
)
def test_bad_script_options(script_kernel, options, fragment):
    with pytest.raises(BadRequest) as caught:
        service.add_job(script_kernel.extensions["ruqi"], script_job("hello.sh", options=options))
    assert fragment in caught.value.reason


def test_script_gets_argv_env_and_fire_id_without_a_shell(script_kernel):
    service.add_job(script_kernel.extensions["ruqi"], script_job("hello.sh", options={"interpreter": "bash"}))
    outcome = run(
        script_kernel,
        "hello.sh",
        {"interpreter": "bash", "args": ["world", "$(touch /tmp/pwned); x"], "env": {"COLOR": "blue"}},
    )
    assert outcome.ok and outcome.output.startswith("exit code 0")
    assert "hello world fire=42 job=script-job color=blue" in outcome.output
    assert "$(touch /tmp/pwned); x" in outcome.output  # an argument, never shell code
    failed = run(script_kernel, "hello.sh", {"interpreter": "bash", "env": {"EXIT": "3"}})
    assert not failed.ok and failed.output.startswith("exit code 3")


def test_output_is_capped(script_kernel):
    outcome = run(script_kernel, "loud.py", {"interpreter": "python"})
    assert outcome.ok and "more bytes dropped" in outcome.output and len(outcome.output) < 2200


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"  # a zombie is dead, only unreaped
    except FileNotFoundError:
        return False


def test_timeout_kills_the_whole_process_group(script_kernel, tmp_path):
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    outcome = run(script_kernel, "spawner.sh", {"interpreter": "bash", "args": [str(pid_file)]}, timeout=1.0)
    assert not outcome.ok and outcome.output.startswith("timed out after 1s")
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), f"child {child} survived the timeout"
    assert time.monotonic() - started < 30  # sanity: it did not wait for the 60 s sleeps
    assert os.path.exists(pid_file)
