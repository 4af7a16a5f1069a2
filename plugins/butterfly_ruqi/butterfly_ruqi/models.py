"""ruqi's tables, declared through butterfly-store's ``butterfly_store_define_entities``.

- ``ruqi_job``: one row per job. ``version`` changes with every edit; the scheduler
  keeps ``handled_until_ms``, the shared cursor: every scheduled occurrence at or
  before it has been claimed (run, skipped or recorded as misfired) by some instance.
- ``ruqi_run``: the claim *and* the history of one occurrence. The unique key
  ``(job_id, scheduled_ms, manual)`` is what makes an occurrence fire once.
- ``ruqi_instance``: one row per live scheduler, with a heartbeat; runs claimed by an
  instance whose heartbeat stopped are marked ``lost``.

Times are integer milliseconds since the epoch (UTC) so that every database and
every instance names an occurrence with the same value.
"""

from __future__ import annotations

from datetime import datetime

#: run states: a claimed run is ``claimed`` → ``running`` → ``succeeded`` | ``failed``;
#: an occurrence that is not run is recorded as one of the ``skipped_*`` states.
RUN_STATES = (
    "claimed",
    "running",
    "succeeded",
    "failed",
    "lost",
    "skipped_misfire",
    "skipped_coalesced",
    "skipped_concurrent",
    "skipped_claimed",
)
ACTIVE_STATES = ("claimed", "running")


def define_entities(db) -> None:
    """Declare ``RuqiJob``, ``RuqiRun`` and ``RuqiInstance`` on the store's database.

    :param db: the unbound pony :class:`~pony.orm.Database`
    :return: ``None``
    """
    from pony.orm import Json, LongStr, Optional, PrimaryKey, Required, composite_index, composite_key

    class RuqiJob(db.Entity):
        _table_ = "ruqi_job"
        job_id = PrimaryKey(str, 64)
        job_name = Required(str, 128)
        job_trigger = Required(str, 16)
        rule = Required(str, 128)
        job_type = Required(str, 32)
        target = Required(str, 1024)
        payload = Optional(Json)
        options = Optional(Json)
        timezone = Required(str, 64)
        timeout = Required(float)
        misfire_grace = Required(float)
        coalesce = Required(bool, default=False)
        max_concurrent = Required(int, default=1)
        paused = Required(bool, default=False)
        version = Required(int, default=1)
        schedule_from_ms = Required(int, size=64)
        handled_until_ms = Optional(int, size=64)
        created_at = Required(datetime)
        updated_at = Required(datetime)

    class RuqiRun(db.Entity):
        _table_ = "ruqi_run"
        id = PrimaryKey(int, size=64, auto=True)
        job_id = Required(str, 64)
        scheduled_ms = Required(int, size=64)
        manual = Required(bool, default=False)
        status = Required(str, 24)
        instance_id = Required(str, 128)
        claimed_at_ms = Required(int, size=64)
        started_at_ms = Optional(int, size=64)
        ended_at_ms = Optional(int, size=64)
        duration = Optional(float)
        output = Optional(LongStr)
        composite_key(job_id, scheduled_ms, manual)
        composite_index(status, instance_id)

    class RuqiInstance(db.Entity):
        _table_ = "ruqi_instance"
        instance_id = PrimaryKey(str, 128)
        host = Required(str, 255)
        pid = Required(int)
        started_at_ms = Required(int, size=64)
        last_seen_ms = Required(int, size=64)

    return None


def entities(db):
    """``(RuqiJob, RuqiRun, RuqiInstance)`` of a mapped database."""
    return db.entities["RuqiJob"], db.entities["RuqiRun"], db.entities["RuqiInstance"]
