"""xingqiao's tables, declared through butterfly-store's ``butterfly_store_define_entities``.

- ``xingqiao_job``: one row per job. Every transition of a job *or of its tasks* takes
  this row's lock first (``SELECT … FOR UPDATE``; ``BEGIN IMMEDIATE`` on SQLite), so
  the decisions "this task is done, these tasks are now ready, the job is finished"
  are made by one transaction at a time per job, on the current state.
- ``xingqiao_task``: one row per task. ``msg_id`` names the MQ message of the current
  attempt (``xq.<job>.<token>.<task>.<attempt>``): a run reported for any other
  message id, or for a task no longer ``pending``/``started``, changes nothing.
- ``xingqiao_transition``: every state change, with a unique key
  ``(job_id, task_index, attempt, to_status)`` — the audit trail, and a second line of
  defence: a transition that would happen twice fails the transaction instead.
  ``task_index`` is ``-1`` for the job itself, whose ``attempt`` is its run number.

Times are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

#: job states; only ``started`` jobs dispatch tasks
JOB_STATES = ("started", "finished", "failed", "canceled")
#: task states, in the order the page lists them
TASK_STATES = ("waiting", "pending", "started", "finished", "failed", "canceled")
#: task states whose MQ message is (or should be) in the queue or running
ACTIVE_TASK_STATES = ("pending", "started")
#: ``task_index`` of the job's own transitions
JOB_ROW = -1


def define_entities(db) -> None:
    """Declare ``XingqiaoJob``, ``XingqiaoTask`` and ``XingqiaoTransition`` on the store's database.

    :param db: the unbound pony :class:`~pony.orm.Database`
    :return: ``None``
    """
    from pony.orm import Json, LongStr, Optional, PrimaryKey, Required, composite_index, composite_key

    class XingqiaoJob(db.Entity):
        _table_ = "xingqiao_job"
        job_id = PrimaryKey(int, size=64, auto=True)
        job_token = Required(str, 16)
        job_type = Required(str, 64)
        job_name = Required(str, 128, unique=True)
        job_reqid = Required(str, 64)
        job_status = Required(str, 16, index=True)
        job_extra = Optional(Json, nullable=True)
        job_timeout = Required(float)
        run = Required(int, default=1)
        tasks_total = Required(int)
        tasks_finished = Required(int, default=0)
        ret_stat = Optional(str, 64)
        ret_data = Optional(Json, nullable=True)
        operator = Optional(str, 128)
        c_time = Required(int, size=64)
        s_time = Required(int, size=64)
        e_time = Optional(int, size=64)
        deadline_ms = Optional(int, size=64)
        composite_index(job_status, deadline_ms)

    class XingqiaoTask(db.Entity):
        _table_ = "xingqiao_task"
        task_id = PrimaryKey(int, size=64, auto=True)
        job_id = Required(int, size=64)
        task_index = Required(int)
        task_label = Required(str, 128)
        task_cmd = Required(str, 255)
        task_params = Optional(Json, nullable=True)
        upstream = Required(Json)
        downstream = Required(Json)
        waiting_on = Required(int)
        task_status = Required(str, 16)
        retries = Required(int, default=0)
        timeout = Optional(float)
        is_save = Required(bool, default=False)
        attempt = Required(int, default=0)
        tries = Required(int, default=0)
        msg_id = Optional(str, 128)
        run_params = Optional(Json, nullable=True)
        ret_stat = Optional(str, 64)
        ret_data = Optional(Json, nullable=True)
        error = Optional(LongStr)
        cost = Optional(float)
        enqueued_ms = Optional(int, size=64)
        started_ms = Optional(int, size=64)
        ended_ms = Optional(int, size=64)
        deadline_ms = Optional(int, size=64)
        check_ms = Optional(int, size=64)
        composite_key(job_id, task_index)
        composite_index(task_status, check_ms)
        composite_index(task_status, deadline_ms)

    class XingqiaoTransition(db.Entity):
        _table_ = "xingqiao_transition"
        id = PrimaryKey(int, size=64, auto=True)
        job_id = Required(int, size=64)
        task_index = Required(int)
        attempt = Required(int)
        from_status = Required(str, 16)
        to_status = Required(str, 16)
        at_ms = Required(int, size=64)
        note = Optional(str, 255)
        composite_key(job_id, task_index, attempt, to_status)

    return None


def entities(db):
    """``(XingqiaoJob, XingqiaoTask, XingqiaoTransition)`` of a mapped database."""
    return db.entities["XingqiaoJob"], db.entities["XingqiaoTask"], db.entities["XingqiaoTransition"]
