"""Every hook the kernel calls. Plugins implement them with ``@kernel.hookimpl``.

Hooks run in LIFO registration order, with ``tryfirst``/``trylast`` buckets; no
plugin may rely on another plugin having run. An implementation may accept fewer
arguments than the spec lists.
"""

from __future__ import annotations

from kernel.markers import hookspec

# --------------------------------------------------------------------------------------
# lifecycle: called once per kernel, on the main thread, in this order
# --------------------------------------------------------------------------------------


@hookspec(historic=True)
def butterfly_add_hookspecs(pluginmanager):
    """Add a plugin's own hookspecs (e.g. ``butterfly_store_define_entities``).

    Runs first, right after the plugin is registered. Historic: plugins registered
    later are called at registration; incompatible with wrappers. Implementations of
    hooks that another, optional plugin defines must be marked
    ``@hookimpl(optionalhook=True)`` so they do not fail start-up when it is absent.

    :param pluginmanager: the kernel's :class:`pluggy.PluginManager`
    :return: ``None``
    """


@hookspec(historic=True)
def butterfly_add_settings(settings):
    """Declare the plugin's typed settings with their defaults.

    Runs on the main thread before any value is read. Historic: late-registered
    plugins are called at registration; incompatible with wrappers.

    :param settings: the :class:`kernel.settings.Settings` registry; call
        ``settings.add(section, key, type, default, help)``, using the plugin's
        short name as ``section``
    :return: ``None``
    """


@hookspec(historic=True)
def butterfly_configure(kernel):
    """Read settings and build the plugin's state (no threads, no I/O yet).

    Runs on the main thread after every setting resolved. Historic: late-registered
    plugins are called at registration; incompatible with wrappers. Stateful parts
    may ``kernel.pm.register(obj)`` here; ``check_pending()`` runs afterwards.

    :param kernel: the :class:`kernel.app.Kernel`; ``kernel.settings`` is final
    :return: ``None``
    """


@hookspec
def butterfly_register_routes(register, kernel):
    """Add routes to the kernel's table.

    Runs on the main thread after ``butterfly_configure``.

    :param register: ``register(path, endpoint, *, protocol=None, kind="raw",
        methods=None, admin=False, prefix=False, meta=None)``; see
        :meth:`kernel.routes.RouteTable.register`. A duplicate path is an error
        naming both owners.
    :param kernel: the :class:`kernel.app.Kernel`
    :return: ``None``
    """


@hookspec
def butterfly_startup(kernel):
    """Start background work: threads, connections, schedulers.

    Runs on the main thread once the kernel is about to serve (``run``, ``start``,
    ``kernel.testing`` live servers) — never for one-shot CLI commands.

    :param kernel: the :class:`kernel.app.Kernel`
    :return: ``None``
    """


@hookspec
def butterfly_shutdown(kernel):
    """Stop background work: drain in-flight jobs, close connections.

    Runs once on graceful shutdown, on a shutdown thread, while the HTTP server is
    draining; should finish within ``[server] shutdown_timeout`` seconds.

    :param kernel: the :class:`kernel.app.Kernel`
    :return: ``None``
    """


@hookspec
def butterfly_add_commands(subparsers):
    """Add CLI subcommands (``butterfly mq ...``).

    Runs on the main thread while the CLI builds its parser. A command sets
    ``parser.set_defaults(run=func)``; ``func(args)`` returns an exit code and can
    build a kernel with :func:`kernel.cli.load_kernel`.

    :param subparsers: the :mod:`argparse` sub-parsers action of ``butterfly``
    :return: ``None``
    """


@hookspec
def butterfly_health(kernel):
    """Report the plugin's health for ``/_meta/health``.

    Runs on a request thread for every health check; keep it fast.

    :param kernel: the :class:`kernel.app.Kernel`
    :return: ``{check_name: (ok: bool, detail: str)}`` or ``None``
    """


# --------------------------------------------------------------------------------------
# request: called once per HTTP request or in-process call, on that thread
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_request_started(request):
    """A request (or ``kernel.call``) begins, before route lookup.

    Runs on the request thread (a waitress worker, the MQ consumer, a ruqi job or
    the CLI). The trace plugin assigns ``request.reqid`` here (``tryfirst``).

    :param request: the :class:`kernel.request.Request`
    :return: ``None``
    """


@hookspec(firstresult=True)
def butterfly_authorize(request, route):
    """Decide whether the caller may use ``route``.

    Runs on the request thread after route lookup. Stops at first non-None result.
    The kernel's default (``trylast``) lets admin routes answer loopback clients only.

    :param request: the :class:`kernel.request.Request`; set ``request.user`` when
        the caller is authenticated
    :param route: the matched :class:`kernel.routes.Route` (``route.admin``)
    :return: ``True`` to allow, a :class:`kernel.errors.HTTPError` (401/403) to deny,
        ``None`` to leave the decision to others
    """


@hookspec(firstresult=True)
def butterfly_handle_error(request, exc):
    """An unexpected exception escaped a handler or a hook.

    Runs on the request thread. Stops at first non-None result. The kernel logs the
    exception with its traceback afterwards (rate-limited per signature, see
    :func:`kernel.logs.log_exception`) unless an implementation logged it itself and
    set ``request.error_reported = True``. Report it elsewhere here (an error
    tracker); never put the traceback in the reply.

    :param request: the :class:`kernel.request.Request`
    :param exc: the exception
    :return: a :class:`kernel.response.Response` to send instead of the default
        JSON 500, or ``None``
    """


# --------------------------------------------------------------------------------------
# response
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_response_headers(request, response):
    """Add headers to (or amend the JSON ``data`` of) a response about to be sent.

    Runs on the request thread for every response, errors included, before the
    body is encoded. ``response.data`` is the JSON dict while it is not ``None``.

    :param request: the :class:`kernel.request.Request`
    :param response: the :class:`kernel.response.Response`
    :return: ``None``
    """


@hookspec
def butterfly_request_finished(request, response):
    """The response is final. Always called, in ``finally`` (access log, metrics).

    Runs on the request thread after ``butterfly_response_headers``.

    :param request: the :class:`kernel.request.Request`
    :param response: the final :class:`kernel.response.Response`
    :return: ``None``
    """


# --------------------------------------------------------------------------------------
# console: the shared navigation of every HTML page
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_console_links(register, kernel):
    """Add links to the navigation bar every HTML page shares, and to the console at ``/``.

    Called once per kernel, on the main thread, right after every route is registered
    (by butterfly-router's console, which draws the bar); the links are kept for the
    kernel's life. A handler app may define a module-level
    ``butterfly_console_links(register)`` in its ``__init__.py``, which the console calls too.

    :param register: ``register(title, path, *, admin=False, description="")``: ``title``
        is the link text, ``path`` the page's absolute path (a GET route), ``admin=True``
        shows the link to admins only (as :func:`kernel.defaults.caller_is_admin` decides),
        ``description`` one line for the console's list of pages. Registering a path twice
        is an error naming both plugins.
    :param kernel: the :class:`kernel.app.Kernel`
    :return: ``None``
    """
