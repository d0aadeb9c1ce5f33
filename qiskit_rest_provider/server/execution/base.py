"""The executor interface: all the job dispatcher knows of where jobs run.

The dispatcher hands an :class:`ExecutionTask` to a :class:`JobExecutor` and gets a future back;
it can kill that future's task. The local worker pool (:mod:`.pool`) implements it, and a cluster
executor can take its place without the dispatcher changing.
"""

from __future__ import annotations

import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

__all__ = ["ExecutionTask", "JobExecutor", "TaskKilled", "WorkerDied"]


@dataclass
class ExecutionTask:
    """One job handed to a worker: either already prepared, or raw params to prepare."""

    job_id: str
    program_id: str
    backend: str
    params: bytes | None = None  # JSON of the job's params (used when ``prepared`` is None)
    prepared: Any = None  # runner.PreparedJob from the route's validation, if still in memory


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
