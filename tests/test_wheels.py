"""The built artifacts, as users get them: every sdist and wheel builds and passes
``twine check --strict``; the wheels install (not editable) into a clean virtualenv
in an empty directory and serve a handler; an unpacked sdist runs its own tests.

The artifacts are built once per run by ``scripts/build_dists.sh`` (``make dist``).
Third-party dependencies come from the package index (through uv, cached); the
Butterfly distributions only from the freshly built files (``--no-index``), so a
same-named project on the index can never stand in for them.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.request
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from kernel.testing import free_port, hermetic_environ

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
UV = str(Path(sys.executable).with_name("uv"))
PACKAGE_DIRS = {"butterfly-kernel": REPO / "kernel"} | {
    tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]: folder / folder.name
    for folder in sorted(REPO.glob("plugins/*"))
    if (folder / "pyproject.toml").is_file()
}
DISTRIBUTIONS = sorted(PACKAGE_DIRS)
#: The folders of package data in a package (each one's files must be in its wheel).
DATA_FOLDERS = ("templates", "lua", "static")
#: Each distribution's version, from its one source: ``__version__`` in its package.
VERSION_OF = {
    name: re.search(r'^__version__ = "(.+)"$', (folder / "__init__.py").read_text(), re.M).group(1)
    for name, folder in PACKAGE_DIRS.items()
}


def run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command; fail the test with its output when it fails; return stdout+stderr."""
    done = subprocess.run(
        argv, cwd=cwd, env=env or hermetic_environ(), capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{output[-4000:]}"
    return output


def wheel_of(dists: Path, name: str) -> Path:
    """The built wheel of distribution ``name``."""
    [wheel] = dists.glob(f"{name.replace('-', '_')}-{VERSION_OF[name]}-py3-none-any.whl")
    return wheel


def wheel_metadata(dists: Path, name: str):
    """The parsed ``METADATA`` of ``name``'s wheel."""
    wheel = wheel_of(dists, name)
    with zipfile.ZipFile(wheel) as archive:
        info = f"{name.replace('-', '_')}-{VERSION_OF[name]}.dist-info/METADATA"
        return Parser().parsestr(archive.read(info).decode())


def third_party_requirements(dists: Path, wanted: list[str]) -> list[str]:
    """What installing ``wanted`` (``name`` or ``name[extra]``) pulls from the index, transitively
    through the Butterfly distributions, which are left out (they come from ``dists``)."""
    seen: set[str] = set()
    pending = [Requirement(text) for text in wanted]
    outside: list[str] = []
    while pending:
        requirement = pending.pop()
        if not requirement.name.startswith("butterfly-"):
            outside.append(str(requirement))
            continue
        for extra in sorted(requirement.extras) or [""]:
            if (requirement.name, extra) in seen:
                continue
            seen.add((requirement.name, extra))
            for line in wheel_metadata(dists, requirement.name).get_all("Requires-Dist") or []:
                dependency = Requirement(line)
                if dependency.marker is None or (extra and dependency.marker.evaluate({"extra": extra})):
                    dependency.marker = None
                    pending.append(dependency)
    return sorted(set(outside))


def new_venv(path: Path) -> Path:
    """A virtualenv with pip, as ``python -m venv`` makes it; returns its python."""
    run(sys.executable, "-m", "venv", str(path))
    return path / "bin" / "python"


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    """Return once ``port`` accepts; fail with the log when the process dies or 60 s pass."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> Path:
    """Every sdist and wheel, built by ``scripts/build_dists.sh`` (which also runs twine)."""
    out = tmp_path_factory.mktemp("dist")
    env = {**hermetic_environ(), "PY": sys.executable}
    output = run("bash", str(REPO / "scripts" / "build_dists.sh"), str(out), cwd=REPO, env=env, timeout=600)
    (out.parent / "build.log").write_text(output)
    return out


def test_every_distribution_builds_an_sdist_and_a_wheel_that_pass_twine_check_strict(dists):
    built = sorted(path.name for path in dists.iterdir())
    expected = sorted(
        f"{name.replace('-', '_')}-{VERSION_OF[name]}{suffix}"
        for name in DISTRIBUTIONS
        for suffix in ("-py3-none-any.whl", ".tar.gz")
    )
    assert built == expected
    log = (dists.parent / "build.log").read_text()
    assert log.count("PASSED") == len(expected) and "WARNING" not in log and "ERROR" not in log


def test_the_kernel_wheel_ships_the_kernel_only(dists):
    with zipfile.ZipFile(wheel_of(dists, "butterfly-kernel")) as archive:
        names = archive.namelist()
    info = f"butterfly_kernel-{VERSION_OF['butterfly-kernel']}.dist-info/"
    assert {name.split("/")[0] for name in names} == {"kernel", "_butterfly_cli.py", info.rstrip("/")}
    assert "kernel/py.typed" in names and "kernel/testing.py" in names
    assert f"{info}licenses/LICENSE" in names
    metadata = wheel_metadata(dists, "butterfly-kernel")
    assert metadata["License-Expression"] == "MIT"
    assert "butterfly = kernel.testing" in zipfile.ZipFile(wheel_of(dists, "butterfly-kernel")).read(
        f"{info}entry_points.txt"
    ).decode().replace("\r", "")


def test_plugin_wheels_ship_their_package_data_and_py_typed(dists):
    for name, folder in PACKAGE_DIRS.items():
        package = folder.name
        with zipfile.ZipFile(wheel_of(dists, name)) as archive:
            names = archive.namelist()
        assert f"{package}/py.typed" in names, name
        # no test suite in a wheel (``butterfly init``'s templates/init/tests/ is package data)
        assert not [n for n in names if ("/tests/" in n and "/templates/" not in n) or n.startswith("tests/")], name
        # package data: templates, Lua scripts (butterfly_mq/lua), static files
        for data in (path for sub in DATA_FOLDERS for path in (folder / sub).rglob("*") if path.is_file()):
            relative = data.relative_to(folder).as_posix()
            assert f"{package}/{relative}" in names, (name, relative)
        metadata = wheel_metadata(dists, name)
        assert metadata["Description-Content-Type"] == "text/markdown" and metadata.get_payload().strip(), name


def test_pip_install_kernel_and_mq_from_the_wheels_serves_a_handler(dists, tmp_path):
    """The user path: an empty directory, a clean venv, ``pip install butterfly-kernel butterfly-mq``,
    a handler in ``handlers/hello``, ``python -m kernel run``, an HTTP request."""
    python = new_venv(tmp_path / "venv")
    wanted = ["butterfly-kernel", "butterfly-mq"]
    run(UV, "pip", "install", "-q", "--python", str(python), *third_party_requirements(dists, wanted))
    run(str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(dists), *wanted)
    assert "No broken requirements found" in run(str(python), "-m", "pip", "check")

    project = tmp_path / "project"
    (project / "handlers" / "hello").mkdir(parents=True)
    (project / "handlers" / "hello" / "__init__.py").write_text(
        'def greet(req, name: str = "world"):\n    return "OK", {"greeting": f"hello, {name}"}\n'
    )
    where = run(str(python), "-c", "import kernel, butterfly_mq; print(kernel.__file__, butterfly_mq.__file__)")
    assert where.count(str(tmp_path / "venv" / "lib")) == 2, where  # installed copies, not the repo's
    plugins = json.loads(run(str(tmp_path / "venv" / "bin" / "butterfly"), "plugins", "--json", cwd=project))
    assert {row["name"]: row["dist"] for row in plugins} == {
        "kernel": "butterfly-kernel",
        "mq": "butterfly-mq",
        "router": "butterfly-router",
    }

    reply = serve_and_get(python, project, "/hello/greet?name=wheel", tmp_path / "server.log")
    assert reply == {"stat": "OK", "greeting": "hello, wheel"}

    # the other user path: no repository, no handlers yet — `butterfly init` writes a starter project
    starter = tmp_path / "starter"
    starter.mkdir()
    run(str(tmp_path / "venv" / "bin" / "butterfly"), "init", cwd=starter)
    assert {"butterfly.toml", "handlers", "tests"} <= {path.name for path in starter.iterdir()}
    reply = serve_and_get(python, starter, "/hello/greet?name=Ada&times=2", tmp_path / "starter.log")
    assert reply == {"stat": "OK", "message": "hello, Ada! hello, Ada!"}
    run(UV, "pip", "install", "-q", "--python", str(python), "pytest>=8")
    output = run(str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=starter)
    assert re.search(r"\b\d+ passed\b", output) and " failed" not in output, output[-2000:]


def serve_and_get(python: Path, project: Path, path: str, log: Path) -> dict:
    """Run ``python -m kernel run`` in ``project``, GET ``path``, stop it with SIGTERM; the JSON reply."""
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(python), "-m", "kernel", "run", "--port", str(port)],
            cwd=project,
            env=hermetic_environ(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, server, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            assert reply.status == 200
            body = json.loads(reply.read())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert server.returncode == 0, log.read_text()
    return body


def test_an_unpacked_sdist_runs_its_own_tests(dists, tmp_path):
    """butterfly-router's sdist, unpacked in an empty directory: install it and its ``test``
    dependency group, run ``pytest tests`` there."""
    name = "butterfly-router"
    with tarfile.open(dists / f"butterfly_router-{VERSION_OF[name]}.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    source = tmp_path / f"butterfly_router-{VERSION_OF[name]}"
    assert (source / "tests" / "conftest.py").is_file() and (source / "LICENSE").is_file()
    group = tomllib.loads((source / "pyproject.toml").read_text())["dependency-groups"]["test"]
    butterfly = [text for text in group if Requirement(text).name.startswith("butterfly-")]

    python = new_venv(tmp_path / "venv")
    outside = third_party_requirements(dists, [name, *butterfly]) + [
        text for text in group if not Requirement(text).name.startswith("butterfly-")
    ]
    run(UV, "pip", "install", "-q", "--python", str(python), "setuptools>=77", *outside)
    run(
        str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(dists),
        "--no-build-isolation", str(source), *butterfly,
    )  # fmt: skip
    output = run(str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=source)
    assert re.search(r"\b\d+ passed\b", output) and " failed" not in output, output[-2000:]
