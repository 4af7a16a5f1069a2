"""The ``/auth/*`` routes: login, logout, me, verify, API tokens, users.

Endpoints take the request and return a :class:`kernel.Response`; they are marked
with the same decorators user handlers use, so the policy treats them alike.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from butterfly_auth import api_tokens, csrf, sessions, users
from butterfly_auth.config import state_of
from butterfly_auth.decorators import login_required
from butterfly_auth.identity import identify
from butterfly_auth.pages import LOGIN_PATH, accepts_html, location_of, render_page, safe_next
from butterfly_auth.policy import unauthenticated
from butterfly_router.openapi import json_body, query_parameters
from butterfly_router.openapi_schemas import REPLY_REF
from kernel import BadRequest, Forbidden, Response, TooManyRequests, Unauthorized
from kernel.request import FORM_TYPE

if TYPE_CHECKING:
    from kernel import Request

GENERIC_FAILURE = "invalid user name or password"
#: The longest API token lifetime ``POST /auth/tokens`` accepts (ten years).
MAX_TOKEN_SECONDS = 10 * 366 * 86400
#: Ids of the auth tables are 32-bit (pony's default integer primary key).
MAX_ID = 2**31 - 1


def name_fingerprint(kernel, name: str) -> str:
    """A short keyed digest of a submitted user name, for logs (``#3f9a0c1b2d4e``).

    Equal names give equal fingerprints, so repeated tries show up, but the name
    itself (often a password typed into the wrong field) is never written down, and
    without the server's secret a guess cannot be checked against it.
    """
    digest = hmac.new(state_of(kernel).secret.encode(), b"login-name:" + name.encode("utf-8", "replace"), "sha256")
    return "#" + digest.hexdigest()[:12]


def limit_key(kernel, name: str) -> str:
    """The rate-limit key of a submitted user name (a fingerprint when it cannot be a user name)."""
    if users.USER_NAME.match(name):
        return "user:" + name.lower()
    # NOTE: a megabyte of "name" must not become a megabyte of limiter key.
    return "user:" + name_fingerprint(kernel, name)


def note_failed_login(request: Request, name: str) -> None:
    """Record a failed login for the access log without writing down an unknown name.

    A name that belongs to a user is logged as is; any other is replaced, in the
    ``res`` note and in the logged parameters, by :func:`name_fingerprint`.
    """
    shown = name[:64] if name and users.get_user(request.kernel, name) is not None else None
    if shown is None:
        shown = name_fingerprint(request.kernel, name) if name else "-"
        params = request.parsed_params()
        if params is not None and "username" in params:
            # NOTE: the access log writes the parsed parameters when the request ends.
            params["username"] = shown
    request.res.append(f"login failed: {shown}")


def _json(data: dict[str, Any], status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    response = Response.json({"stat": "OK", **data}, status, headers)
    response.set_header("Cache-Control", "no-store")
    return response


def _text_param(params: dict[str, Any], name: str, errors: list[dict[str, str]], *, required: bool = True) -> str:
    value = params.get(name)
    if value is None or value == "":
        if required:
            errors.append({"param": name, "reason": "required"})
        return ""
    if not isinstance(value, str):
        errors.append({"param": name, "reason": "must be a string"})
        return ""
    return value


def _int_param(params: dict[str, Any], name: str, low: int = 1, high: int = MAX_ID) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool) or (isinstance(value, str) and len(value) > 20):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise BadRequest(
            f"{name} must be an integer",
            data={"errors": [{"param": name, "reason": f"expected an integer, got {shown}"}]},
        ) from None
    if not low <= number <= high:
        raise BadRequest(
            f"{name} out of range",
            data={"errors": [{"param": name, "reason": f"must be between {low} and {high}"}]},
        )
    return number


def _cookie(name: str, value: str, max_age: int, *, http_only: bool, request: Request) -> tuple[str, str]:
    config = state_of(request.kernel).config
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", f"SameSite={config.cookie_samesite}"]
    if http_only:
        parts.append("HttpOnly")
    if config.cookie_secure:
        parts.append("Secure")
    return "Set-Cookie", "; ".join(parts)


def session_cookies(request: Request, session: sessions.Session | None) -> list[tuple[str, str]]:
    """``Set-Cookie`` headers that store ``session`` (or clear both cookies when ``None``)."""
    config = state_of(request.kernel).config
    if session is None:
        return [
            _cookie(config.cookie_name, "", 0, http_only=True, request=request),
            _cookie(config.csrf_cookie_name, "", 0, http_only=False, request=request),
        ]
    return [
        _cookie(config.cookie_name, session.token, config.token_ttl, http_only=True, request=request),
        _cookie(config.csrf_cookie_name, session.csrf_token, config.token_ttl, http_only=False, request=request),
    ]


def caller(request: Request):
    """The authenticated caller, or raise 401 (for routes reached without the policy's check)."""
    identity = identify(request)
    if identity is None:
        raise unauthenticated(request, redirect=False)
    return identity


# -- login --------------------------------------------------------------------------


def login(request: Request) -> Response:
    """``GET /auth/login``: the login page; ``POST``: check the password, start a session."""
    if request.method != "POST":
        identity = identify(request)
        notice = "You are signed out." if request.query.get("logged_out") and identity is None else None
        return render_page(
            request,
            "login.html",
            title="Sign in",
            user=identity.name if identity else None,
            notice=notice,
            next=safe_next(request.query.get("next")),
            error=None,
            username="",
        )
    browser = request.content_type == FORM_TYPE and accepts_html(request)
    # NOTE: refuse login CSRF (signing a victim into the attacker's account).
    origin = request.header("Origin")
    if origin and origin != "null" and not csrf.source_allowed(request, origin):
        raise Forbidden("cross-site login refused (Origin)")
    params = request.params
    errors: list[dict[str, str]] = []
    name = _text_param(params, "username", errors)
    password = _text_param(params, "password", errors)
    next_path = safe_next(params.get("next"))
    if errors and not browser:
        raise BadRequest("username and password are required", data={"errors": errors})
    kernel = request.kernel
    limiter = state_of(kernel).limiter
    keys = (limit_key(kernel, name), f"ip:{request.client_ip}")
    # NOTE: reserve the attempt before the slow hash; see butterfly_auth.ratelimit.
    reservation, wait = limiter.reserve(*keys)
    if reservation is None:
        if browser:
            return render_page(
                request,
                "login.html",
                429,
                [("Retry-After", str(wait))],
                title="Sign in",
                user=None,
                next=next_path,
                username=name,
                error=f"Too many failed logins. Try again in {wait} s.",
            )
        raise TooManyRequests("too many failed logins", headers=[("Retry-After", str(wait))])
    user = users.verify_credentials(kernel, name, password) if not errors else None
    if user is None:
        note_failed_login(request, name)  # the reservation stays counted as the failure
        if browser:
            return render_page(
                request,
                "login.html",
                401,
                title="Sign in",
                user=None,
                notice=None,
                next=next_path,
                username=name,
                error="Invalid user name or password.",
            )
        raise Unauthorized(GENERIC_FAILURE)
    limiter.succeeded(reservation, forget=(keys[0],))
    session = sessions.issue(kernel, user)
    request.user = user.name
    cookies = session_cookies(request, session)
    if browser:
        return Response(303, [("Location", location_of(next_path)), ("Cache-Control", "no-store"), *cookies])
    return _json(
        {
            "token": session.token,
            "token_type": "Bearer",
            "expires_in": state_of(request.kernel).config.token_ttl,
            "expires_at": session.expires_at,
            "user": user.name,
            "roles": list(user.roles),
            "csrf_token": session.csrf_token,
        },
        headers=cookies,
    )


# -- logout, me, verify ---------------------------------------------------------------


def logout(request: Request) -> Response:
    """``POST /auth/logout``: revoke the session and clear the cookies; ``GET``: a confirm page."""
    identity = identify(request)
    if request.method != "POST":
        if accepts_html(request):
            return render_page(request, "logout.html", title="Sign out", user=identity.name if identity else None)
        return _json({"user": identity.name if identity else None, "hint": "POST to log out"})
    ended = False
    if identity is not None and identity.kind == "session" and identity.claims is not None:
        sessions.revoke(request.kernel, identity.claims)
        ended = True
    cookies = session_cookies(request, None)
    if request.content_type == FORM_TYPE and accepts_html(request):
        return Response(303, [("Location", LOGIN_PATH + "?logged_out=1"), ("Cache-Control", "no-store"), *cookies])
    return _json({"logged_out": ended}, headers=cookies)


@login_required
def me(request: Request) -> Response:
    """``GET /auth/me``: who the caller is."""
    identity = caller(request)
    claims = identity.claims or {}
    return _json(
        {
            "user": identity.name,
            "roles": list(identity.user.roles),
            "auth": identity.kind,
            "via": identity.via,
            "expires_at": claims.get("exp"),
        }
    )


def verify(request: Request) -> Response:
    """``/auth/verify`` for nginx ``auth_request``: 200 with ``X-Auth-User``, else 401/403.

    ``?role=NAME`` also requires that role. nginx subrequests are GETs, so the
    CSRF check uses ``X-Original-Method`` when the proxy sends it.
    """
    identity = identify(request)
    if identity is None:
        raise unauthenticated(request, redirect=False)
    original_method = request.header("X-Original-Method")
    if original_method:
        problem = csrf.check(request, identity, original_method)
        if problem:
            raise Forbidden(problem)
    wanted = request.query.get("role")
    if wanted and (not isinstance(wanted, str) or not identity.user.has_role(wanted)):
        raise Forbidden(f"user {identity.name} lacks the role {wanted}")
    headers = [("X-Auth-User", identity.name), ("X-Auth-Roles", ",".join(identity.user.roles))]
    return _json({"user": identity.name, "roles": list(identity.user.roles)}, headers=headers)


# -- API tokens and users ----------------------------------------------------------------


def _token_dict(info: api_tokens.TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "user": info.user,
        "prefix": info.prefix,
        "label": info.label,
        "created_at": info.created_at,
        "expires_at": info.expires_at,
        "revoked_at": info.revoked_at,
        "last_used_at": info.last_used_at,
        "usable": info.usable,
    }


@login_required
def tokens(request: Request) -> Response:
    """``GET /auth/tokens``: the caller's API tokens; ``POST`` (label, expires_in): a new one, shown once."""
    identity = caller(request)
    if request.method != "POST":
        return _json({"tokens": [_token_dict(t) for t in api_tokens.list_tokens(request.kernel, identity.name)]})
    params = request.params
    errors: list[dict[str, str]] = []
    label = _text_param(params, "label", errors, required=False)
    if errors:
        raise BadRequest("bad label", data={"errors": errors})
    try:
        token, info = api_tokens.create_token(
            request.kernel,
            identity.name,
            label=label,
            expires_in=_int_param(params, "expires_in", 1, MAX_TOKEN_SECONDS),
        )
    except users.AuthError as exc:
        raise users.http_error(exc) from None
    return _json({"token": token, **_token_dict(info)})


@login_required
def revoke_token(request: Request) -> Response:
    """``POST /auth/tokens/revoke`` (id): revoke one of the caller's tokens (admins: anyone's)."""
    identity = caller(request)
    token_id = _int_param(request.params, "id")
    if token_id is None:
        raise BadRequest("id is required", data={"errors": [{"param": "id", "reason": "required"}]})
    owner = None if identity.user.has_role(users.ADMIN_ROLE) else identity.name
    try:
        info = api_tokens.revoke_token(request.kernel, token_id, owner=owner)
    except users.AuthError as exc:
        raise users.http_error(exc) from None
    return _json(_token_dict(info))


def list_users(request: Request) -> Response:
    """``GET /auth/users`` (admin): every user with roles."""
    return _json(
        {
            "users": [
                {"name": u.name, "roles": list(u.roles), "active": u.active, "created_at": u.created_at}
                for u in users.list_users(request.kernel)
            ]
        }
    )


_TEXT = {"type": "string"}
_GIVEN = {"type": "string", "minLength": 1}
_JSON_REPLY = {"application/json": {"schema": REPLY_REF}}
_PAGE = {"text/html": {"schema": {"type": "string"}}}
_LOGOUT_PAGE = {
    "responses": {
        "200": {
            "description": "a confirmation page for browsers, else who would be signed out",
            "content": {**_PAGE, **_JSON_REPLY},
        }
    }
}
#: How the routes' parameters and replies are shown in the OpenAPI document (they read their parameters themselves).
OPENAPI: dict[str, dict[str, Any]] = {
    "/auth/login": {
        "get": {
            **query_parameters(next=_TEXT),
            "responses": {"200": {"description": "the sign-in page", "content": _PAGE}},
        },
        "head": query_parameters(next=_TEXT),
        "post": {
            **json_body(required=["username", "password"], username=_GIVEN, password=_GIVEN, next=_TEXT),
            "description": "A form post from a browser (``application/x-www-form-urlencoded``) is answered with "
            "a 303 to ``next`` and the session cookies, or the page with the error.",
            "responses": {
                "200": {"description": "signed in: the session token (also set as cookies)", "content": _JSON_REPLY},
                "303": {"description": "a browser's form post signed in: off to next"},
                "429": None,
            },
        },
    },
    "/auth/logout": {
        "get": _LOGOUT_PAGE,
        "head": _LOGOUT_PAGE,
        "post": {
            "responses": {
                "200": {"description": "signed out; the cookies are cleared", "content": _JSON_REPLY},
                "303": {"description": "a browser's form post: off to the sign-in page"},
            }
        },
    },
    "/auth/verify": query_parameters(role=_TEXT),
    "/auth/tokens": {
        "post": json_body(
            label={**_TEXT, "maxLength": 100},
            expires_in={"type": "integer", "minimum": 1, "maximum": MAX_TOKEN_SECONDS},
        )
    },
    "/auth/tokens/revoke": json_body(required=["id"], id={"type": "integer", "minimum": 1, "maximum": MAX_ID}),
}


def register_routes(register) -> None:
    """Add the ``/auth/*`` routes through the kernel's ``register`` callback."""

    def add(path: str, endpoint, **options: Any) -> None:
        register(path, endpoint, meta={"openapi": OPENAPI.get(path, {})}, **options)

    add("/auth/login", login, kind="html", methods=("GET", "HEAD", "POST"))
    add("/auth/logout", logout, kind="html", methods=("GET", "HEAD", "POST"))
    add("/auth/me", me, kind="json", methods=("GET", "HEAD"))
    add("/auth/verify", verify, kind="json")
    add("/auth/tokens", tokens, kind="json", methods=("GET", "HEAD", "POST"))
    add("/auth/tokens/revoke", revoke_token, kind="json", methods=("POST",))
    add("/auth/users", list_users, kind="json", methods=("GET", "HEAD"), admin=True)
