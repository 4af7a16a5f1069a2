"""The crash windows, made to happen on purpose, and how each is repaired.

1. The transition committed but its instance died before sending the next task: the
   next report of the same run (its redelivery) sends it again — once.
2. The job's first tasks were committed but never sent: the sweep finds their message
   missing and sends it.
3. The handler ran and its run was acknowledged, but the job never advanced (the store
   was down, or an instance without xingqiao ran it): the sweep reads the run's end from
   the MQ and applies it.
"""

from __future__ import annotations

import pytest
from pony.orm import db_session

from butterfly_mq.queue import Queue
from butterfly_xingqiao import jobs
from butterfly_xingqiao.engine import report_run
from butterfly_xingqiao.sweep import sweep_once
from kernel import ConfigError, hookimpl

from .conftest import APPS


def queue_of(kernel, topic="/xq_test/work") -> Queue:
    service = kernel.extensions["mq"]
    return Queue(service.client, topic, service.config.prefix)


def age_checks(state, job_id: int) -> None:
    """Make every active task of the job due for the sweep's check now."""
    with db_session:
        for task in state.transitions.Task.select(lambda t: t.job_id == job_id):
            if task.check_ms is not None:
                task.check_ms = 0


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_redelivered_report_sends_what_the_crash_did_not(xq_kernel, store_url, counter_key, xq):
    kernel = xq_kernel(store_url, start=False)  # nothing consumes: we play the MQ
    state = kernel.extensions["xingqiao"]
    job_id = jobs.create_job(state, "chain", job_extra={"key": counter_key, "length": 2})["job_id"]
    first, second = jobs.get_tasklist(state, job_id)
    assert first["task_status"] == "pending" and queue_of(kernel).get(first["msg_id"])["state"] == "queued"
    assert report_run(state, first["msg_id"], "finished", "OK", {"stat": "OK", "value": 1}, "", 3) is True
    second = jobs.get_tasklist(state, job_id)[1]
    assert second["task_status"] == "pending" and queue_of(kernel).delete(second["msg_id"])  # "crashed before send"
    before = xq.transitions(kernel, job_id)
    # the MQ runs the first message again (it was never acknowledged) and reports it again
    assert report_run(state, first["msg_id"], "finished", "OK", {"stat": "OK", "value": 1}, "", 2) is False
    assert queue_of(kernel).get(second["msg_id"])["state"] == "queued"  # sent again, same id
    assert xq.transitions(kernel, job_id) == before  # and nothing happened twice
    assert jobs.get_job_detail(state, job_id)["tasks_finished"] == 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sweep_sends_a_message_that_was_never_sent(xq_kernel, store_url, counter, counter_key, xq):
    kernel = xq_kernel(store_url, start=False)
    state = kernel.extensions["xingqiao"]
    job_id = jobs.create_job(state, "chain", job_extra={"key": counter_key, "length": 2})["job_id"]
    first = jobs.get_tasklist(state, job_id)[0]
    assert queue_of(kernel).delete(first["msg_id"])  # the instance died between commit and send
    assert sweep_once(state)["resent"] == 0  # not yet due: it was enqueued a moment ago
    age_checks(state, job_id)
    assert sweep_once(state) == {"jobs_timed_out": 0, "tasks_timed_out": 0, "resent": 1, "reported": 0}
    assert queue_of(kernel).get(first["msg_id"])["reqid"] == jobs.get_job_detail(state, job_id)["job_reqid"]
    kernel.startup()
    assert xq.wait_job(kernel, job_id)["job_status"] == "finished"
    assert counter.hgetall(counter_key) == {"c0": "1", "c1": "1"}


@pytest.mark.parametrize("store_url", ["sqlite", "postgresql"], indirect=True)
def test_sweep_applies_runs_that_ended_without_advancing_the_job(
    xq_kernel, make_kernel, store_url, redis_server, prefix, counter, counter_key, xq
):
    import butterfly_mq.plugin
    import butterfly_router.plugin

    kernel = xq_kernel(store_url, start=False)
    state = kernel.extensions["xingqiao"]
    # an instance that runs the messages but has no xingqiao: runs end, jobs do not advance
    bare = make_kernel(
        plugins=[butterfly_router.plugin, butterfly_mq.plugin],
        settings={"router.handlers_dir": str(APPS), "mq.redis_url": redis_server.url, "mq.prefix": prefix},
    )
    bare.startup()
    job_id = jobs.create_job(state, "chain", job_extra={"key": counter_key, "length": 3})["job_id"]
    for step in range(3):
        task = jobs.get_tasklist(state, job_id)[step]
        xq.wait_for(lambda task=task: queue_of(kernel).get(task["msg_id"])["state"] == "finished")
        assert jobs.get_tasklist(state, job_id)[step]["task_status"] == "pending"  # the job did not move
        age_checks(state, job_id)
        assert sweep_once(state)["reported"] == 1
    detail = jobs.get_job_detail(state, job_id)
    assert detail["job_status"] == "finished" and detail["tasks_finished"] == 3
    assert counter.hgetall(counter_key) == {"c0": "1", "c1": "1", "c2": "1"}
    seen = xq.transitions(kernel, job_id)
    assert len(seen) == len(set(seen)) == 3 * 2 + 2  # never marked started: no xingqiao ran them


def test_duplicate_job_types_stop_start_up(make_kernel, tmp_path, redis_server):
    from butterfly_xingqiao import workflow

    from .conftest import plugin_modules

    @workflow("fan")
    def another_fan(flow):
        flow.task("/xq_test/work", key="k", tag="t")

    class Duplicate:
        @hookimpl
        def butterfly_xingqiao_workflows(self, register):
            register(another_fan)

    settings = {
        "store.url": f"sqlite:///{tmp_path}/dup.sqlite",
        "router.handlers_dir": str(APPS),
        "mq.redis_url": redis_server.url,
    }
    with pytest.raises(ConfigError, match=r"duplicate workflow job_type 'fan'.*workflows\.fan.*another_fan"):
        make_kernel(plugins=[*plugin_modules(), Duplicate()], settings=settings)

    class NotAWorkflow:
        @hookimpl
        def butterfly_xingqiao_workflows(self, register):
            register(print)

    with pytest.raises(ConfigError, match="not decorated"):
        make_kernel(plugins=[*plugin_modules(), NotAWorkflow()], settings=settings)
