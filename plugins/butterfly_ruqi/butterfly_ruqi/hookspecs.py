"""ruqi's own hookspec, added in ``butterfly_add_hookspecs``."""

from __future__ import annotations

from kernel import hookspec


@hookspec
def butterfly_ruqi_job_types(register):
    """Contribute ruqi job types.

    Runs once on the main thread during ``butterfly_configure``. Implement it with
    ``@hookimpl(optionalhook=True)`` so your plugin also loads without ruqi.

    :param register: ``register(name, job_type)``; ``job_type`` is a
        :class:`butterfly_ruqi.jobtypes.JobType` (``validate(kernel, spec)`` and
        ``run(kernel, spec, fire) -> Outcome``). A duplicate name is a start-up
        error naming both plugins.
    :return: ``None``
    """
