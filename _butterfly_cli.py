"""The ``butterfly`` console script: make sure ``import kernel`` is Butterfly's, then run the CLI.

Butterfly's import package is ``kernel`` (``python -m kernel run``). The PyPI
distribution named ``kernel`` installs a top-level package of the same name into the
same ``site-packages/kernel/`` folder, so the two overwrite each other's files and
``pip check`` cannot tell. This module lives outside that folder, so it can still
explain the problem in one line when the folder holds someone else's ``__init__.py``.
See docs/install.md.
"""

from __future__ import annotations

import sys
from importlib import metadata

#: The distribution on PyPI whose top-level package is also ``kernel``.
CLASHING_DISTRIBUTION = "kernel"
#: What ``kernel/__init__.py`` of butterfly-kernel sets (and no other ``kernel`` package does).
MARKER = "__butterfly_distribution__"


def installed(distribution: str) -> bool:
    """Is ``distribution`` installed in this environment?

    :param distribution: a distribution name
    :return: whether its metadata is found on ``sys.path``
    """
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def check_kernel_package() -> tuple[str | None, str | None]:
    """Find out whether ``import kernel`` gives butterfly-kernel's package.

    :return: ``(error, warning)``: ``error`` when Butterfly cannot run (the
        ``kernel`` package is someone else's or fails to import), ``warning`` when it
        runs but the clashing distribution is installed beside it; each one line
    """
    clash = installed(CLASHING_DISTRIBUTION)
    remedy = (
        f"pip uninstall {CLASHING_DISTRIBUTION} butterfly-kernel && pip install butterfly-kernel, "
        "or install Butterfly in its own virtualenv (docs/install.md)"
    )
    try:
        import kernel
    except Exception as exc:  # noqa: BLE001 - any failure here is reported in one line
        cause = f"the '{CLASHING_DISTRIBUTION}' distribution is installed too" if clash else "is it installed?"
        return f"cannot import Butterfly's 'kernel' package ({type(exc).__name__}: {exc}); {cause}: {remedy}", None
    if getattr(kernel, MARKER, None) != "butterfly-kernel":
        where = getattr(kernel, "__file__", None) or "a namespace package"
        owner = f"the '{CLASHING_DISTRIBUTION}' distribution" if clash else "another package"
        return f"'import kernel' gives {owner} ({where}), not Butterfly's kernel: {remedy}", None
    if clash:
        return None, (
            f"the '{CLASHING_DISTRIBUTION}' distribution is installed beside butterfly-kernel and shares its "
            f"import name 'kernel'; either may break the other: {remedy}"
        )
    return None, None


def main() -> int:
    """Entry point of ``butterfly`` (and ``python -m kernel``); returns the exit code."""
    error, warning = check_kernel_package()
    if error:
        print(f"butterfly: error: {error}", file=sys.stderr)
        return 1
    if warning:
        print(f"butterfly: warning: {warning}", file=sys.stderr)
    from kernel.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
