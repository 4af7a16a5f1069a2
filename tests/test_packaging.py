"""Every distribution's metadata follows one standard (issue 13): PEP 621 ``pyproject.toml``,
MIT license file, README long description, one version source, bounded sibling
dependencies, ``py.typed``; and the ``butterfly`` command explains a clash with the PyPI
distribution that is also called ``kernel``."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import _butterfly_cli
from kernel.testing import hermetic_environ

REPO = Path(__file__).resolve().parents[1]
FOLDERS = [REPO, *sorted(p.parent for p in REPO.glob("plugins/*/pyproject.toml"))]
PROJECTS = {folder: tomllib.loads((folder / "pyproject.toml").read_text()) for folder in FOLDERS}
NAMES = {folder: data["project"]["name"] for folder, data in PROJECTS.items()}


def package_dir(folder: Path) -> Path:
    """The import package of the distribution in ``folder``."""
    return folder / ("kernel" if folder == REPO else folder.name)


def source_version(folder: Path) -> str:
    """``__version__`` as written in the package (the one version source)."""
    text = (package_dir(folder) / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"$', text, re.M).group(1)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.name)
def test_pep_621_metadata(folder):
    data = PROJECTS[folder]
    project = data["project"]
    assert data["build-system"] == {"requires": ["setuptools>=77"], "build-backend": "setuptools.build_meta"}
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (folder / "LICENSE").read_text().startswith("MIT License")
    assert project["readme"] == "README.md" and (folder / "README.md").is_file()
    assert project["requires-python"] == ">=3.11"
    assert "Typing :: Typed" in project["classifiers"]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # SPDX expression instead
    assert project["dynamic"] == ["version"]
    assert data["tool"]["setuptools"]["dynamic"]["version"] == {"attr": f"{package_dir(folder).name}.__version__"}
    assert (package_dir(folder) / "py.typed").is_file()


def test_no_setup_cfg_or_setup_py_is_left():
    leftovers = [
        path.relative_to(REPO)
        for pattern in ("setup.cfg", "setup.py")
        for path in REPO.rglob(pattern)
        if not {".venv", ".venv-lowest", "build", "dist"} & set(path.relative_to(REPO).parts)
    ]
    assert leftovers == []


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.name)
def test_one_version_source_and_it_is_what_is_installed(folder):
    version = source_version(folder)
    assert metadata.version(NAMES[folder]) == version, "run scripts/bootstrap.sh after changing a version"
    written = [
        path.relative_to(REPO)
        for path in [folder / "pyproject.toml", *package_dir(folder).rglob("*.py")]
        if path.name != "__init__.py" or path.parent != package_dir(folder)
        if re.search(rf"""["']{re.escape(version)}["']""", path.read_text())
    ]
    assert written == [], f"the version is written outside {package_dir(folder).name}/__init__.py"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.name)
def test_sibling_dependencies_are_bounded_and_admit_the_current_versions(folder):
    project = PROJECTS[folder]["project"]
    groups = PROJECTS[folder].get("dependency-groups", {})
    texts = (
        project.get("dependencies", [])
        + [text for extra in project.get("optional-dependencies", {}).values() for text in extra]
        + [text for group in groups.values() for text in group]
    )
    versions = {NAMES[f]: Version(source_version(f)) for f in FOLDERS}
    siblings = [Requirement(text) for text in texts if Requirement(text).name.startswith("butterfly-")]
    for requirement in siblings:
        assert requirement.name in versions, f"{requirement} names no distribution of this repository"
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{requirement} has no upper bound"
        assert requirement.specifier.contains(versions[requirement.name]), f"{requirement} excludes the sibling"


def test_the_kernel_is_the_minimal_install_and_standard_adds_router_and_trace():
    project = PROJECTS[REPO]["project"]
    assert not [text for text in project["dependencies"] if text.startswith("butterfly-")]
    assert sorted(Requirement(text).name for text in project["optional-dependencies"]["standard"]) == [
        "butterfly-router",
        "butterfly-trace",
    ]
    assert project["entry-points"]["pytest11"] == {"butterfly": "kernel.testing"}


def test_database_drivers_are_extras_of_the_store_not_binary_packages():
    project = PROJECTS[REPO / "plugins" / "butterfly_store"]["project"]
    names = [Requirement(text).name.lower() for text in project["dependencies"]]
    assert "pymysql" not in names and not [name for name in names if name.startswith("psycopg")]
    extras = project["optional-dependencies"]
    assert [Requirement(text).name for text in extras["mysql"]] == ["PyMySQL"]
    assert [Requirement(text).name for text in extras["postgresql"]] == ["psycopg2"]  # pony speaks psycopg2


# -- the PyPI distribution that is also called `kernel` -------------------------------------------


def fake_kernel_distribution(site: Path, *, with_package: bool) -> None:
    """Lay out PyPI's ``kernel`` as pip would: its dist-info, and (optionally) its package."""
    info = site / "kernel-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kernel\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("kernel\n")
    (info / "RECORD").write_text("kernel/__init__.py,,\n")
    if with_package:
        (site / "kernel").mkdir()
        (site / "kernel" / "__init__.py").write_text('"""Somebody else\'s kernel."""\n')


def run_butterfly(site: Path, *args: str) -> subprocess.CompletedProcess:
    code = "import sys, _butterfly_cli; sys.exit(_butterfly_cli.main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**hermetic_environ(), "PYTHONPATH": str(site)},
        cwd=site,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_foreign_kernel_package_is_one_line_naming_the_clash(tmp_path):
    fake_kernel_distribution(tmp_path, with_package=True)
    done = run_butterfly(tmp_path, "--help")
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("butterfly: error: 'import kernel' gives the 'kernel' distribution")
    assert "pip uninstall kernel butterfly-kernel && pip install butterfly-kernel" in line
    assert done.stdout == ""


def test_the_clashing_distribution_beside_a_working_kernel_is_a_warning(tmp_path):
    fake_kernel_distribution(tmp_path, with_package=False)
    done = run_butterfly(tmp_path, "--help")
    assert done.returncode == 0 and "usage: butterfly" in done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("butterfly: warning: the 'kernel' distribution is installed beside butterfly-kernel")


def test_butterfly_is_quiet_when_kernel_is_ours():
    assert _butterfly_cli.check_kernel_package() == (None, None)
    done = subprocess.run(
        [Path(sys.executable).with_name("butterfly"), "--help"],
        env=hermetic_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_python_m_kernel_runs_the_same_check(tmp_path):
    fake_kernel_distribution(tmp_path, with_package=False)
    done = subprocess.run(
        [sys.executable, "-m", "kernel", "--help"],
        env={**hermetic_environ(), "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "butterfly: warning: the 'kernel' distribution" in done.stderr


def test_the_entry_point_targets_the_checking_shim():
    [script] = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "butterfly"]
    assert script.value == "_butterfly_cli:main"
