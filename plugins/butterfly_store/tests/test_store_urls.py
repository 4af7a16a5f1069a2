"""[store] url parsing and password masking (no database needed)."""

import os

import pytest

from butterfly_store.urls import mask_url, parse_store_url


def test_relative_sqlite_path_is_relative_to_the_working_directory():
    target = parse_store_url("sqlite:///data/butterfly.db")
    assert target.provider == "sqlite"
    assert target.options["filename"] == os.path.join(os.getcwd(), "data", "butterfly.db")
    assert target.sqlite_path == target.options["filename"]


def test_four_slashes_make_an_absolute_sqlite_path():
    assert parse_store_url("sqlite:////var/lib/bf/x.db").options["filename"] == "/var/lib/bf/x.db"


def test_memory_sqlite_is_shared_between_threads():
    target = parse_store_url("sqlite:///:memory:")
    assert target.options == {"filename": ":sharedmemory:"}
    assert target.sqlite_path is None


def test_mysql_url_becomes_pymysql_arguments():
    target = parse_store_url("mysql://bf:s3cr%40t@db.example:3307/app?connect_timeout=2", connect_timeout=5)
    assert target.provider == "mysql"
    assert target.options == {
        "host": "db.example",
        "port": 3307,
        "user": "bf",
        "password": "s3cr@t",
        "database": "app",
        "charset": "utf8mb4",
        "connect_timeout": 2,
    }
    assert "s3cr" not in target.display and "***" in target.display


def test_postgresql_url_becomes_psycopg2_arguments_with_default_port():
    target = parse_store_url("postgresql://bf@127.0.0.1/app")
    assert target.provider == "postgres"
    assert target.options == {"host": "127.0.0.1", "port": 5432, "user": "bf", "database": "app", "connect_timeout": 5}


@pytest.mark.parametrize(
    "url, words",
    [
        ("oracle://u:p@h/db", ["unknown database URL scheme 'oracle'", "sqlite"]),
        ("mysql://u:topsecret@h", ["needs a host and a database name"]),
        ("sqlite://", ["names no file"]),
        ("mysql://u:p@h:notaport/db", ["cannot parse"]),
    ],
)
def test_bad_urls_are_refused_naming_the_problem_without_the_password(url, words):
    with pytest.raises(ValueError) as info:
        parse_store_url(url)
    for word in words:
        assert word in str(info.value)
    assert "topsecret" not in str(info.value)


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql://bf:pw@h:5432/db") == "postgresql://bf:***@h:5432/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    assert mask_url("mysql://root@h/db") == "mysql://root@h/db"
