"""The ``[router]`` settings and the router's per-kernel state."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from butterfly_router.stat_adaptor import StatAdaptor
    from kernel import Kernel

SECTION = "router"
#: ``kernel.extensions`` key of the router's :class:`RouterState`.
EXTENSION = "router"
STAT_ADAPTOR_KEYS = {"ok_field", "message_field", "ok_stats"}


def parse_stat_adaptor(value: Any) -> dict[str, Any] | None:
    """Convert the ``[router] stat_adaptor`` setting (a TOML table or JSON text).

    ``{ok_field = "success", message_field = "message", ok_stats = ["OK"]}``;
    an empty value switches it off.

    :param value: the raw setting
    :return: the normalised mapping, or ``None`` when off
    :raises ValueError: on unknown keys or bad values (reported as a ConfigError)
    """
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(
                'expected a table or JSON object like {"ok_field": "success", "message_field": "message"}'
            ) from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a table, got {value!r}")
    unknown = set(value) - STAT_ADAPTOR_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; valid keys: {sorted(STAT_ADAPTOR_KEYS)}")
    ok_field = value.get("ok_field")
    if not isinstance(ok_field, str) or not ok_field:
        raise ValueError("ok_field (the name of the boolean field, e.g. 'success') is required")
    message_field = value.get("message_field") or None
    if message_field is not None and not isinstance(message_field, str):
        raise ValueError("message_field must be a string")
    ok_stats = value.get("ok_stats", ["OK"])
    if isinstance(ok_stats, str):
        ok_stats = [ok_stats]
    if not isinstance(ok_stats, list) or not all(isinstance(s, str) for s in ok_stats):
        raise ValueError("ok_stats must be a list of stat strings")
    return {"ok_field": ok_field, "message_field": message_field, "ok_stats": list(ok_stats)}


def add_settings(settings) -> None:
    """Declare ``[router]`` (called from ``butterfly_add_settings``)."""
    add = settings.add
    add(
        SECTION,
        "handlers_dir",
        str,
        "handlers",
        "directory of the handler apps, relative to the working directory; imported as a package "
        "named after its basename",
        owner="router",
    )
    add(
        SECTION,
        "strict",
        bool,
        False,
        "a handler app that fails to import stops start-up (default: logged, the others serve)",
        owner="router",
    )
    add(
        SECTION,
        "static_dir",
        str,
        "static",
        "directory served under /static/ (empty switches static files off)",
        owner="router",
    )
    add(
        SECTION,
        "static_max_age",
        int,
        0,
        "Cache-Control max-age for static files in seconds (0: no-cache, always revalidate)",
        owner="router",
    )
    add(
        SECTION,
        "download_dir",
        str,
        "",
        "the only directory @download handlers may serve from (default: <data_dir>/downloads)",
        owner="router",
    )
    add(
        SECTION,
        "stat_adaptor",
        parse_stat_adaptor,
        None,
        'extra fields derived from stat in every JSON reply, e.g. {ok_field = "success", '
        'message_field = "message", ok_stats = ["OK"]}',
        owner="router",
    )
    add(SECTION, "openapi", bool, True, "serve /_meta/openapi.json", owner="router")


@dataclass
class RouterState:
    """What the router keeps on ``kernel.extensions["router"]``.

    :param handlers_dir: absolute handlers directory
    :param static_dir: absolute static directory, or ``None`` when off
    :param download_dir: absolute download directory
    """

    handlers_dir: Path
    static_dir: Path | None
    download_dir: Path
    strict: bool = False
    static_max_age: int = 0
    openapi: bool = True
    stat_adaptor: StatAdaptor | None = None
    #: apps that failed to import: ``{app: "ExcType: message"}``
    broken_apps: dict[str, str] = field(default_factory=dict)
    #: ``[(app, module)]`` loaded successfully
    loaded_apps: list[tuple[str, str]] = field(default_factory=list)
    #: the generated OpenAPI document, built on first request
    openapi_document: dict[str, Any] | None = None

    @classmethod
    def from_kernel(cls, kernel: Kernel) -> RouterState:
        """Read ``[router]`` and resolve its directories against the working directory."""
        section = kernel.settings.section(SECTION)
        download_dir = section.download_dir or os.path.join(kernel.data_dir, "downloads")
        return cls(
            handlers_dir=Path(section.handlers_dir).absolute(),
            static_dir=Path(section.static_dir).absolute() if section.static_dir else None,
            download_dir=Path(download_dir).absolute(),
            strict=section.strict,
            static_max_age=max(0, section.static_max_age),
            openapi=section.openapi,
        )


def state_of(kernel: Kernel) -> RouterState:
    """The router's :class:`RouterState` on ``kernel``."""
    return kernel.extensions[EXTENSION]
