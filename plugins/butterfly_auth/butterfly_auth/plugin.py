"""Hook implementations of butterfly-auth (entry point `auth`)."""

from kernel import hookimpl  # noqa: F401
