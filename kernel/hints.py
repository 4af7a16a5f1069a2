"""Start-up hints for installs that cannot do what the user expects.

``butterfly-kernel`` alone serves nothing: handler apps in ``handlers/`` are found by
a router plugin (butterfly-router, in the ``standard`` extra). When ``handlers/``
holds apps and no route serves any of them, ``butterfly run`` says so in one
warning line instead of answering every request with a silent 404.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from kernel.app import Kernel

log = structlog.get_logger("butterfly.kernel")

#: What installs the router and trace plugins (docs/install.md).
STANDARD_INSTALL = "pip install 'butterfly-kernel[standard]'"


def handler_apps(handlers_dir: Path) -> list[str]:
    """The app packages in ``handlers_dir`` (folders with an ``__init__.py``).

    :param handlers_dir: the handlers folder (may be missing)
    :return: the app names, sorted; ``[]`` when the folder is missing
    """
    if not handlers_dir.is_dir():
        return []
    return sorted(
        entry.name
        for entry in handlers_dir.iterdir()
        if entry.is_dir() and (entry / "__init__.py").is_file() and not entry.name.startswith(("_", "."))
    )


def unserved_handler_apps(kernel: Kernel) -> list[str]:
    """The apps of the handlers folder when not one of them has a route, else ``[]``.

    :param kernel: a configured kernel
    :return: the app names nobody serves
    """
    declared = ("router", "handlers_dir") in kernel.settings.declared
    handlers_dir = Path(kernel.settings.get("router", "handlers_dir") if declared else "handlers")
    apps = handler_apps(handlers_dir)
    served = {route.path.strip("/").split("/", 1)[0] for route in kernel.routes}
    return [] if served.intersection(apps) else apps


def warn_unserved_handlers(kernel: Kernel) -> bool:
    """Log one warning when ``handlers/`` has apps and no installed plugin serves them.

    :param kernel: a configured kernel
    :return: whether the warning was logged
    """
    apps = unserved_handler_apps(kernel)
    if not apps:
        return False
    log.warning(
        f"handlers/ has apps ({', '.join(apps)}) but no installed plugin serves them: {STANDARD_INSTALL}",
        apps=apps,
    )
    return True
