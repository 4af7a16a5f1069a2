"""Every example of README.md and docs/*.md runs, in page order, against a live server.

One project directory for the whole module — the repository's ``handlers/`` and
``static/``, ``.venv`` linked to this one's — served by ``butterfly start`` with every
installed plugin and the MQ on a private redis-server. Then, page by page (README first,
then the order of ``mkdocs.yml``'s nav), block by block:

* ``sh``/``bash`` blocks run in bash (``set -euo pipefail``): every command must succeed.
  Exported variables and the working directory carry over to the next block of the page.
* ``console`` blocks: each ``$ command`` runs the same way, and the lines under it are
  its expected output (stdout and stderr). ``…`` in an expected line matches any text,
  a line that is only ``…`` any number of lines; runs of spaces count as one.
* ``python`` blocks run with this virtualenv's Python in the project directory.
* ``toml`` blocks are checked against the settings the installed plugins declare.
* other languages (``json``, ``text``, ``nginx``, ``yaml``, ``html`` …) are data, not run;
  a fence without a language is an error (say what it is).

Annotations (``tests/docs_blocks.py``) mark what must not run (``skip (why)``), files to
write (``file=``/``append=``), a server restart, expected output, and blocks run by
another test (``covered-by=``). Pages with a dedicated test of their own are listed in
:data:`COVERED`. The only things changed in what runs: the port (``127.0.0.1:8585``),
the Redis URL (``redis://127.0.0.1:6379/0``), and — through the environment — the cost of
password hashing, and where ``pip install`` puts a package (a folder on the server's
``PYTHONPATH``, never this virtualenv).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kernel.testing import RedisServer, free_port, hermetic_environ

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_blocks", Path(__file__).with_name("docs_blocks.py"))
assert _spec and _spec.loader
docs_blocks = importlib.util.module_from_spec(_spec)
sys.modules["docs_blocks"] = docs_blocks
_spec.loader.exec_module(docs_blocks)
Block = docs_blocks.Block

#: Pages run by a test of their own (which reads the page), instead of twice.
COVERED = {
    "docs/cli.md": "tests/test_cli_docs.py",
    "docs/testing.md": "tests/test_testing_kit.py",
    "docs/workflows.md": "plugins/butterfly_xingqiao/tests/test_xingqiao_docs.py",
    "docs/observability.md": "tests/test_observability_docs.py",
    "docs/mq.md": "plugins/butterfly_mq/tests/test_mq_docs.py",
}
DATA_LANGUAGES = {"json", "text", "nginx", "yaml", "html", "ini", "ebnf", "diff", "jinja", "http", "properties"}
ELLIPSIS = "…"
BLOCK_TIMEOUT = 120

pytestmark = pytest.mark.slow


def page_order() -> list[str]:
    """README.md, then every page of ``mkdocs.yml``'s nav, then pages the nav lacks."""

    def walk(items) -> list[str]:
        found: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += walk(value) if isinstance(value, list) else [f"docs/{value}"]
        return found

    nav = walk(yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))["nav"])
    rest = sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md") if f"docs/{p.name}" not in nav)
    return ["README.md", *[page for page in nav if (REPO / page).exists()], *rest]


