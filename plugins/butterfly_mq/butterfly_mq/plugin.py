"""Hook implementations of butterfly-mq (entry point `mq`)."""

from kernel import hookimpl  # noqa: F401
