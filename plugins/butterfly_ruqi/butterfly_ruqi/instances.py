"""Scheduler instances: identity, heartbeat, and ``lost`` runs of dead instances.

Every instance writes its heartbeat into ``ruqi_instance`` once per sync interval.
A run still ``claimed``/``running`` whose instance has not beaten for
``[ruqi] instance_timeout`` seconds is marked ``lost`` — and **not run again**:
the instance may have done the work before dying, so ruqi keeps at most one run
per occurrence (at-most-once side effects) and makes the gap visible instead.
"""

from __future__ import annotations

import os
import socket
import uuid

from pony.orm import db_session, select

from butterfly_ruqi.models import entities


def new_instance_id() -> str:
    """``host:pid:random`` — unique per process start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"[:128]


def heartbeat(db, instance_id: str, now_ms: int, started_ms: int) -> None:
    """Insert or refresh this instance's row."""
    _, _, Instance = entities(db)
    with db_session(optimistic=False):
        row = Instance.get(instance_id=instance_id)
        if row is None:
            Instance(
                instance_id=instance_id,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                started_at_ms=started_ms,
                last_seen_ms=now_ms,
            )
        else:
            row.last_seen_ms = now_ms


def mark_lost(db, now_ms: int, timeout_ms: int) -> int:
    """Mark active runs of silent instances ``lost``; forget long-dead instances.

    Only runs claimed more than ``timeout_ms`` ago are looked at, so a fresh claim
    by an instance that has not beaten yet is safe.

    :return: how many runs were marked
    """
    _, Run, Instance = entities(db)
    marked = 0
    with db_session(optimistic=False):
        alive = set(select(i.instance_id for i in Instance if i.last_seen_ms >= now_ms - timeout_ms)[:])
        cutoff = now_ms - timeout_ms
        stale = select(r for r in Run if (r.status == "claimed" or r.status == "running") and r.claimed_at_ms < cutoff)[
            :500
        ]
        for run in stale:
            if run.instance_id in alive:
                continue
            run.status = "lost"
            run.ended_at_ms = now_ms
            run.output = (
                (run.output or "") + f"instance {run.instance_id} stopped heart-beating before "
                "the run was recorded as finished; it may or may not have run; "
                "not retried (at most one run per occurrence)"
            )[:4000]
            marked += 1
        # NOTE: keep dead instances for a day so the status page can show them.
        for dead in select(i for i in Instance if i.last_seen_ms < now_ms - 86_400_000)[:100]:
            dead.delete()
    return marked


def retire(db, instance_id: str, now_ms: int) -> None:
    """On clean shutdown: mark runs that never finished ``lost`` and drop the row."""
    _, Run, Instance = entities(db)
    with db_session(optimistic=False):
        for run in select(
            r for r in Run if r.instance_id == instance_id and (r.status == "claimed" or r.status == "running")
        )[:]:
            run.status, run.ended_at_ms = "lost", now_ms
            run.output = (run.output or "") + "instance shut down before the run finished"
        row = Instance.get(instance_id=instance_id)
        if row is not None:
            row.delete()


def list_instances(db, now_ms: int, timeout_ms: int) -> list[dict]:
    """Known instances with ``alive`` computed from the heartbeat."""
    _, _, Instance = entities(db)
    with db_session:
        return [
            {
                "instance_id": i.instance_id,
                "host": i.host,
                "pid": i.pid,
                "started_at_ms": i.started_at_ms,
                "last_seen_ms": i.last_seen_ms,
                "alive": i.last_seen_ms >= now_ms - timeout_ms,
            }
            for i in select(i for i in Instance).order_by(lambda i: i.instance_id)[:]
        ]
