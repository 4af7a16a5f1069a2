"""Per-call enqueue in one script where the queue and the ready index share a server, and the
ready marks it leaves out — on a single Redis, through Twemproxy and on a Redis Cluster.

No timing asserts: the sweep that would find any message eventually is switched off
(``poll_max_interval`` of an hour), so a message that runs at all was found through its marks.
"""

from __future__ import annotations

import time

import pytest

from butterfly_mq import enqueue, get_message, producer
from butterfly_mq.connection import connect, shared_client
from butterfly_mq.queue import Queue
from butterfly_mq.ready import ReadyIndex

NO_SWEEP = {"poll_max_interval": 3600.0}
TOPICS = [f"/marks/t{i:02d}" for i in range(12)]


def marks(client, prefix) -> list[str]:
    """The topics of every ready mark of ``prefix`` (oldest first)."""
    _counter, _epoch, rows = ReadyIndex(prefix).read(client, 0)
    return [topic for topic, _number in rows]


def counter(client, prefix) -> int:
    return ReadyIndex(prefix).read(client, -1)[0]


def test_every_topic_is_marked_on_the_ready_index_server(redis_url, redis_client, redis_mode, prefix):
    for topic in TOPICS:
        enqueue(topic, {}, redis_url=redis_url, prefix=prefix)
    assert sorted(marks(redis_client, prefix)) == TOPICS
    client = shared_client(redis_url, cluster=redis_mode == "cluster")
    one_script = [producer._marked_keys(client, prefix, topic) is not None for topic in TOPICS]
    if redis_mode == "direct":
        assert all(one_script)
    elif redis_mode == "cluster":
        assert not any(one_script)


def test_a_message_behind_others_is_marked_every_hundredth(redis_server, prefix, monkeypatch):
    monkeypatch.setattr(producer, "MARK_EVERY", 5)
    url, topic = redis_server.url, "/marks/queue"
    redis_client = connect(url)
    first = enqueue(topic, {}, redis_url=url, prefix=prefix)
    assert counter(redis_client, prefix) == 1  # an empty queue: marked
    for _ in range(3):
        enqueue(topic, {}, redis_url=url, prefix=prefix)
    assert counter(redis_client, prefix) == 1  # behind others: a consumer popping it finds them
    enqueue(topic, {}, redis_url=url, prefix=prefix)
    assert counter(redis_client, prefix) == 2  # the fifth in the queue
    assert enqueue(topic, {}, redis_url=url, prefix=prefix, msg_id=first) == first
    assert counter(redis_client, prefix) == 2  # a known id: nothing stored, nothing marked
    enqueue(topic, {}, redis_url=url, prefix=prefix, delay=60)
    assert counter(redis_client, prefix) == 3  # delayed: always marked
    queue = Queue(redis_client, topic, prefix)
    assert len(queue.pop(10, 30_000, "w1", 3)) == 5
    enqueue(topic, {}, redis_url=url, prefix=prefix)
    assert counter(redis_client, prefix) == 4  # empty again: marked
    assert queue.counts()["queued"] == 1 and queue.counts()["scheduled"] == 1
    redis_client.close()


@pytest.mark.parametrize("burst", [1, 7, 40])
def test_a_consumer_finds_every_message_of_bursts_without_sweeps(mq_kernel, redis_url, prefix, mq, burst):
    kernel = mq_kernel(start=True, **NO_SWEEP)
    consumer = kernel.extensions["mq"].consumer
    mq.wait_for(lambda: consumer.cursor >= 0 and not consumer.hot)  # the start-up sweep is over
    ids = []
    for round_number in range(6):
        # other processes' producers: no in-process wake-up; bursts land on an empty queue, on
        # messages still queued and on a queue a consumer is popping
        ids += [enqueue("/t/ok", {"n": round_number}, redis_url=redis_url, prefix=prefix) for _ in range(burst)]
        time.sleep(0.02 * (round_number % 3))
    for msg_id in ids:
        mq.wait_for(lambda msg_id=msg_id: get_message(msg_id, topic="/t/ok", kernel=kernel)["state"] == "finished")


def test_a_producer_thread_gives_its_connection_back_when_it_ends(redis_server, prefix, mq):
    import threading

    observer = connect(redis_server.url)

    def connections() -> int:
        return len(observer.client_list())

    enqueue("/marks/threads", {}, redis_url=redis_server.url, prefix=prefix)  # the shared client exists
    before = connections()
    for _ in range(20):  # short-lived threads, one after another, each enqueueing once
        thread = threading.Thread(
            target=enqueue, args=("/marks/threads",), kwargs={"redis_url": redis_server.url, "prefix": prefix}
        )
        thread.start()
        thread.join()
    # each ended thread's connection went back to the pool and the next thread took it again
    mq.wait_for(lambda: connections() <= before + 1)
    assert Queue(observer, "/marks/threads", prefix).counts()["queued"] == 21
    observer.close()
