"""The ``script`` job type: run a script from ``[ruqi] script_dir`` — never through a shell.

Refused unless ``[ruqi] allow_scripts = true``. ``target`` is the script's path,
relative to ``script_dir`` (or absolute inside it); it is resolved with
``realpath``, so ``..`` and symlinks that lead outside are refused — at creation
and again before every run. ``options``:

- ``args``: list of strings appended to the argv;
- ``env``: ``{name: value}`` added to a minimal environment (``PATH``, ``LANG``);
- ``interpreter``: ``python`` (this server's interpreter), ``bash`` or ``sh``;
  without it the script itself must be executable (``#!`` line).

The script runs in its own session (``start_new_session=True``), with
``script_dir`` as working directory, stdout and stderr merged and capped. On
timeout the **whole process group** gets SIGTERM, then SIGKILL after
``KILL_GRACE`` seconds; when the script exits, anything it left running in its
group is killed too. ``RUQI_FIRE_ID``, ``RUQI_SCHEDULED_TIME`` and ``RUQI_JOB_ID``
are set in its environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from butterfly_ruqi.jobtypes import Fire, JobType, Outcome, bad_param

INTERPRETERS = ("python", "bash", "sh")
KILL_GRACE = 1.0
CHUNK = 65536


def script_settings(kernel) -> tuple[bool, str, int]:
    """``(allow_scripts, realpath of script_dir, output_limit)``."""
    section = kernel.settings.section("ruqi")
    return section.allow_scripts, os.path.realpath(section.script_dir), section.output_limit


def resolve_script(script_dir: str, target: str) -> str:
    """The real path of ``target`` if it is a file inside ``script_dir``.

    :raises kernel.BadRequest: outside the directory (``..``, absolute path, symlink), missing
    """
    if not target or "\x00" in target:
        raise bad_param("target", "must name a script inside [ruqi] script_dir")
    candidate = target if os.path.isabs(target) else os.path.join(script_dir, target)
    real = os.path.realpath(candidate)
    if real == script_dir or os.path.commonpath([script_dir, real]) != script_dir:
        raise bad_param("target", f"script {target!r} is outside [ruqi] script_dir ({script_dir})")
    if not os.path.isfile(real):
        raise bad_param("target", f"script {target!r} does not exist in [ruqi] script_dir")
    return real


def build_argv(options: dict, script: str) -> list[str]:
    """``[interpreter?, script, *args]``."""
    interpreter = options.get("interpreter")
    prefix: list[str] = []
    if interpreter == "python":
        prefix = [sys.executable]
    elif interpreter in ("bash", "sh"):
        prefix = [shutil.which(interpreter) or f"/bin/{interpreter}"]
    return [*prefix, script, *options.get("args", [])]


class ScriptJob(JobType):
    """Run a script with an argv list, a timeout, an environment and an output cap."""

    description = "run a script from [ruqi] script_dir (argv, no shell)"

    def validate(self, kernel, spec) -> None:
        """Scripts allowed, path inside ``script_dir``, options well-formed."""
        allowed, script_dir, _ = script_settings(kernel)
        if not allowed:
            raise bad_param("job_type", "script jobs are disabled; set [ruqi] allow_scripts = true to allow them")
        resolve_script(script_dir, spec.target)
        options = spec.options
        unknown = set(options) - {"args", "env", "interpreter"}
        if unknown:
            raise bad_param(
                "options", f"unknown script option(s) {', '.join(sorted(unknown))}; valid: args, env, interpreter"
            )
        args = options.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) and "\x00" not in a for a in args):
            raise bad_param("options", "args must be a list of strings (an argv, never a shell line)")
        env = options.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and k and "=" not in k and "\x00" not in k and isinstance(v, str) and "\x00" not in v
            for k, v in env.items()
        ):
            raise bad_param("options", "env must be an object of string names (no '=') to string values")
        if options.get("interpreter") not in (None, *INTERPRETERS):
            raise bad_param("options", f"interpreter must be one of {', '.join(INTERPRETERS)}")

    def run(self, kernel, spec, fire: Fire) -> Outcome:
        """Run it; succeed on exit code 0."""
        allowed, script_dir, limit = script_settings(kernel)
        if not allowed:
            return Outcome(False, "script jobs are disabled ([ruqi] allow_scripts = false)")
        script = resolve_script(script_dir, spec.target)  # again: the tree may have changed
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            **spec.options.get("env", {}),
            "RUQI_FIRE_ID": str(fire.fire_id),
            "RUQI_SCHEDULED_TIME": fire.scheduled_time,
            "RUQI_JOB_ID": spec.job_id,
        }
        return run_process(build_argv(spec.options, script), cwd=script_dir, env=env, timeout=spec.timeout, limit=limit)


def run_process(argv: list[str], *, cwd: str, env: dict[str, str], timeout: float, limit: int) -> Outcome:
    """Run ``argv`` in a new session; kill its process group on timeout.

    :param limit: bytes of output kept; the rest is read and dropped so the
        process never blocks on a full pipe
    :return: the :class:`Outcome` (output: exit status line + captured output)
    """
    try:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        return Outcome(False, f"cannot start {argv[0]}: {exc}")
    captured = bytearray()
    dropped = [0]

    def drain() -> None:
        while chunk := process.stdout.read1(CHUNK):
            room = limit - len(captured)
            captured.extend(chunk[: max(room, 0)])
            dropped[0] += max(len(chunk) - max(room, 0), 0)

    reader = threading.Thread(target=drain, name="ruqi-script-output", daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass
    # NOTE: children may outlive the script and keep the pipe open; wait for them
    # until the deadline, then kill whatever is left of the group.
    reader.join(max(deadline - time.monotonic(), 0.05))
    kill_group(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait()
    reader.join(5)
    process.stdout.close()
    text = captured.decode("utf-8", "replace")
    if dropped[0]:
        text += f"\n[{dropped[0]} more bytes dropped]"
    if timed_out:
        return Outcome(False, f"timed out after {timeout:g}s; process group killed\n{text}")
    code = process.returncode
    return Outcome(code == 0, f"exit code {code}\n{text}")


def kill_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
