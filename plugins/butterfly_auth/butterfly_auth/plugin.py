"""Hook implementations of butterfly-auth (entry point ``auth``).

Logic lives in sibling modules: :mod:`~butterfly_auth.policy` (who may call what),
:mod:`~butterfly_auth.views` (``/auth/*``), :mod:`~butterfly_auth.models` (entities),
:mod:`~butterfly_auth.cli` (``butterfly auth``), :mod:`~butterfly_auth.bootstrap` (the initial admin).
"""

from __future__ import annotations

from butterfly_auth import bootstrap, cli, config, models, policy, views
from kernel import hookimpl


@hookimpl
def butterfly_add_settings(settings):
    """Declare ``[auth]``."""
    config.add_settings(settings)


@hookimpl
def butterfly_configure(kernel):
    """Read ``[auth]`` into ``kernel.extensions["auth"]`` (the secret is read on first use)."""
    kernel.extensions[config.EXTENSION] = config.AuthState.from_kernel(kernel)


@hookimpl(optionalhook=True)
def butterfly_store_define_entities(db):
    """Users, roles, API tokens and logged-out sessions."""
    models.define_entities(db)


@hookimpl(optionalhook=True)
def butterfly_store_upgrades():
    """The steps from 0.1's tables (``auth_user.uid``, ``auth_api_token.user_version``)."""
    from butterfly_auth.upgrades import STEPS

    return STEPS


@hookimpl
def butterfly_register_routes(register, kernel):
    """``/auth/login``, ``/auth/logout``, ``/auth/me``, ``/auth/verify``, ``/auth/tokens``, ``/auth/users``."""
    views.register_routes(register)


@hookimpl(trylast=True)
def butterfly_startup(kernel):
    """On a store without users, create ``admin`` and write its password to ``<data_dir>/initial_admin_password``.

    ``trylast`` so the store and the log files are ready; one-shot CLI commands never start the kernel.
    """
    bootstrap.bootstrap_admin(kernel)


@hookimpl
def butterfly_authorize(request, route):
    """Identify the caller, set ``request.user``, enforce admin/role/login marks and CSRF."""
    return policy.authorize(request, route)


@hookimpl(optionalhook=True)
def butterfly_router_openapi_operation(route, method, operation):
    """Document the sign-in redirect: a browser that is not signed in is sent to ``/auth/login`` (302)."""
    policy.document_sign_in_redirect(route, method, operation)


@hookimpl
def butterfly_add_commands(subparsers):
    """``butterfly auth add-user|set-password|delete-user|disable-user|enable-user|set-roles|list-users|...``."""
    cli.add_commands(subparsers)
