"""The HTTP side of the command line: commands that talk to a running server.

``butterfly ruqi ...`` and ``butterfly wuxing ...`` act on a live instance through
its JSON API, so every write passes the same checks, admin policy and access log
as any other client. :class:`ApiClient` is what they share:

* the server is ``--url`` / ``$BUTTERFLY_URL``, else ``[server] host:port`` of the
  config (read without importing any plugin);
* ``--token`` / ``$BUTTERFLY_TOKEN`` is sent as ``Authorization: Bearer``, never
  printed, and never follows a redirect (redirects are refused);
* a 401 or 403 says how to get in (``butterfly auth add-token``, the admin role);
* exit codes: 1 the server refused (its stat and reason are printed), 3 the server
  could not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from kernel.cliargs import CommandError

#: Exit code when the server cannot be reached (as ``butterfly status``: not running).
EXIT_UNREACHABLE = 3
DEFAULT_TIMEOUT = 30.0
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
TOKEN_HINT = (
    "create an API token on the server's machine with `butterfly auth add-token USER` "
    "and pass it with --token TOKEN or BUTTERFLY_TOKEN=TOKEN"
)


def server_url(args: argparse.Namespace) -> str:
    """The base URL of the server: ``--url``/``$BUTTERFLY_URL``, else the config's address.

    :param args: the parsed command line (``url``, ``config``, ``set``)
    :return: e.g. ``http://127.0.0.1:8585``
    :raises ConfigError: when the config file cannot be read
    """
    if getattr(args, "url", None):
        return str(args.url).rstrip("/")
    from kernel.cli import parse_set_options
    from kernel.settings import Settings, read_config_file

    file_data, origin = read_config_file(getattr(args, "config", None))
    settings = Settings(file_data, None, parse_set_options(getattr(args, "set", None)), origin)
    host = str(settings.raw("server", "host", "127.0.0.1"))
    host = LOOPBACK.get(host, host)
    port = settings.raw("server", "port", 8585)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def shown_url(url: str) -> str:
    """``url`` with any password in it masked, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":********@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would resend ``Authorization`` to wherever they point."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


@dataclass
class Reply:
    """A decoded JSON reply."""

    status: int
    body: dict[str, Any]
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """``stat`` is ``OK``."""
        return self.body.get("stat") == "OK"


class ApiClient:
    """Calls a server's JSON API: reads are GET with a query string, writes POST JSON.

    :param url: the server's base URL
    :param token: bearer token, or ``None``
    :param verbose: print each request line and status on stderr (never the token)
    :param timeout: seconds per request
    """

    def __init__(self, url: str, token: str | None = None, *, verbose: bool = False, timeout: float = DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token or None
        self.verbose = verbose
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiClient:
        """The client the global options describe (``--url``, ``--token``, ``-v``)."""
        return cls(server_url(args), getattr(args, "token", None), verbose=bool(getattr(args, "verbose", False)))

    def request(self, path: str, params: dict[str, Any] | None = None, *, write: bool = False) -> Reply:
        """Send one request and decode the JSON reply, whatever its status.

        :param path: e.g. ``/ruqi/add_job``
        :param params: ``None`` values are left out
        :param write: POST a JSON body instead of GET with a query string
        :return: the reply
        :raises CommandError: unreachable (exit 3), or the reply is not JSON (exit 1)
        """
        params = {key: value for key, value in (params or {}).items() if value is not None}
        url = self.url + path
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if write:
            data = json.dumps(params).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if write else "GET")
        started = time.monotonic()
        if self.verbose:
            print(f"> {request.method} {shown_url(url)}", file=sys.stderr)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw, reply_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, raw, reply_headers = exc.code, exc.read(), exc.headers
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(f"cannot reach {shown_url(self.url)}: {reason}", EXIT_UNREACHABLE) from None
        if self.verbose:
            print(f"< {status} ({(time.monotonic() - started) * 1000:.0f} ms)", file=sys.stderr)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if 300 <= status < 400:
                raise CommandError(f"{shown_url(url)} redirects (HTTP {status}); give the final address with --url")
            raise CommandError(f"{shown_url(url)} did not answer JSON (HTTP {status}): {raw[:200]!r}")
        headers_seen = {name.lower(): value for name, value in (reply_headers or {}).items()}
        return Reply(status, body, headers_seen.get("x-reason", ""), headers_seen)

    def call(self, path: str, params: dict[str, Any] | None = None, *, write: bool = False) -> dict[str, Any]:
        """:meth:`request`, then the reply body when its ``stat`` is ``OK``.

        :raises CommandError: the server refused (exit 1, with a hint on 401/403),
            or see :meth:`request`
        """
        reply = self.request(path, params, write=write)
        if not reply.ok:
            raise CommandError(self.refusal(reply))
        return reply.body

    def refusal(self, reply: Reply) -> str:
        """One message for a refused request: stat, reason, bad params, and how to get in.

        :param reply: a reply whose ``stat`` is not ``OK``
        :return: the message
        """
        body = reply.body
        parts = [str(body.get("stat") or f"HTTP {reply.status}")]
        reason = body.get("reason") or reply.reason
        if reason and reason != parts[0]:
            parts.append(str(reason))
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            listed = "; ".join(f"{e.get('param')}: {e.get('reason')}" for e in errors if isinstance(e, dict))
            if listed and listed not in parts[-1]:
                parts.append(listed)
        message = ": ".join(parts)
        if reply.status == 401:
            if self.token:
                message += "\nthe token was refused (expired, revoked, or its user changed); " + TOKEN_HINT
            else:
                message += "\nthis needs a signed-in user: " + TOKEN_HINT
        elif reply.status == 403:
            message += (
                "\nadmin commands need a token of a user with the admin role "
                "(`butterfly auth set-roles USER admin`); without butterfly-auth, run them on the server's machine"
            )
        return message
