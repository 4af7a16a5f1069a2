"""The RQ job of the benchmark (RQ refuses functions defined in ``__main__``)."""


def noop() -> None:
    """Do nothing."""
