"""``butterfly auth ...``: manage users and API tokens against the configured store.

Runs in-process: builds the kernel from the config (``kernel.cli.load_kernel``)
and calls the Python API in :mod:`butterfly_auth.users` / :mod:`butterfly_auth.api_tokens`.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from butterfly_auth import api_tokens, users


def add_commands(subparsers) -> None:
    """Add ``auth`` and its subcommands to the ``butterfly`` parser."""
    parser = subparsers.add_parser(
        "auth",
        help="manage users, roles and API tokens (huoyan)",
        description="Manage users, roles and API tokens in the configured store.",
    )
    commands = parser.add_subparsers(dest="auth_command", metavar="ACTION")

    add = commands.add_parser("add-user", help="create a user")
    add.add_argument("name")
    _password_options(add)
    add.add_argument("--role", action="append", default=[], help="a role to grant (repeatable), e.g. admin")
    add.set_defaults(run=cmd_add_user)

    passwd = commands.add_parser("set-password", help="change a password (ends the user's sessions and API tokens)")
    passwd.add_argument("name")
    _password_options(passwd)
    passwd.set_defaults(run=cmd_set_password)

    delete = commands.add_parser("delete-user", help="delete a user, their API tokens and sessions")
    delete.add_argument("name")
    delete.set_defaults(run=cmd_delete_user)

    disable = commands.add_parser("disable-user", help="refuse a user's logins; ends their sessions and API tokens")
    disable.add_argument("name")
    disable.set_defaults(run=lambda args: cmd_set_active(args, False))

    enable = commands.add_parser("enable-user", help="let a disabled user log in again (old sessions stay ended)")
    enable.add_argument("name")
    enable.set_defaults(run=lambda args: cmd_set_active(args, True))

    roles = commands.add_parser("set-roles", help="replace a user's roles")
    roles.add_argument("name")
    roles.add_argument("roles", nargs="*", help="role names (none removes every role)")
    roles.set_defaults(run=cmd_set_roles)

    listing = commands.add_parser("list-users", help="list users and their roles")
    listing.set_defaults(run=cmd_list_users)

    token = commands.add_parser("add-token", help="create an API token for a user (shown once)")
    token.add_argument("name", help="the user the token acts as")
    token.add_argument("--label", default="", help="what the token is for")
    token.add_argument("--expires-in", type=int, metavar="SECONDS", help="lifetime (default: no expiry)")
    token.set_defaults(run=cmd_add_token)

    tokens = commands.add_parser("list-tokens", help="list API tokens (never the tokens themselves)")
    tokens.add_argument("name", nargs="?", help="only this user's tokens")
    tokens.set_defaults(run=cmd_list_tokens)

    revoke = commands.add_parser("revoke-token", help="revoke an API token by id")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(run=cmd_revoke_token)


def _kernel(args: argparse.Namespace):
    from kernel.cli import load_kernel

    return load_kernel(args)


def _password_options(parser: argparse.ArgumentParser) -> None:
    given = parser.add_mutually_exclusive_group()
    given.add_argument(
        "--password", help="the password (visible to other local users in the process list; prefer the prompt)"
    )
    given.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of standard input"
    )


def _password(args: argparse.Namespace) -> str:
    """The password from ``--password-stdin``, ``--password``, or asked twice on a terminal.

    :raises users.AuthError: nothing on stdin, no terminal to ask on, or the two entries differ
    """
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise users.AuthError("--password-stdin: standard input held no password")
        return line
    if args.password is not None:
        return args.password
    if not sys.stdin.isatty():
        raise users.AuthError("no password given: pass --password-stdin, or run on a terminal to be asked")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise users.AuthError("the passwords do not match")
    return first


def _fail(exc: Exception) -> int:
    print(f"butterfly auth: error: {exc}", file=sys.stderr)
    return 1


def cmd_add_user(args: argparse.Namespace) -> int:
    """``butterfly auth add-user NAME [--password P] [--role admin]``."""
    try:
        users.check_user_name(args.name)
        user = users.create_user(_kernel(args), args.name, _password(args), args.role)
    except users.AuthError as exc:
        return _fail(exc)
    print(f"created user {user.name} (roles: {', '.join(user.roles) or '-'})")
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    """``butterfly auth set-password NAME [--password P]``."""
    try:
        user = users.set_password(_kernel(args), args.name, _password(args))
    except users.AuthError as exc:
        return _fail(exc)
    print(f"password changed for {user.name}; their sessions and API tokens have ended")
    return 0


def cmd_delete_user(args: argparse.Namespace) -> int:
    """``butterfly auth delete-user NAME``: the user, their API tokens and every session end."""
    try:
        user = users.delete_user(_kernel(args), args.name)
    except users.AuthError as exc:
        return _fail(exc)
    print(f"deleted user {user.name}; their sessions and API tokens have ended")
    return 0


def cmd_set_active(args: argparse.Namespace, active: bool) -> int:
    """``butterfly auth disable-user NAME`` / ``enable-user NAME``."""
    try:
        user = users.set_active(_kernel(args), args.name, active)
    except users.AuthError as exc:
        return _fail(exc)
    if active:
        print(f"enabled user {user.name}; they can log in again")
    else:
        print(f"disabled user {user.name}; their sessions and API tokens have ended")
    return 0


def cmd_set_roles(args: argparse.Namespace) -> int:
    """``butterfly auth set-roles NAME [ROLE ...]``."""
    try:
        user = users.set_roles(_kernel(args), args.name, args.roles)
    except users.AuthError as exc:
        return _fail(exc)
    print(f"{user.name}: roles {', '.join(user.roles) or '-'}")
    return 0


def cmd_list_users(args: argparse.Namespace) -> int:
    """``butterfly auth list-users``."""
    rows = users.list_users(_kernel(args))
    print(f"{'USER':<24} {'ACTIVE':<7} {'ROLES':<30} CREATED")
    for user in rows:
        print(
            f"{user.name:<24} {'yes' if user.active else 'no':<7} {','.join(user.roles) or '-':<30} "
            f"{user.created_at:%Y-%m-%d %H:%M}"
        )
    return 0


def cmd_add_token(args: argparse.Namespace) -> int:
    """``butterfly auth add-token NAME [--label L] [--expires-in S]``: prints the token once."""
    try:
        token, info = api_tokens.create_token(_kernel(args), args.name, label=args.label, expires_in=args.expires_in)
    except users.AuthError as exc:
        return _fail(exc)
    expiry = f"expires {info.expires_at:%Y-%m-%d %H:%M:%S} UTC" if info.expires_at else "never expires"
    print(f"token id {info.id} for {info.user} ({expiry}); it is shown only now:", file=sys.stderr)
    print(token)
    return 0


def cmd_list_tokens(args: argparse.Namespace) -> int:
    """``butterfly auth list-tokens [NAME]``."""
    rows = api_tokens.list_tokens(_kernel(args), args.name)
    print(f"{'ID':>5} {'USER':<20} {'PREFIX':<12} {'STATE':<8} {'EXPIRES':<17} LABEL")
    for info in rows:
        state = (
            "revoked" if info.revoked_at else "ended" if not info.current else "active" if info.usable else "expired"
        )
        expires = f"{info.expires_at:%Y-%m-%d %H:%M}" if info.expires_at else "-"
        print(f"{info.id:>5} {info.user:<20} {info.prefix + '…':<12} {state:<8} {expires:<17} {info.label}")
    return 0


def cmd_revoke_token(args: argparse.Namespace) -> int:
    """``butterfly auth revoke-token ID``."""
    try:
        info = api_tokens.revoke_token(_kernel(args), args.id)
    except users.AuthError as exc:
        return _fail(exc)
    print(f"revoked token {info.id} ({info.prefix}…) of {info.user}")
    return 0
