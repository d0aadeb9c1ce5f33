"""Unit tests of the job watchers: long-polls wake on final changes, event streams on every one."""

from __future__ import annotations

import asyncio
import threading
import time

from qiskit_rest_provider.server.jobs.watchers import JobWatchers


def test_a_long_poll_sleeps_through_non_final_changes_and_wakes_on_the_final_one():
    async def scenario() -> tuple[bool, bool, bool]:
        watchers = JobWatchers()
        poll = watchers.register("j", final_only=True)
        stream = watchers.register("j")
        # from another thread, as the dispatcher does: the job started (not final)
        threading.Thread(target=watchers.notify, args=("j",), kwargs={"final": False}).start()
        t0 = time.monotonic()
        await stream.wait(5.0)  # returns when notified (or after 5 s: a failure)
        stream_woken = time.monotonic() - t0 < 4.0
        await asyncio.sleep(0.05)
        poll_woken_early = poll.event.is_set()
        threading.Thread(target=watchers.notify, args=("j",)).start()  # completed
        await asyncio.wait_for(poll.event.wait(), 5.0)
        return poll_woken_early, stream_woken, poll.event.is_set()

    early, stream, final = asyncio.run(scenario())
    assert not early and stream and final


def test_fresh_results_are_bounded_per_body_and_in_all():
    from qiskit_rest_provider.server.jobs.watchers import FreshResults

    fresh = FreshResults(max_body=10, max_total=25)
    fresh.put("big", b"x" * 11)  # over max_body: never kept
    assert fresh.get("big") is None
    for name in ("a", "b", "c"):
        fresh.put(name, name.encode() * 10)
    assert fresh.get("a") is None  # 30 bytes > 25: the oldest left
    assert fresh.get("b") == b"b" * 10 and fresh.get("c") == b"c" * 10
    fresh.put("b", b"B")  # replaced, not counted twice: room for another body
    fresh.put("d", b"d" * 10)
    assert [fresh.get(k) for k in "bcd"] == [b"B", b"c" * 10, b"d" * 10]
    fresh.drop("c")
    assert fresh.get("c") is None
    fresh.put("e", b"e" * 10)
    fresh.put("f", b"f" * 4)  # 1 + 10 + 10 + 4 = 25: all still fit
    assert all(fresh.get(k) is not None for k in "bdef")
