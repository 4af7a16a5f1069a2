"""Hooks the router adds to the kernel's plugin manager (``butterfly_add_hookspecs``)."""

from __future__ import annotations

from kernel import hookspec

# --------------------------------------------------------------------------------------
# routing
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_router_handler_packages():
    """Contribute handler packages, served like the user's ``handlers/<app>``.

    Runs once on the main thread while the router registers routes (after every
    ``butterfly_configure``). Every public function of the module whose first
    parameter is ``req`` and that is defined in that module (not imported into it)
    is served at ``/<app_name>/<function>``. Implement it with
    ``@hookimpl(optionalhook=True)`` so the plugin still loads without the router.

    :return: a list of ``(app_name, "dotted.module.name")`` pairs, or ``None``
    """


# --------------------------------------------------------------------------------------
# OpenAPI
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_router_openapi_operation(route, method, operation):
    """Amend one operation of the OpenAPI document (``/_meta/openapi.json``).

    Runs on a request thread the first time the document is asked for, once per
    route and method, after the router filled in parameters, responses and the
    route's own ``meta["openapi"]``. For statuses or parameters a plugin adds to
    many routes at once (a login redirect, a rate limit). Implement it with
    ``@hookimpl(optionalhook=True)``.

    :param route: the :class:`kernel.routes.Route`
    :param method: the lower-case OpenAPI method key (``"get"``)
    :param operation: the operation dict; change it in place (``responses``,
        ``parameters``, ``security`` ...)
    :return: ``None``
    """
