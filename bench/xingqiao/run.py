"""Workflow benchmark: 星桥 xingqiao vs Dramatiq ``group`` + ``pipeline``, same private redis-server.

Two no-op graphs, each run ``--runs`` times (medians reported):

* **fan** — a 100-task fan-out/fan-in: one start task, 98 parallel tasks, one task after all of
  them (xingqiao: a workflow; Dramatiq: the start actor runs a ``group`` of 98 messages whose
  completion callback is the last one — ``GroupCallbacks`` on a Redis rate-limiter backend);
* **chain** — 50 tasks one after the other (xingqiao: ``after=``; Dramatiq: a ``pipeline`` with
  ``pipe_ignore=True``).

Reported per graph: the job's wall time (from the create/send call until the last task ended,
as seen by the benchmark process) and the framework's overhead per task (wall time / tasks: the
tasks do nothing). One consumer process each, 8 worker threads each. xingqiao also keeps its
exactly-once transitions in the store (SQLite by default, ``--store-url`` for another) — that
work is part of its numbers; Dramatiq keeps no record of the graph.

Usage::

    .venv/bin/python bench/xingqiao/run.py [--runs 3] [--store-url postgresql://u@host/scratch_db] [--with-trace]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kernel import hookimpl  # noqa: E402
from kernel.testing import RedisServer, build_kernel  # noqa: E402

FAN_WIDTH, CHAIN_LENGTH = 98, 50
HANDLERS = """
def noop(req, value: int = 0):
    return "OK", {"value": value}
"""
WORKFLOWS = f"""
from butterfly_xingqiao import workflow


@workflow("bench_fan")
def bench_fan(flow):
    start = flow.task("/bench_xq/noop")
    parts = [flow.task("/bench_xq/noop", value=i, after=[start]) for i in range({FAN_WIDTH})]
    flow.task("/bench_xq/noop", after=parts)


@workflow("bench_chain")
def bench_chain(flow):
    previous = None
    for i in range({CHAIN_LENGTH}):
        previous = flow.task("/bench_xq/noop", value=i, after=[previous] if previous else [])
"""


# -- xingqiao ----------------------------------------------------------------------------------


def xingqiao_kernel(url: str, store_url: str | None, tmp: Path, with_trace: bool, watch: JobWatch):
    import butterfly_mq.plugin
    import butterfly_router.plugin
    import butterfly_store.plugin
    import butterfly_trace.plugin
    import butterfly_xingqiao.plugin

    handlers = tmp / "bench_handlers"
    (handlers / "bench_xq").mkdir(parents=True)
    (handlers / "__init__.py").write_text("")
    (handlers / "bench_xq" / "__init__.py").write_text(textwrap.dedent(HANDLERS))
    (handlers / "bench_xq" / "workflows.py").write_text(textwrap.dedent(WORKFLOWS))
    plugins = [butterfly_store.plugin, butterfly_router.plugin, butterfly_mq.plugin, butterfly_xingqiao.plugin, watch]
    if with_trace:
        plugins.append(butterfly_trace.plugin)
    kernel = build_kernel(
        tmp,
        plugins,
        {
            "store.url": store_url or f"sqlite:///{tmp}/bench.sqlite",
            "router.handlers_dir": str(handlers),
            "mq.redis_url": url,
            "mq.prefix": f"bxq{uuid.uuid4().hex[:6]}",
            "mq.workers": 8,
            "mq.batch_size": 32,
            "mq.heartbeat_interval": 60,
            "mq.cleanup_interval": 3600,
        },
    )
    kernel.startup()
    return kernel


class JobWatch:
    """Tells when a job's last task ended, like Dramatiq's ``last`` actor sets an event.

    ``trylast``: runs after xingqiao's own hook, which has then recorded the task (and, for the
    last one, the job) — so no polling of the store competes with the workers for the GIL and
    the database (a 2 ms poll of ``get_job_detail`` did, before).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ended: dict[int, threading.Event] = {}
        self.last_index: dict[int, int] = {}

    def event(self, job_id: int) -> threading.Event:
        with self.lock:
            return self.ended.setdefault(job_id, threading.Event())

    @hookimpl(trylast=True, optionalhook=True)
    def butterfly_mq_message_finished(self, kernel, message, outcome):
        parts = message.msg_id.split(".")
        if len(parts) == 5 and parts[0] == "xq" and int(parts[3]) == self.last_index.get(int(parts[1]), -1):
            self.event(int(parts[1])).set()


