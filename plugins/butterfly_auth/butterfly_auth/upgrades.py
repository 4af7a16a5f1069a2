"""Schema upgrade steps of the auth tables (the store's ``butterfly_store_upgrades`` hook).

From 0.1 to 0.2:

- ``auth_user.uid``: sessions name a random, immutable user id instead of the name.
  Every existing user gets a fresh random ``uid``; 0.1 session JWTs name the user by
  name, find no user by ``uid`` and are void — everyone signs in again (passwords,
  roles and API tokens are kept).
- ``auth_api_token.user_version``: a token now ends with a password change or a
  disable. Existing tokens take their user's current ``token_version``, so each one
  keeps working until the user's next such change.

Every step is safe to run again (MySQL commits each DDL statement at once).
"""

from __future__ import annotations

from butterfly_auth.models import new_user_uid
from butterfly_store.schema import SchemaContext, UpgradeStep

USER_UID_INDEX = "unq_auth_user__uid"


def add_user_uid(ctx: SchemaContext) -> None:
    """``auth_user.uid VARCHAR(32) UNIQUE NOT NULL``, a fresh random value per existing user.

    A table that has the column already (made by 0.2 before steps were recorded) is
    left as it is; on MySQL a nullable ``uid`` is an earlier run that stopped half-way.
    """
    table, column = ctx.quote("auth_user"), ctx.quote("uid")
    adding = not ctx.has_column("auth_user", "uid")
    if adding:
        ctx.execute(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR(32) NULL")
    elif ctx.provider == "mysql":
        rows = ctx.query(
            "SELECT is_nullable FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = 'auth_user' AND column_name = 'uid'"
        )
        adding = bool(rows) and rows[0][0] == "YES"
    for (user_id,) in ctx.query(f"SELECT id FROM {table} WHERE {column} IS NULL OR {column} = ''"):
        ctx.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (new_user_uid(), user_id))
    if not adding:
        return
    if USER_UID_INDEX not in ctx.indexes("auth_user"):
        ctx.execute(f"CREATE UNIQUE INDEX {ctx.quote(USER_UID_INDEX)} ON {table} ({column})")
    # NOTE: SQLite cannot make an added column NOT NULL; pony always writes a uid.
    if ctx.provider == "mysql":
        ctx.execute(f"ALTER TABLE {table} MODIFY {column} VARCHAR(32) NOT NULL")
    elif ctx.provider == "postgres":
        ctx.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL")


def add_api_token_user_version(ctx: SchemaContext) -> None:
    """``auth_api_token.user_version INTEGER NOT NULL``, set to each owner's current ``token_version``."""
    table, column = ctx.quote("auth_api_token"), ctx.quote("user_version")
    if not ctx.has_column("auth_api_token", "user_version"):
        ctx.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    users = ctx.quote("auth_user")
    ctx.execute(
        f"UPDATE {table} SET {column} = "
        f"(SELECT token_version FROM {users} WHERE {users}.id = {table}.{ctx.quote('user')})"
    )


STEPS = [
    UpgradeStep(
        "auth.0001-user-uid",
        "auth_user.uid: a random id per user that sessions name (0.1 sessions end)",
        add_user_uid,
        tables=("auth_user",),
    ),
    UpgradeStep(
        "auth.0002-api-token-user-version",
        "auth_api_token.user_version: tokens end with a password change (existing tokens kept)",
        add_api_token_user_version,
        tables=("auth_api_token",),
    ),
]
