"""The kernel object: plugin manager, settings, route table and the request path."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pluggy

from kernel import logs
from kernel.errors import ConfigError, Forbidden, HTTPError, MethodNotAllowed, NotFound, PluginLoadError, ServerError
from kernel.fasthooks import RequestHooks
from kernel.plugins import PluginInfo, disabled_plugins, extra_plugin_modules, make_plugin_manager, plugin_name_of
from kernel.request import Request
from kernel.response import Response, status_line, wsgi_header_value
from kernel.routes import RouteTable
from kernel.settings import Settings, read_config_file

FATAL = (KeyboardInterrupt, SystemExit, MemoryError)
#: The standard methods a route registered without ``methods`` is documented with
#: (it accepts any method; OpenAPI 3.0 can name only these).
ANY_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})


class Kernel:
    """A configured Butterfly application; also the WSGI callable.

    Build one with :meth:`create`. Attributes: ``settings`` (resolved),
    ``pm`` (the :class:`pluggy.PluginManager`), ``hook`` (``pm.hook``), ``routes``
    (:class:`~kernel.routes.RouteTable`), ``plugins`` (:class:`PluginInfo` list).
    """

    def __init__(self, settings: Settings, pm, plugins: list[PluginInfo]) -> None:
        self.settings = settings
        self.pm = pm
        self.hook = pm.hook
        self.plugins = plugins
        self.routes = RouteTable()
        self.request_hooks = RequestHooks(pm)
        self.max_body: int = 0
        self.data_dir = Path("data")
        self.log_dir = Path("logs")
        #: per-plugin state, keyed by plugin name (``kernel.extensions["store"]``)
        self.extensions: dict[str, Any] = {}
        #: counts identical tracebacks so a flood of one error stays a few log lines
        self.error_limiter = logs.RepeatLimiter(logs.report_suppressed)
        self.started = False
        self._lifecycle_lock = threading.Lock()
        self._stopped = False

    # -- construction ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        config_path: str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        plugins: Iterable[Any] = (),
        load_entrypoints: bool = True,
    ) -> Kernel:
        """Read config, load plugins, resolve settings, configure, register routes.

        :param config_path: a ``butterfly.toml``; default: the one in the working
            directory, if any
        :param config: the config as a dict instead of a file (tests)
        :param overrides: ``{"section.key": value}`` (CLI flags, tests)
        :param environ: the environment (default ``os.environ``)
        :param plugins: extra plugin modules/objects (``(obj, name)`` to name one)
        :param load_entrypoints: load installed ``butterfly.plugins`` entry points
        :raises ConfigError: bad config; :raises PluginLoadError: bad plugin
        """
        if config is not None:
            file_data, origin = dict(config), "the given config"
        else:
            file_data, origin = read_config_file(config_path)
        environ = dict(os.environ if environ is None else environ)
        settings = Settings(file_data, environ, overrides, origin)
        try:
            disabled = disabled_plugins(environ, settings.raw("server", "disable_plugins", []))
        except ValueError as exc:
            raise ConfigError(f"bad value for [server] disable_plugins: {exc}") from None
        settings.ignored_sections = set(disabled)
        pm, infos = make_plugin_manager(
            disabled=disabled,
            load_entrypoints=load_entrypoints,
            extra_plugins=plugins,
            plugin_modules=extra_plugin_modules(environ),
        )
        kernel = cls(settings, pm, infos)
        kernel._configure()
        return kernel

    def _configure(self) -> None:
        hook = self.hook
        hook.butterfly_add_hookspecs.call_historic(kwargs={"pluginmanager": self.pm})
        hook.butterfly_add_settings.call_historic(kwargs={"settings": self.settings})
        self.settings.resolve()
        server = self.settings.section("server")
        self.max_body = server.max_body
        self.data_dir = Path(server.data_dir).absolute()
        self.log_dir = Path(server.log_dir).absolute()
        hook.butterfly_configure.call_historic(kwargs={"kernel": self})
        # NOTE: call each implementation ourselves so `register` knows its plugin.
        for impl in reversed(hook.butterfly_register_routes.get_hookimpls()):
            args = {"register": partial(self.routes.register, plugin=impl.plugin_name), "kernel": self}
            impl.function(*[args[name] for name in impl.argnames])
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            # NOTE: a misspelled hook name must stop start-up with a clear message, not a traceback.
            name = plugin_name_of(self.pm, exc.plugin)
            raise PluginLoadError(f'plugin "{name}": {exc}', plugin_name=name) from None
        self.refresh_hooks()

    def refresh_hooks(self) -> RequestHooks:
        """Re-resolve the per-request hooks (also done by itself when a plugin is registered late)."""
        self.request_hooks = RequestHooks(self.pm)
        return self.request_hooks

    # -- lifecycle --------------------------------------------------------------------

    def ensure_data_dir(self) -> Path:
        """Create ``[server] data_dir`` if needed and return it.

        Created with mode 0700: it holds the database, the JWT secret and the initial
        admin password. An existing directory keeps its mode.
        """
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.data_dir

    def startup(self) -> None:
        """Run ``butterfly_startup`` once (start background threads)."""
        with self._lifecycle_lock:
            if self.started:
                return
            self.started = True
        self.hook.butterfly_startup(kernel=self)
        self.refresh_hooks()  # plugins may register stateful parts at start-up

    def shutdown(self) -> None:
        """Run ``butterfly_shutdown`` once, if the kernel was started."""
        with self._lifecycle_lock:
            if not self.started or self._stopped:
                return
            self._stopped = True
        try:
            self.hook.butterfly_shutdown(kernel=self)
        finally:
            self.error_limiter.flush()

    # -- the request path -------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response) -> Iterable[bytes]:
        """WSGI entry point.

        Each request runs in its own copy of the calling thread's context: whatever a
        handler or plugin binds in a context variable (structlog's log context
        included) ends with the request, and never follows a reused server thread to
        the next, unrelated request.
        """
        # PERF: a context copy is ~0.05 µs; clearing the log context after each request
        # (what the trace plugin did) walked every variable of the thread, ~1.3 µs.
        return contextvars.copy_context().run(self._respond, environ, start_response)

    def _respond(self, environ: dict[str, Any], start_response) -> Iterable[bytes]:
        response = self.handle(Request(environ, self))
        headers = response.headers
        try:
            # PERF: one join and two C-level checks for all values; a non-str value
            # (TypeError) or an odd character sends every header through the check below.
            joined = "".join([value for _, value in headers])
            clean = joined.isascii() and joined.isprintable()
        except TypeError:
            clean = False
        if not clean:
            for index, (name, value) in enumerate(headers):
                if type(value) is not str or not (value.isascii() and value.isprintable()):
                    headers[index] = (name, wsgi_header_value(name, value))
        start_response(status_line(response.status), headers)
        return response.iter_body()

    def handle(self, request: Request, *, encode: bool = True) -> Response:
        """Run one request through the hooks; never raises except fatal errors.

        start → route → authorize → protocol (handler) → headers → finished.

        :param encode: encode a JSON response's ``data`` into its body (HTTP);
            in-process calls keep ``response.data``
        """
        request_hooks = self.request_hooks
        if request_hooks.stale:
            request_hooks = self.refresh_hooks()
        # PERF: the route is matched first so only the implementations that apply to it
        # run (kernel.for_routes); a request_started hook that rewrites the path is matched again.
        path = request.path
        route = self.routes.lookup(path)
        hooks = request_hooks.for_route(route)
        response: Response | None = None
        try:
            try:
                hooks.request_started(request)
                if request.path != path:
                    route = self.routes.lookup(request.path)
                    hooks = request_hooks.for_route(route)
                if route is None:
                    raise NotFound(f"no route for {request.path}")
                request.route = route
                if route.methods is not None and request.source == "http" and request.method not in route.methods:
                    raise MethodNotAllowed(
                        f"{request.method} not allowed", headers=[("Allow", ", ".join(sorted(route.methods)))]
                    )
                verdict = hooks.authorize(request, route)
                if verdict is not None and verdict is not True:
                    raise verdict if isinstance(verdict, HTTPError) else Forbidden("denied")
                response = route.protocol(request, route)
            except HTTPError as exc:
                response = self.error_response(request, exc)
            except FATAL:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure is a 500, reported by server_error
                response = self.server_error(request, exc)
            try:
                hooks.response_headers(request, response)
                if encode:
                    response.finalize()
            except FATAL:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing header hook is a 500 too
                response = self.server_error(request, exc)
                if encode:
                    response.finalize()
            if request.stat is None:
                request.stat = response.stat or str(response.status)
        finally:
            if response is None:
                response = ServerError("fatal error").to_response()
            hooks.request_finished(request, response)
        return response

    def error_response(self, request: Request, exc: HTTPError) -> Response:
        """Render a deliberate :class:`HTTPError` and record it on the request."""
        request.stat = exc.stat
        request.error = exc.reason
        return exc.to_response()

    def server_error(self, request: Request, exc: BaseException) -> Response:
        """Report an unexpected exception: logged with its traceback, the client gets a bare 500.

        ``butterfly_handle_error`` implementations run first; unless one of them set
        ``request.error_reported``, the kernel logs the traceback itself
        (:func:`kernel.logs.log_exception`, rate-limited per signature), so an
        exception is never lost when no plugin logs it.
        """
        request.stat = ServerError.stat
        request.error = f"{type(exc).__name__}: {exc}"[:500]
        try:
            response = self.request_hooks.for_route(request.route).handle_error(request, exc)
        except FATAL:
            raise
        except Exception as hook_exc:  # noqa: BLE001 - a broken error hook must not break the reply
            response = None
            logs.log_exception("butterfly_handle_error failed", hook_exc, limiter=self.error_limiter)
        if not request.error_reported:
            try:
                logs.log_exception(
                    "handler exception", exc, limiter=self.error_limiter, method=request.method, path=request.path
                )
            except Exception:  # noqa: BLE001 - a failing log must not fail the reply
                pass
        return response if response is not None else ServerError("server exception").to_response()

    # -- in-process calls -----------------------------------------------------------------

    def call(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        source: str = "cli",
        parent_reqid: str | None = None,
        user: str | None = None,
        reqid: str | None = None,
    ) -> Response:
        """Run a route in-process through the same hooks as HTTP (reqid, access log).

        :param path: ``/app/handler``
        :param params: the handler's parameters
        :param source: ``mq``, ``ruqi`` or ``cli``; logged as the method
            (``QUEUE``, ``RUQI``, ``CLI``)
        :param parent_reqid: the reqid of the request that caused this call
        :param user: the identity the call runs as (trusted: in-process only)
        :param reqid: use this request id (e.g. the MQ message id) instead of a new one
        :return: the :class:`Response`; JSON replies keep their ``data`` dict
        """
        request = Request.for_call(self, path, dict(params or {}), source=source, parent_reqid=parent_reqid, user=user)
        request.reqid = reqid
        return self.handle(request, encode=False)

    def __repr__(self) -> str:
        return f"<Kernel routes={len(self.routes)} plugins={[p.name for p in self.plugins if p.enabled]}>"
