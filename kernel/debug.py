"""``butterfly call``: run one route in-process, optionally traced line by line.

The successor of the original ``test_handler.py``: the handler runs through the
same hooks as an HTTP request (``kernel.call(..., source="cli")``), so parameter
checking, the request id and the access log all apply. ``--trace`` prints every
executed line of the handler and of the functions it calls (pysnooper, depth 2)
on stderr, so the reply on stdout stays clean JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from kernel.cliargs import UsageError
from kernel.cliparams import parse_params
from kernel.response import json_default
from kernel.routes import Route

if TYPE_CHECKING:
    from kernel.app import Kernel

T = TypeVar("T")
#: How deep ``--trace`` follows calls: the handler (1) and what it calls (2).
TRACE_DEPTH = 2


# -- describing routes ---------------------------------------------------------------------


def route_parameters(route: Route) -> list[inspect.Parameter] | None:
    """The parameters a caller passes to ``route``, without the leading request.

    Uses ``route.meta["signature"]`` (set by the router) when it is an
    :class:`inspect.Signature`, else :func:`inspect.signature` of the endpoint.
    Every protocol passes the request first, so the first positional parameter
    is dropped.

    :param route: the route
    :return: the parameters, or ``None`` when no signature can be read
    """
    signature = route.meta.get("signature")
    if not isinstance(signature, inspect.Signature):
        try:
            signature = inspect.signature(route.endpoint)
        except (TypeError, ValueError):
            return None
    params = list(signature.parameters.values())
    if params and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return params


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def format_parameter(param: inspect.Parameter) -> str:
    """One parameter as ``name:type=default`` (``*args`` / ``**kwargs`` as written).

    :param param: the parameter
    :return: the text used in usage lines and ``butterfly routes``
    """
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        return f"*{param.name}"
    if param.kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{param.name}"
    text = param.name
    if param.annotation is not inspect.Parameter.empty:
        text += f":{_annotation_text(param.annotation)}"
    if param.default is not inspect.Parameter.empty:
        default = param.default
        text += f"={default if isinstance(default, str) else repr(default)}"
    return text


def route_signature(route: Route) -> str:
    """The parameter list of ``route`` (``a:int b:str=x``).

    A protocol's own description wins: ``meta["signature"]`` / ``meta["usage"]``
    strings, or ``meta["binder"].usage()`` (the router); else the endpoint's
    signature.

    :param route: the route
    :return: space-separated parameters, ``""`` for none, ``?`` when unknown
    """
    given = route.meta.get("signature") or route.meta.get("usage")
    if isinstance(given, str):
        return given
    binder: Any = route.meta.get("binder")  # the router's parameter binder knows best
    if callable(getattr(binder, "usage", None)):
        return str(binder.usage())
    params = route_parameters(route)
    if params is None:
        return "?"
    return " ".join(format_parameter(param) for param in params)


def usage_line(route: Route) -> str:
    """``/app/handler a:int b:str=x``: how to call ``route`` from the CLI.

    :param route: the route
    :return: the usage line
    """
    signature = route_signature(route)
    return f"{route.path} {signature}".rstrip()


# -- tracing -----------------------------------------------------------------------------


def trace_targets(route: Route) -> list[Any]:
    """The functions ``--trace`` follows for ``route``: the endpoint and what it wraps.

    :param route: the route
    :return: plain functions (their code objects are what pysnooper matches)
    """
    endpoint = route.endpoint
    candidates = [endpoint, inspect.unwrap(endpoint)]
    if not hasattr(endpoint, "__code__"):
        candidates.append(type(endpoint).__call__)  # a callable object
    targets = []
    for func in candidates:
        func = getattr(func, "__func__", func)  # bound method -> function
        if hasattr(func, "__code__") and func not in targets:
            targets.append(func)
    return targets


def call_traced(route: Route, call: Callable[[], T], *, color: bool) -> T:
    """Run ``call()`` while pysnooper traces ``route``'s handler and its direct callees.

    pysnooper matches frames by code object, so this works however the route's
    protocol reaches the handler (the router calls a reference it captured at
    registration, not ``route.endpoint``). The trace goes to stderr.

    :param route: the route whose handler to trace
    :param call: runs the request (``lambda: kernel.call(...)``)
    :param color: colourise the trace (stderr is a terminal)
    :return: what ``call`` returns
    """
    import pysnooper  # NOTE: imported only when tracing; it is a debugging aid.

    tracer = pysnooper.snoop(depth=TRACE_DEPTH, color=color)
    for func in trace_targets(route):
        tracer(func)  # NOTE: decorating registers the code object; the wrapper is not needed
    traced_call = tracer(call)
    # NOTE: the trampoline itself is not of interest: untarget it so only the handler
    # and its callees are printed, not the kernel's request path.
    tracer.target_codes.discard(call.__code__)
    return traced_call()


# -- the command ---------------------------------------------------------------------------


def print_usage_lines(kernel: Kernel, out=None) -> None:
    """Print the usage line of every route, sorted by path.

    :param kernel: the configured kernel
    :param out: the stream (default stdout)
    :return: ``None``
    """
    out = out or sys.stdout
    for route in kernel.routes:
        print(f"butterfly call {usage_line(route)}", file=out)


def print_reply(response, out=None, err=None) -> bool:
    """Print a reply: JSON pretty on stdout; other bodies as text (binary summarised).

    :param response: the :class:`~kernel.response.Response` of ``kernel.call``
    :param out: where the body goes (default stdout)
    :param err: where status, headers and notes go (default stderr)
    :return: ``True`` when the call succeeded (``stat`` OK, or a non-JSON 2xx/3xx)
    """
    out, err = out or sys.stdout, err or sys.stderr
    if response.data is not None:
        print(json.dumps(response.data, indent=2, ensure_ascii=False, default=json_default), file=out)
        return isinstance(response.data, dict) and response.data.get("stat") == "OK"
    body = response.body
    try:
        payload = body if isinstance(body, bytes | bytearray) else b"".join(body)
    finally:
        close = getattr(body, "close", None)  # streamed files close themselves (WSGI)
        if close is not None:
            close()
    print(f"HTTP {response.status}", file=err)
    for name, value in response.headers:
        print(f"{name}: {value}", file=err)
    try:
        print(bytes(payload).decode("utf-8"), file=out)
    except UnicodeDecodeError:
        print(f"<binary body, {len(payload)} bytes>", file=err)
    return response.status < 400


def cmd_call(args: argparse.Namespace) -> int:
    """``butterfly call /app/handler [value ...] [k=v ...] [--trace]``: run one route in-process.

    Bare values bind to the handler's parameters in signature order (as the
    original ``test_handler.py``); ``k=v`` and ``k:=json`` name them
    (:func:`kernel.cliparams.parse_params`).

    :param args: the parsed arguments (``path``, ``params``, ``json_params``, ``trace``)
    :return: 0 when the reply's stat is OK, 1 otherwise
    :raises UsageError: (exit 2) for unusable arguments
    """
    from kernel.cli import load_kernel

    kernel = load_kernel(args)
    if not args.path:
        print_usage_lines(kernel)
        return 0
    route = kernel.routes.lookup(args.path)
    # NOTE: an unknown path is a 404 whatever the parameters; only a known route binds them.
    try:
        params = (
            parse_params(args.params, json_object=args.json_params, signature=route_parameters(route), target=args.path)
            if route is not None
            else {}
        )
    except UsageError as exc:
        raise UsageError(
            str(exc),
            usage=f"usage: butterfly call {usage_line(route) if route is not None else args.path}",
            prog="butterfly call",
        ) from None
    if args.trace and route is not None:
        response = call_traced(route, lambda: kernel.call(args.path, params, source="cli"), color=sys.stderr.isatty())
    else:
        response = kernel.call(args.path, params, source="cli")
    ok = print_reply(response)
    if route is not None and not ok and response.status == 400:
        print(f"usage: butterfly call {usage_line(route)}", file=sys.stderr)
    return 0 if ok else 1


def add_call_command(subparsers) -> None:
    """Register ``butterfly call`` on ``subparsers``.

    :param subparsers: the ``butterfly`` sub-parsers action
    :return: ``None``
    """
    call = subparsers.add_parser(
        "call",
        help="run a handler in-process and print its reply",
        description="Run one route in-process through the same hooks as HTTP (source CLI) and print "
        "the reply. Bare values bind to the handler's parameters in signature order; k=v is a "
        "string (the router converts it by type hints); k:=json passes a JSON value (numbers, "
        "lists, objects, true, null). "
        "Exit 0 when stat is OK, 1 otherwise. Without a path: the usage line of every route.",
        epilog="examples: butterfly call /demo_api/hello hi   |   butterfly call /demo_api/hello str_info=hi   |   "
        "butterfly call /shop/add items:='[1,2]' --trace",
    )
    call.add_argument("path", nargs="?", help="route path, e.g. /app/handler")
    call.add_argument(
        "params",
        nargs="*",
        metavar="VALUE|k=v|k:=json",
        help="parameters: bare values bind in signature order; k=v is a string, k:=json a JSON value",
    )
    call.add_argument("--json-params", metavar="JSON", help="parameters as one JSON object (k=v wins)")
    call.add_argument(
        "--trace",
        action="store_true",
        help="print a line-by-line trace of the handler and its callees on stderr (pysnooper)",
    )
    call.set_defaults(run=cmd_call, leftovers="params")
