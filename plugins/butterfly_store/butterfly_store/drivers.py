"""Database drivers are extras of butterfly-store; a missing one is a one-line error naming the extra.

SQLite needs nothing (the standard library's ``sqlite3``). pony imports the MySQL and
PostgreSQL drivers itself when it binds, and a missing one would surface as its
``ImportError`` traceback; checking first lets ``butterfly`` print one line instead.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from kernel import ConfigError


@dataclass(frozen=True)
class Driver:
    """The driver modules pony accepts for one provider, and the extra that installs one.

    :param label: the database's name in messages
    :param modules: importable modules pony tries, in its order
    :param extra: the butterfly-store extra that installs the first of them
    """

    label: str
    modules: tuple[str, ...]
    extra: str

    @property
    def install_command(self) -> str:
        """``pip install 'butterfly-store[<extra>]'``."""
        return f"pip install 'butterfly-store[{self.extra}]'"


#: pony provider name → its driver (pony's own fallbacks included).
DRIVERS = {
    "mysql": Driver("MySQL/MariaDB", ("pymysql", "MySQLdb"), "mysql"),
    "postgres": Driver("PostgreSQL", ("psycopg2", "psycopg2cffi"), "postgresql"),
}


def require_driver(provider: str, display_url: str) -> None:
    """Make sure a driver for ``provider`` imports, before pony tries it.

    :param provider: pony's provider name (``sqlite``, ``mysql``, ``postgres``)
    :param display_url: the password-masked ``[store] url``, for the message
    :raises ConfigError: one line naming the extra to install (and why the
        driver did not import, when it is installed but broken)
    """
    driver = DRIVERS.get(provider)
    if driver is None:
        return
    failures = []
    for module in driver.modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # installed, but something it needs is missing
                failures.append(f"{module}: {exc}")
        except ImportError as exc:  # e.g. psycopg2 without its libpq
            failures.append(f"{module}: {exc}")
        else:
            return
    detail = f" ({'; '.join(failures)})" if failures else ""
    raise ConfigError(f"no {driver.label} driver for [store] url {display_url}{detail}: {driver.install_command}")
