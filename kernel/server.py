"""Serve a kernel with waitress, and drain gracefully on stop.

``waitress.create_server`` (not ``serve``, which configures logging) builds the
server; :class:`Server` runs its event loop itself so a stop request can close the
listening socket, let in-flight requests and ``butterfly_shutdown`` (MQ drain,
scheduler stop) finish, and only then close the connections.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING

import structlog
from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel

from kernel.transport import fit_connection_limit, use_json_errors

if TYPE_CHECKING:
    from kernel.app import Kernel

log = structlog.get_logger("butterfly.server")


class Server:
    """A waitress server bound to ``host:port`` serving ``kernel``.

    :param kernel: the configured kernel
    :param host: default ``[server] host``
    :param port: default ``[server] port``; ``0`` picks a free port
    :param sockets: listen on these bound sockets instead of ``host``/``port``
        (``run --workers``: each worker's own ``SO_REUSEPORT`` socket, see
        :func:`kernel.workers.bind_shared_port`)
    """

    def __init__(
        self,
        kernel: Kernel,
        host: str | None = None,
        port: int | None = None,
        *,
        sockets: list[socket.socket] | None = None,
    ) -> None:
        server = kernel.settings.section("server")
        self.kernel = kernel
        self.shutdown_timeout = server.shutdown_timeout
        self._stop = threading.Event()
        self.stopped = threading.Event()
        # NOTE: waitress refuses host/port together with sockets (its public `sockets` adjustment).
        where = (
            {"sockets": sockets}
            if sockets
            else {"host": host if host is not None else server.host, "port": port if port is not None else server.port}
        )
        # PERF: ``[server] send_buffer`` is waitress's ``send_bytes``. At waitress's default (1) a
        # worker sends the status line and headers with one send(2), then the body with
        # another: two TCP segments, and the worker gives up the GIL twice in the middle of
        # a request. Held until the handler returns, a small reply leaves in one send(2)
        # from the event loop: about a quarter less server CPU per request (bench/README.md).
        # NOTE: waitress marks send_bytes deprecated (its default became 1 in 1.3) but
        # still documents and honours it; the warning would only repeat that.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="send_bytes", category=DeprecationWarning)
            self._waitress = create_server(
                kernel,
                **where,
                threads=server.threads,
                # NOTE: waitress refuses a body >= its limit; ours is "past max_body".
                max_request_body_size=kernel.max_body + 1,
                ident=server.ident,
                connection_limit=fit_connection_limit(server.connection_limit),
                channel_timeout=server.channel_timeout,
                # NOTE: proxy headers are the trace plugin's business (trusted proxies);
                # waitress must not rewrite them behind our back.
                clear_untrusted_proxy_headers=False,
                send_bytes=server.send_buffer,
            )
        # NOTE: waitress's own 400/413/431/501 replies become the JSON envelope too; the
        # 413 for a Content-Length over max_body is decided from the headers alone.
        use_json_errors(self._waitress)

    @property
    def host(self) -> str:
        """The address actually bound."""
        return self._waitress.effective_host

    @property
    def port(self) -> int:
        """The port actually bound (useful with ``port=0``)."""
        return int(self._waitress.effective_port)

    @property
    def url(self) -> str:
        """``http://host:port``."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}"

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT request a graceful stop (main thread only)."""

        def handler(signum, frame):
            log.info("signal received, draining", signal=signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def stop(self) -> None:
        """Request a graceful stop; returns at once (see :attr:`stopped`)."""
        self._stop.set()

    def run(self) -> None:
        """Start the kernel's background work and serve until stopped and drained."""
        waitress = self._waitress
        socket_map = waitress._map
        self.kernel.startup()
        log.info("serving", url=self.url, threads=waitress.adj.threads, routes=len(self.kernel.routes))
        deadline = None
        shutdown_thread = None
        try:
            while True:
                wasyncore.loop(timeout=0.2, map=socket_map, use_poll=True, count=1)
                if not self._stop.is_set():
                    continue
                if deadline is None:
                    deadline = time.monotonic() + self.shutdown_timeout
                    # stop accepting: drop the listening socket, keep the connections
                    wasyncore.dispatcher.close(waitress)
                    shutdown_thread = threading.Thread(
                        target=self._shutdown_plugins, name="butterfly-shutdown", daemon=True
                    )
                    shutdown_thread.start()
                if (
                    self._idle() and shutdown_thread is not None and not shutdown_thread.is_alive()
                ) or time.monotonic() > deadline:
                    if time.monotonic() > deadline:
                        log.warning("shutdown timeout reached, closing anyway", timeout=self.shutdown_timeout)
                    break
        finally:
            waitress.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
            wasyncore.close_all(socket_map)
            log.info("stopped")
            self.stopped.set()

    def _shutdown_plugins(self) -> None:
        try:
            self.kernel.shutdown()
        except Exception:
            log.exception("butterfly_shutdown failed")

    def _idle(self) -> bool:
        dispatcher = self._waitress.task_dispatcher
        if dispatcher.active_count or dispatcher.queue:
            return False
        return not any(
            isinstance(ch, HTTPChannel) and (ch.requests or ch.total_outbufs_len)
            for ch in list(self._waitress._map.values())
        )


def serve(kernel: Kernel, host: str | None = None, port: int | None = None) -> None:
    """Serve ``kernel`` in the foreground until SIGTERM/SIGINT, then drain."""
    server = Server(kernel, host, port)
    server.install_signal_handlers()
    server.run()
