"""The executor interface: all the job dispatcher knows of where jobs run.

The dispatcher hands an :class:`ExecutionTask` to a :class:`JobExecutor` and gets a future back;
it can kill that future's task. The local worker pool (:mod:`.pool`) implements it, and a cluster
executor can take its place without the dispatcher changing.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ExecutionOutcome",
    "ExecutionTask",
    "JobExecutor",
    "JobPart",
    "PreparedJob",
    "TaskKilled",
    "WorkerDied",
]


@dataclass
class PreparedJob:
    """A validated job, ready to execute (picklable: it travels to worker processes).

    ``decoded`` holds what the executor and noise-learner admissions decoded from ``payload``
    (the ``QuantumProgram``, the layers to learn) for a worker in the *same* process: a job
    prepared in the worker (after a restart, or claimed by another replica) runs it without a
    second decode (that path's CPU before simulating: 18 -> 12.5 ms). It is left out when the
    job is pickled to a worker process, which decodes ``payload`` again: measured on a twirled
    27-qubit executor-estimator program (``benchmarks/executor_decode.py``, CPU), a pickle round
    trip of the decoded program costs ~17 ms (145 kB: the finalized samplex) against ~5 ms to
    decode the 70 kB params again, whose own round trip costs 0.03 ms.
    """

    program_id: str
    backend_name: str
    pubs: list
    options: dict
    support_qiskit: bool
    resilience_level: int | None = None
    pub_shots: list = field(default_factory=list)  # estimator: shots behind each precision
    payload: dict | None = None  # executor, noise learner: the validated params
    shots: int | None = None  # executor, noise learner: total shots (the daily quota counts them)
    decoded: Any = field(default=None, repr=False, compare=False)  # in-process only (see above)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["decoded"] = None  # cheaper to decode payload again than to pickle it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class ExecutionOutcome:
    """What a worker hands back: the encoded result body and what it cost."""

    result_body: bytes
    quantum_seconds: float
    metrics: dict
    pieces: list[bytes | None] | None = None  # a part of a split job: one encoded piece per PUB ...
    chunk_arrays: dict = field(default_factory=dict)  # ... or, per PUB, its chunks' BitArrays
    result_metadata: dict | None = None  # a part's result-level metadata


@dataclass
class JobPart:
    """Which share of a job a task runs, when the job is split across workers (:mod:`.split`).

    The task's ``prepared`` then holds only this part's PUBs; these fields place them in the job
    (seeds derive from job positions, so the merged result is the one an unsplit run gives).
    """

    index: int  # the part's place among the job's parts
    pub_indices: list[int]  # job index of each of the part's PUBs
    offsets: list[int]  # sampler: job experiment offset of each PUB
    chunks: list[tuple[int, int] | None]  # sampler: shot chunks ``(first, stop)`` (None = all)


@dataclass
class ExecutionTask:
    """One job handed to a worker: either already prepared, or raw params to prepare."""

    job_id: str
    program_id: str
    backend: str
    params: bytes | None = None  # JSON of the job's params (used when ``prepared`` is None)
    prepared: PreparedJob | None = None  # from the route's admission, if still in memory
    prepare: Callable[[str, dict, Any], PreparedJob] | None = None
    """Admission's ``prepare_job`` (a module-level function: it pickles by reference), for a
    job that only has its stored ``params`` (after a restart)."""
    attempt: int = 0  # earlier attempts that ended with a dead worker
    priority: int = 0  # higher runs first where tasks wait (a cluster's scheduler)
    part: JobPart | None = None
    """Set when the task runs one part of a split job: the worker then answers with per-PUB
    result pieces (``pieces``) instead of a whole result body."""


class WorkerDied(BrokenProcessPool):
    """The worker process running the task exited (crash, OOM kill) before answering."""


class TaskKilled(WorkerDied):
    """The task was stopped on purpose (:meth:`JobExecutor.kill`)."""


class JobExecutor(cf.Executor):
    """Interface of a job executor.

    Attributes:
        capacity: how many tasks may run at once.
    """

    capacity: int = 1

    def run_job(self, task: ExecutionTask) -> cf.Future[dict[str, Any]]:  # pragma: no cover
        """Start one job; the future's result is the worker's plain-dict outcome."""
        raise NotImplementedError

    def kill(self, future: cf.Future[Any]) -> bool:  # pragma: no cover - interface
        """Stop the task behind ``future`` (running or pending); True if it was found."""
        raise NotImplementedError

    def warm_up(self, *, wait: bool = False, timeout: float = 300.0) -> None:
        """Get workers ready (with ``wait``: block until one is, at most ``timeout`` s)."""
