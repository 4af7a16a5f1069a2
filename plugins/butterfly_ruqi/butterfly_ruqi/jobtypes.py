"""The job-type contract and registry (``butterfly_ruqi_job_types(register)``).

A job type checks a job when it is created or changed (:meth:`JobType.validate`)
and runs one occurrence (:meth:`JobType.run`) on a ruqi worker thread. Plugins add
types by implementing the ruqi hook::

    from kernel import hookimpl

    class Slack(JobType):
        def validate(self, kernel, spec): ...
        def run(self, kernel, spec, fire): return Outcome(True, "posted")

    @hookimpl(optionalhook=True)
    def butterfly_ruqi_job_types(register):
        register("slack", Slack())
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kernel import BadRequest, ConfigError

if TYPE_CHECKING:
    from butterfly_ruqi.jobspec import JobSpec


@dataclass(frozen=True)
class Fire:
    """One claimed occurrence, as handed to :meth:`JobType.run`.

    :param fire_id: the history row's id: unique and increasing; targets dedupe on it
    :param job_id: the job
    :param scheduled_ms: the occurrence's scheduled time (ms since the epoch, UTC);
        for ``run_job`` the time it was asked for
    :param manual: ``True`` for ``run_job`` (run now)
    :param instance_id: the instance that claimed it
    """

    fire_id: int
    job_id: str
    scheduled_ms: int
    manual: bool
    instance_id: str

    @property
    def scheduled_time(self) -> str:
        """The scheduled time as ISO 8601 UTC text (``2030-01-02T03:04:05.000+00:00``)."""
        return datetime.fromtimestamp(self.scheduled_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@dataclass
class Outcome:
    """What one run produced.

    :param ok: ``True`` → ``succeeded``, ``False`` → ``failed``
    :param output: text for the history (truncated to ``[ruqi] output_limit``)
    """

    ok: bool
    output: str = ""


class JobType:
    """Base class of job types; subclasses override :meth:`validate` and :meth:`run`."""

    #: a one-line description for listings
    description = ""

    def validate(self, kernel, spec: JobSpec) -> None:
        """Check ``spec.target``, ``spec.payload`` and ``spec.options``.

        Runs on the request thread of ``add_job`` / ``modify_job``.

        :param kernel: the :class:`kernel.Kernel`
        :param spec: the normalised job
        :raises kernel.BadRequest: with ``data={"errors": [{"param", "reason"}]}``
        :return: ``None``
        """

    def run(self, kernel, spec: JobSpec, fire: Fire) -> Outcome:
        """Run one occurrence; must respect ``spec.timeout`` where it can.

        Runs on a ruqi worker thread. An exception counts as ``failed``.

        :param kernel: the :class:`kernel.Kernel`
        :param spec: the job as it was when the occurrence was claimed
        :param fire: the claimed occurrence
        :return: an :class:`Outcome`
        """
        raise NotImplementedError


def bad_param(param: str, reason: str) -> BadRequest:
    """A :class:`BadRequest` for one parameter (``ERR_BAD_PARAMS``, errors list)."""
    return BadRequest(f"{param}: {reason}", data={"errors": [{"param": param, "reason": reason}]})


class JobTypeRegistry:
    """Job types by name, filled through ``butterfly_ruqi_job_types(register)``."""

    def __init__(self) -> None:
        self.types: dict[str, JobType] = {}
        self.owners: dict[str, str] = {}

    def register(self, name: str, job_type: JobType, *, owner: str = "") -> None:
        """Add ``job_type`` under ``name``.

        :raises ConfigError: on a duplicate name (naming both owners) or a bad object
        """
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"ruqi job type name {name!r} must be an identifier")
        if not callable(getattr(job_type, "run", None)):
            raise ConfigError(f"ruqi job type {name!r} from {owner or '?'} has no run() method")
        if name in self.types:
            raise ConfigError(f"ruqi job type {name!r} registered twice ({self.owners[name]} and {owner or '?'})")
        self.types[name] = job_type
        self.owners[name] = owner or "?"

    def get(self, name: str) -> JobType:
        """The job type ``name``.

        :raises kernel.BadRequest: naming the valid types
        """
        try:
            return self.types[name]
        except KeyError:
            raise bad_param(
                "job_type", f"unknown job type {name!r}; valid: {', '.join(sorted(self.types)) or 'none'}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self.types)


def collect_job_types(kernel) -> JobTypeRegistry:
    """Ask every plugin for its job types (``butterfly_ruqi_job_types``)."""
    registry = JobTypeRegistry()
    hook = kernel.hook.butterfly_ruqi_job_types
    for impl in reversed(hook.get_hookimpls()):

        def register(name: str, job_type: Any, _owner: str = impl.plugin_name) -> None:
            registry.register(name, job_type, owner=_owner)

        impl.function(register)
    return registry