def expected_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` fits ``expected``, where ``…`` stands for any text."""

    def tidy(text: str) -> str:
        # NOTE: runs of spaces count as one, so a table whose columns widen still matches
        return "\n".join(re.sub(" {2,}", " ", line.rstrip()) for line in text.strip("\n").splitlines()).strip("\n")

    pattern = ""
    for line in tidy(expected).splitlines():
        if line.strip() == ELLIPSIS:
            pattern += r"(?:.*\n)*?"
            continue
        pattern += ".*?".join(re.escape(part) for part in line.split(ELLIPSIS)) + r"\n"
    return re.fullmatch(pattern, tidy(actual) + "\n") is not None


def console_commands(text: str) -> list[tuple[str, str]]:
    """``[(command, expected output)]`` of a ``console`` block (``$ `` prompts, ``\\`` continues)."""
    found: list[tuple[str, str]] = []
    continued = False
    for line in text.splitlines():
        if continued:
            command, shown = found[-1]
            found[-1] = (command + "\n" + line, shown)
        elif line.startswith("$ "):
            found.append((line[2:], ""))
        elif found:
            command, shown = found[-1]
            found[-1] = (command, shown + line + "\n")
        continued = bool(found) and not found[-1][1] and line.endswith("\\")
    return found


class DeclaredSettings:
    """The settings every installed plugin declares, to check ``toml`` blocks against."""

    def __init__(self) -> None:
        from kernel.plugins import make_plugin_manager

        self.pm, _ = make_plugin_manager(load_entrypoints=True)
        self.pm.hook.butterfly_add_hookspecs.call_historic(kwargs={"pluginmanager": self.pm})

    def check(self, text: str, where: str) -> None:
        """Parse ``text`` as ``butterfly.toml`` and resolve it; a bad key or value fails."""
        import tomllib

        from kernel.settings import Settings

        settings = Settings(tomllib.loads(text), environ={}, config_path=where)
        # NOTE: a historic hook cannot be called twice; its implementations can
        for impl in self.pm.hook.butterfly_add_settings.get_hookimpls():
            impl.function(settings=settings)
        settings.resolve()


class Project:
    """The project directory, its live server and the environment the examples run in."""

    def __init__(self, root: Path, redis: RedisServer) -> None:
        self.root = root
        self.port = free_port()
        self.redis = redis
        self.site = root / ".doc-site-packages"  # where the docs' `pip install` lands
        for name in ("handlers", "static"):
            shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        (root / ".venv").symlink_to(REPO / ".venv")
        self.site.mkdir()
        venv_bin = str(Path(sys.executable).parent)
        self.env = hermetic_environ()
        self.env.update(
            PATH=f"{venv_bin}{os.pathsep}{self.env.get('PATH', '')}",
            VIRTUAL_ENV=str(Path(sys.executable).parent.parent),
            PYTHONPATH=str(self.site),
            BUTTERFLY_SERVER_PORT=str(self.port),
            BUTTERFLY_MQ_REDIS_URL=redis.url,
            # NOTE: cheap hashing; the production cost is not what these examples show
            BUTTERFLY_AUTH_ARGON2_TIME_COST="1",
            BUTTERFLY_AUTH_ARGON2_MEMORY_KIB="1024",
            BUTTERFLY_AUTH_ARGON2_PARALLELISM="1",
            # `pip install .` of a docs example goes to self.site (on the server's PYTHONPATH)
            PIP_TARGET=str(self.site),
            PIP_NO_DEPS="1",
            PIP_NO_INDEX="1",
            PIP_NO_BUILD_ISOLATION="0",  # NOTE: pip's inverted spelling of --no-build-isolation
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            NO_COLOR="1",
            PS4="+ ",
        )
        self.running = False

    def rewrite(self, text: str) -> str:
        """The example as run here: this server's port, the private Redis."""
        text = text.replace("127.0.0.1:8585", f"127.0.0.1:{self.port}").replace(
            "localhost:8585", f"localhost:{self.port}"
        )
        text = text.replace("redis://127.0.0.1:6379/0", self.redis.url)
        assert ":6379" not in text, "an example would reach the shared Redis at :6379"
        return text

    def butterfly(self, *args: str) -> None:
        """Run ``butterfly args...`` in the project; fail with its output."""
        done = subprocess.run(
            [sys.executable, "-m", "kernel", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = self.root / "logs" / "stdout.log"
        assert done.returncode == 0, f"butterfly {' '.join(args)}:\n{done.stdout}{done.stderr}\n" + (
            log.read_text(errors="replace")[-3000:] if log.exists() else ""
        )

    def ensure_running(self) -> None:
        """Start the server once, on first need."""
        if not self.running:
            self.butterfly("start", "--timeout", "60")
            self.running = True

    def restart(self) -> None:
        """Restart the server (new handlers, new plugins, new config)."""
        self.butterfly("restart", "--timeout", "60")
        self.running = True

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.running:
            self.butterfly("stop", "--timeout", "30")
            self.running = False


class PageRun:
    """One page's run: its blocks in order, with the shell state carried between them."""

    def __init__(self, project: Project, page: str, declared: DeclaredSettings) -> None:
        self.project = project
        self.page = page
        self.declared = declared
        self.env = dict(project.env)
        self.cwd = project.root
        self.last_output: str | None = None
        self.state = project.root / ".doc-state"
        self.ran = 0
        self.skipped: list[str] = []
        self.mismatches: list[str] = []  # outputs that differ: all reported at the end of the page

    # -- running ------------------------------------------------------------------------

    def shell(self, script: str, where: str) -> str:
        """Run ``script`` in bash with this page's state; returns stdout + stderr."""
        env_file, cwd_file = self.state.with_suffix(".env"), self.state.with_suffix(".cwd")
        wrapped = f"set -euo pipefail\n{self.project.rewrite(script)}\nenv -0 > '{env_file}'\npwd > '{cwd_file}'\n"
        done = subprocess.run(
            ["bash", "-c", wrapped],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n$ {script}\n{done.stdout[-4000:]}"
        self.env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
        self.cwd = Path(cwd_file.read_text().strip())
        return done.stdout

    def python(self, source: str, where: str) -> str:
        """Run ``source`` with this virtualenv's Python; returns stdout + stderr."""
        done = subprocess.run(
            [sys.executable, "-"],
            input=self.project.rewrite(source),
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{done.stdout[-4000:]}"
        return done.stdout

    def run(self, block: Block) -> None:
        """Run one block as its language and annotations say."""
        if block.has("skip"):
            self.skipped.append(f"{block.where}: {block.directives['skip']}")
            return
        if block.has("covered-by"):
            test = REPO / block.directives["covered-by"]
            assert test.is_file(), f"{block.where}: covered-by names a missing test {test}"
            assert Path(self.page).name in test.read_text(encoding="utf-8"), f"{test} does not read {self.page}"
            return
        if block.has("output"):
            assert self.last_output is not None, f"{block.where}: an output block follows nothing that ran"
            if not expected_matches(self.project.rewrite(block.text), self.last_output):
                self.mismatches.append(
                    f"{block.where}: the output differs\n--- page ---\n{block.text}\n--- actual ---\n{self.last_output}"
                )
            return
        if block.has("restart"):
            self.project.restart()
        for name in ("file", "append"):
            if block.has(name):
                target = self.cwd / block.directives[name]
                target.parent.mkdir(parents=True, exist_ok=True)
                text = self.project.rewrite(block.text) + "\n"
                with target.open("a" if name == "append" else "w", encoding="utf-8") as handle:
                    handle.write(("\n" if name == "append" else "") + text)
                self.ran += 1
                return
        language = block.language
        if language in docs_blocks.SHELL | {"python"}:
            self.project.ensure_running()
        if language == "console":
            output = ""
            for command, expected in console_commands(block.text):
                actual = self.shell(command, block.where)
                expected = self.project.rewrite(expected)
                if expected.strip() and not expected_matches(expected, actual):
                    self.mismatches.append(
                        f"{block.where}: `{command}` printed something else\n--- page ---\n{expected}--- actual ---\n{actual}"
                    )
                output += actual
            self.last_output = output
        elif language in docs_blocks.SHELL:
            self.last_output = self.shell(block.text, block.where)
        elif language == "python":
            self.last_output = self.python(block.text, block.where)
        elif language == "toml":
            self.declared.check(block.text, block.where)
        elif language in DATA_LANGUAGES:
            return
        else:
            raise AssertionError(f"{block.where}: a fence without a known language ({language!r}): name it")
        self.ran += 1


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    redis = RedisServer().start()
    made = Project(tmp_path_factory.mktemp("docs-project"), redis)
    try:
        yield made
    finally:
        try:
            made.stop()
        finally:
            redis.stop()


@pytest.fixture(scope="module")
def declared():
    return DeclaredSettings()


@pytest.mark.parametrize("page", [page for page in page_order() if page not in COVERED])
def test_every_example_of_the_page_runs(page, project, declared):
    run = PageRun(project, page, declared)
    blocks = docs_blocks.blocks_of(REPO / page, page)
    started = time.monotonic()
    for block in blocks:
        run.run(block)
    print(f"{page}: {run.ran} blocks ran in {time.monotonic() - started:.1f}s; skipped: {run.skipped}")
    state = project.root / "butterfly.toml"
    assert not run.mismatches, "\n\n".join(run.mismatches)
    assert run.ran or run.skipped or all(block.language in DATA_LANGUAGES for block in blocks), f"{page}: no block ran"
    state.unlink(missing_ok=True)  # a page's config is its own


@pytest.mark.parametrize("page", sorted(COVERED))
def test_a_covered_page_is_read_by_its_test(page):
    if not (REPO / page).exists():
        pytest.skip(f"{page} is not in this tree")
    test = REPO / COVERED[page]
    assert test.is_file(), f"{page} is covered by {test}, which does not exist"
    assert Path(page).name in test.read_text(encoding="utf-8")


def test_the_readme_guide_is_the_one_tests_test_funcattr_guide_runs():
    readme = [block.text for block in docs_blocks.blocks_of(REPO / "README.md") if block.has("append")]
    guide = (REPO / "tests" / "test_funcattr_guide.py").read_text(encoding="utf-8")
    handler = re.search(r'GUIDE_HANDLER = """\n(.*?)"""', guide, re.S)
    assert handler and [handler[1].strip()] == [text.strip() for text in readme]


def test_the_harness_matches_outputs_as_documented():
    assert expected_matches('{"stat":"OK","randstr":"…"}', '{"stat":"OK","randstr":"ab(c)"}\n')
    assert expected_matches("HTTP/1.1 200 OK\n…\n\nbody", "HTTP/1.1 200 OK\nA: 1\nB: 2\n\nbody")
    assert not expected_matches('{"stat":"OK"}', '{"stat":"ERR"}')
    assert console_commands("$ a \\\n  b\nout\n$ c\n") == [("a \\\n  b", "out\n"), ("c", "")]
