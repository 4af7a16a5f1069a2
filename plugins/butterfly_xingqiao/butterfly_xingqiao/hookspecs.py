"""xingqiao's own hookspec, added in ``butterfly_add_hookspecs``."""

from __future__ import annotations

from kernel import hookspec


@hookspec
def butterfly_xingqiao_workflows(register):
    """Contribute workflows (job types) from a plugin.

    Runs once on the main thread while routes are registered, after the ``workflows.py``
    modules of the handler apps were collected. Implement it with
    ``@hookimpl(optionalhook=True)`` so your plugin also loads without xingqiao.

    :param register: ``register(func)`` with a function decorated with
        ``@butterfly_xingqiao.workflow("job_type")``; a job type registered twice by
        different functions is a start-up error naming both
    :return: ``None``
    """
