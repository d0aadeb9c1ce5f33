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
