"""Compare-and-set under contention: 8 threads, 200 successful increments, no lost update."""

from __future__ import annotations

import threading

import pytest

THREADS, TOTAL = 8, 200


@pytest.mark.slow
def test_eight_threads_compare_and_set_one_item_without_losing_an_update(wuxing_kernel, wx, host_section):
    ns = host_section
    wx.instance_create(ns, "counter", "host", "1", {"i|cpu": 0})
    done = []  # one entry per successful CAS: (thread, old, new)
    lock = threading.Lock()
    errors = []

    def worker(index: int) -> None:
        try:
            while True:
                with lock:
                    if len(done) >= TOTAL:
                        return
                got = wuxing_kernel.call(
                    "/wuxing/instance_get", {"namespace": ns, "instance_name": "counter", "items": "i|cpu"}
                )
                current = got.data["data"]["i|cpu"]
                reply = wuxing_kernel.call(
                    "/wuxing/instance_update_item",
                    {
                        "namespace": ns,
                        "instance_name": "counter",
                        "item_name": "i|cpu",
                        "item_value": current + 1,
                        "item_value_old": current,
                    },
                    user=f"worker-{index}",
                )
                if reply.stat == "OK":
                    with lock:
                        done.append((index, current, current + 1))
                elif reply.stat != "ERR_ITEM_UPDATE_FAILED":
                    raise AssertionError(f"unexpected reply {reply.status} {reply.data}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[0]
    final = wx.instance_get(ns, "counter", items="i|cpu")["i|cpu"]
    successes = len(done)
    assert final == successes >= TOTAL  # every successful CAS is in the value: no lost update
    assert sorted(new for _, _, new in done) == list(range(1, successes + 1))
    item_id = wx.instance_get(ns, "counter", value_format="detail")["i|cpu"]["item_id"]
    history, page = [], 1
    while True:
        rows = wx.item_history_list(item_id, page_index=page, page_size=50, order="asc")["list"]
        history += rows
        if len(rows) < 50:
            break
        page += 1
    updates = [h for h in history if h["cmd"] == "update"]
    assert len(updates) == successes
    assert [(h["old_value"], h["new_value"]) for h in updates] == [(n, n + 1) for n in range(successes)]
    assert [h["id"] for h in history] == sorted(h["id"] for h in history)
    assert {h["user"] for h in updates} <= {f"worker-{i}" for i in range(THREADS)}
