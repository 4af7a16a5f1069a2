"""Hook implementations of butterfly-wuxing (entry point ``wuxing``).

Only hookimpls live here: entities in :mod:`butterfly_wuxing.models`, the API in
:mod:`butterfly_wuxing.api`, HTTP handlers in :mod:`butterfly_wuxing.handlers`,
the CLI in :mod:`butterfly_wuxing.cli`.
"""

from __future__ import annotations

from kernel import hookimpl

SECTION = "wuxing"


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[wuxing]``."""
    settings.add(
        SECTION,
        "max_page_size",
        int,
        100,
        "largest page_size any wuxing list accepts (bigger ones get ERR_BAD_PARAMS)",
        owner="wuxing",
    )
    settings.add(
        SECTION,
        "public_read",
        bool,
        False,
        "let anonymous clients read when butterfly-auth is installed (without it reads are always open); "
        "secret-looking item values stay masked for everyone but admins either way",
        owner="wuxing",
    )


@hookimpl(optionalhook=True)
def butterfly_store_define_entities(db):
    """Declare the wuxing tables on the shared store."""
    from butterfly_wuxing.models import define_entities

    define_entities(db)


@hookimpl(optionalhook=True)
def butterfly_router_handler_packages():
    """Serve :mod:`butterfly_wuxing.handlers` under ``/wuxing/``."""
    return [("wuxing", "butterfly_wuxing.handlers")]


@hookimpl
def butterfly_add_commands(subparsers):
    """``butterfly wuxing ...``: the original's wuxing_cli over HTTP."""
    from butterfly_wuxing.cli import add_command

    add_command(subparsers)


@hookimpl
def butterfly_configure(kernel):
    """Refuse to start without butterfly-store: wuxing has nowhere to keep its data."""
    from kernel import ConfigError

    caller = getattr(kernel.hook, "butterfly_store_define_entities", None)
    if caller is None or caller.spec is None:
        raise ConfigError(
            "butterfly-wuxing needs butterfly-store (pip install butterfly-store), which is missing or disabled"
        )


@hookimpl
def butterfly_register_routes(register, kernel):
    """The read-only browser: ``/wuxing/`` and its namespace, section, instance and item pages.

    Also shows ``[wuxing] max_page_size`` as the largest ``page_size`` of the list
    routes in the OpenAPI document (their signatures allow up to 10,000).
    """
    from butterfly_router.openapi import document_parameters
    from butterfly_wuxing.handlers import LIST_PATHS
    from butterfly_wuxing.pages import OPENAPI, ROUTES

    for path, page in ROUTES.items():
        register(path, page, kind="html", methods=("GET", "HEAD"), meta={"openapi": OPENAPI.get(path, {})})
    maximum = max(1, kernel.settings.get(SECTION, "max_page_size"))
    document_parameters(kernel, LIST_PATHS, page_size={"maximum": maximum})


@hookimpl
def butterfly_console_links(register):
    """The browser in the navigation bar (reads need a signed-in user unless ``[wuxing] public_read``)."""
    register(
        "五行 wuxing", "/wuxing/", description="config and monitoring data: namespaces, sections, instances, history"
    )
