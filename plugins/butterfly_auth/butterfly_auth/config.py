"""The ``[auth]`` settings and the plugin's per-kernel state.

The signing secret is resolved lazily (first token issued or checked), so building
a kernel does no I/O: ``[auth] secret`` when set, otherwise a random secret that is
generated once and kept in ``<data_dir>/auth_secret`` with mode 0600.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from butterfly_auth.ratelimit import FailureLimiter
from kernel import ConfigError

if TYPE_CHECKING:
    from kernel import Kernel

log = structlog.get_logger("butterfly.auth")

SECTION = "auth"
#: ``kernel.extensions`` key of the :class:`AuthState`.
EXTENSION = "auth"
SECRET_FILE = "auth_secret"
#: HS256 wants a key at least as long as its output (RFC 7518 §3.2).
MIN_SECRET_LENGTH = 32


def add_settings(settings) -> None:
    """Declare ``[auth]`` (called from ``butterfly_add_settings``)."""
    add = settings.add
    add(
        SECTION,
        "secret",
        str,
        "",
        "HS256 signing key for session JWTs (32+ characters); empty: a random key kept in "
        "<data_dir>/auth_secret (mode 0600). Share one value across instances behind a load balancer",
        secret=True,
        owner="auth",
    )
    add(SECTION, "token_ttl", int, 8 * 3600, "lifetime of a login session (JWT and cookie) in seconds", owner="auth")
    add(SECTION, "cookie_name", str, "butterfly_token", "name of the HttpOnly session cookie", owner="auth")
    add(
        SECTION,
        "cookie_secure",
        bool,
        False,
        "mark the session cookies Secure (set it when served over HTTPS)",
        owner="auth",
    )
    add(
        SECTION,
        "cookie_samesite",
        str,
        "Lax",
        "SameSite attribute of the session cookies",
        choices=("Lax", "Strict"),
        owner="auth",
    )
    add(
        SECTION,
        "trusted_origins",
        list,
        [],
        "extra origins (scheme://host[:port]) allowed to send cookie-authenticated writes, besides the "
        "request's own Host",
        owner="auth",
    )
    add(
        SECTION,
        "login_max_failures",
        int,
        5,
        "failed logins per user name and per client IP before logins are refused with 429",
        owner="auth",
    )
    add(
        SECTION,
        "login_failure_window",
        int,
        300,
        "seconds over which failed logins are counted (and the longest a lockout lasts)",
        owner="auth",
    )
    add(SECTION, "min_password_length", int, 8, "shortest password accepted when setting one", owner="auth")
    add(SECTION, "argon2_time_cost", int, 3, "argon2id passes (RFC 9106 low-memory profile: 3)", owner="auth")
    add(SECTION, "argon2_memory_kib", int, 65536, "argon2id memory per hash in KiB (default 64 MiB)", owner="auth")
    add(SECTION, "argon2_parallelism", int, 4, "argon2id lanes", owner="auth")
    add(
        SECTION,
        "bootstrap_admin",
        bool,
        True,
        "when the server starts on a store with no users at all, create user 'admin' (role admin) with a "
        "random password written to <data_dir>/initial_admin_password (mode 0600)",
        owner="auth",
    )


@dataclass
class AuthConfig:
    """The resolved ``[auth]`` values."""

    secret: str
    token_ttl: int
    cookie_name: str
    cookie_secure: bool
    cookie_samesite: str
    trusted_origins: list[str]
    login_max_failures: int
    login_failure_window: int
    min_password_length: int
    argon2_time_cost: int
    argon2_memory_kib: int
    argon2_parallelism: int
    bootstrap_admin: bool

    @property
    def csrf_cookie_name(self) -> str:
        """The readable cookie holding the double-submit CSRF token."""
        return self.cookie_name + "_csrf"

    @classmethod
    def from_kernel(cls, kernel: Kernel) -> AuthConfig:
        """Read and check ``[auth]``.

        :raises ConfigError: on a too-short secret or non-positive limits
        """
        section = kernel.settings.section(SECTION)
        config = cls(**{name: section[name] for name in cls.__dataclass_fields__})
        if config.secret and len(config.secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"[auth] secret is too short ({len(config.secret)} characters); use at least "
                f"{MIN_SECRET_LENGTH}, e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        for name in (
            "token_ttl",
            "login_max_failures",
            "login_failure_window",
            "argon2_time_cost",
            "argon2_parallelism",
        ):
            if getattr(config, name) <= 0:
                raise ConfigError(f"[auth] {name} must be a positive number, got {getattr(config, name)}")
        if config.argon2_memory_kib < 8 * config.argon2_parallelism:
            raise ConfigError(
                f"[auth] argon2_memory_kib must be at least 8 x argon2_parallelism "
                f"({8 * config.argon2_parallelism}), got {config.argon2_memory_kib}"
            )
        if not config.cookie_name or not config.cookie_name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"[auth] cookie_name must be letters, digits, '_' or '-', got {config.cookie_name!r}")
        return config


@dataclass
class AuthState:
    """What the plugin keeps on ``kernel.extensions["auth"]``.

    :param config: the resolved settings
    :param data_dir: where a generated secret is kept
    :param limiter: the failed-login limiter (in memory, per instance)
    """

    config: AuthConfig
    data_dir: Path
    limiter: FailureLimiter
    _secret: str | None = field(default=None, repr=False)
    _hasher: Any = field(default=None, repr=False)
    _dummy_hash: str = field(default="", repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_kernel(cls, kernel: Kernel) -> AuthState:
        """Build the state from ``[auth]``; no I/O happens here."""
        config = AuthConfig.from_kernel(kernel)
        limiter = FailureLimiter(config.login_max_failures, config.login_failure_window)
        return cls(config=config, data_dir=Path(kernel.data_dir), limiter=limiter)

    @property
    def secret(self) -> str:
        """The JWT signing key (configured, or generated and persisted on first use)."""
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    self._secret = self.config.secret or load_or_create_secret(self.data_dir / SECRET_FILE)
        return self._secret

    def password_hasher(self) -> Any:
        """The argon2id ``PasswordHasher`` for ``[auth] argon2_*``."""
        if self._hasher is None:
            from argon2 import PasswordHasher

            with self._lock:
                if self._hasher is None:
                    config = self.config
                    self._hasher = PasswordHasher(
                        time_cost=config.argon2_time_cost,
                        memory_cost=config.argon2_memory_kib,
                        parallelism=config.argon2_parallelism,
                    )
        return self._hasher

    def dummy_hash(self) -> str:
        """A hash of a random password, made with :meth:`password_hasher` on first use.

        It is verified for unknown user names, so a failed login costs the same
        whether or not the user exists. Ask for it on every sign-in attempt, known
        user or not, so the one attempt that makes it is not told apart either.
        """
        # PERF: made on the first sign-in, not at start-up: a first start (which
        # hashes the initial admin's password) pays for one argon2 hash, not two.
        if not self._dummy_hash:
            hasher = self.password_hasher()
            with self._lock:
                if not self._dummy_hash:
                    self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash


def load_or_create_secret(path: Path) -> str:
    """Read the generated secret at ``path``, creating it (mode 0600) the first time.

    :param path: ``<data_dir>/auth_secret``
    :return: the secret
    :raises ConfigError: when the file exists but is unusable
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # NOTE: write a private temp file, then link it into place: link() fails when
        # another process won the race, and nobody ever reads a half-written key.
        fd, temp_name = tempfile.mkstemp(prefix=".auth_secret.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(temp_name, path)
            log.info("generated a new JWT signing secret", path=str(path))
        except FileExistsError:
            pass
        finally:
            os.unlink(temp_name)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("the JWT secret file is readable by others; chmod 600 it", path=str(path), mode=oct(mode))
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{path} holds no usable secret (under {MIN_SECRET_LENGTH} characters); delete it to generate a new one"
        )
    return secret


def state_of(kernel: Kernel) -> AuthState:
    """The :class:`AuthState` of ``kernel``.

    :raises LookupError: when the auth plugin is not configured on this kernel
    """
    try:
        return kernel.extensions[EXTENSION]
    except KeyError:
        raise LookupError("the auth plugin is not configured on this kernel") from None