def run_xingqiao(kernel, job_type: str, watch: JobWatch) -> float:
    from butterfly_xingqiao import jobs

    state = kernel.extensions["xingqiao"]
    last = FAN_WIDTH + 1 if job_type == "bench_fan" else CHAIN_LENGTH - 1
    started = time.perf_counter()
    job_id = jobs.create_job(state, job_type)["job_id"]
    watch.last_index[job_id] = last
    ended = watch.event(job_id)
    # NOTE: a last task that ended before its index was noted above is caught by the check
    while not ended.wait(0.05):
        if jobs.get_job_detail(state, job_id)["job_status"] != "started":
            break
    elapsed = time.perf_counter() - started
    detail = jobs.get_job_detail(state, job_id)
    assert detail["job_status"] == "finished", detail
    return elapsed


# -- Dramatiq ----------------------------------------------------------------------------------


class DramatiqGraphs:
    """The same two graphs on Dramatiq (one broker, one worker with 8 threads)."""

    def __init__(self, url: str) -> None:
        import dramatiq
        from dramatiq import group, pipeline
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq.middleware import GroupCallbacks
        from dramatiq.rate_limits.backends import RedisBackend

        namespace = f"bench-dq-{uuid.uuid4().hex[:6]}"
        self.broker = RedisBroker(url=url, namespace=namespace)
        self.broker.add_middleware(GroupCallbacks(RedisBackend(url=url)))
        dramatiq.set_broker(self.broker)
        self.done = threading.Event()
        done = self.done

        @dramatiq.actor(broker=self.broker, max_retries=0)
        def noop(value: int = 0):
            return None

        @dramatiq.actor(broker=self.broker, max_retries=0)
        def last(value: int = 0):
            done.set()

        @dramatiq.actor(broker=self.broker, max_retries=0)
        def start():
            parts = group([noop.message(i) for i in range(FAN_WIDTH)])
            parts.add_completion_callback(last.message())
            parts.run()

        self.start, self.noop, self.last, self.pipeline = start, noop, last, pipeline
        self.worker = dramatiq.Worker(self.broker, worker_threads=8)
        self.worker.start()

    def fan(self) -> float:
        self.done.clear()
        started = time.perf_counter()
        self.start.send()
        self.done.wait(120)
        return time.perf_counter() - started

    def chain(self) -> float:
        self.done.clear()
        steps = [self.noop.message_with_options(args=(i,), pipe_ignore=True) for i in range(CHAIN_LENGTH - 1)]
        started = time.perf_counter()
        self.pipeline([*steps, self.last.message()]).run()
        self.done.wait(120)
        return time.perf_counter() - started

    def close(self) -> None:
        self.worker.stop()
        self.broker.close()


# -- report ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--store-url", help="xingqiao's store: a scratch database, it creates tables (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--with-trace", action="store_true", help="also run the trace plugin (access log of every task)"
    )
    args = parser.parse_args()
    from kernel import logs

    logs.configure("WARNING", "console")
    server = RedisServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-xq-"))
    results: dict[str, dict[str, list[float]]] = {
        "xingqiao": {"fan": [], "chain": []},
        "dramatiq": {"fan": [], "chain": []},
    }
    try:
        watch = JobWatch()
        kernel = xingqiao_kernel(server.url, args.store_url, tmp, args.with_trace, watch)
        graphs = DramatiqGraphs(server.url)
        run_xingqiao(kernel, "bench_chain", watch)  # warm-up: imports, first connections, table pages
        graphs.chain()
        for _ in range(args.runs):  # NOTE: interleaved, so background load hits both alike
            results["xingqiao"]["fan"].append(run_xingqiao(kernel, "bench_fan", watch))
            results["dramatiq"]["fan"].append(graphs.fan())
            results["xingqiao"]["chain"].append(run_xingqiao(kernel, "bench_chain", watch))
            results["dramatiq"]["chain"].append(graphs.chain())
        graphs.close()
        kernel.shutdown()
    finally:
        server.stop()
    load = os.getloadavg()
    print(
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {load[0]:.2f}; {args.runs} run(s), medians; "
        f"store {'SQLite' if not args.store_url else args.store_url.split(':', 1)[0]}"
        f"{', trace on' if args.with_trace else ''}.\n"
    )
    print(
        "| graph | tasks | xingqiao wall | Dramatiq wall | xingqiao per task | Dramatiq per task "
        "| xingqiao / Dramatiq per run | median |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    for graph, tasks in (("fan", FAN_WIDTH + 2), ("chain", CHAIN_LENGTH)):
        ours = statistics.median(results["xingqiao"][graph])
        theirs = statistics.median(results["dramatiq"][graph])
        per_run = [a / b for a, b in zip(results["xingqiao"][graph], results["dramatiq"][graph], strict=True)]
        print(
            f"| {graph} | {tasks} | {ours * 1000:.0f} ms | {theirs * 1000:.0f} ms | {ours / tasks * 1000:.2f} ms "
            f"| {theirs / tasks * 1000:.2f} ms | {' '.join(f'{r:.2f}×' for r in per_run)} "
            f"| {statistics.median(per_run):.2f}× |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
