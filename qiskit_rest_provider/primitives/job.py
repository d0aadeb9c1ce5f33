"""``RestPrimitiveJob``: a handle on one job of the service, found again by its id.

The job holds nothing but its id and a client; everything else is read from the service, so
``service.job(job_id)`` in a fresh Python process gives a job whose ``result()`` works exactly
like the original's. With a ``callback`` or ``progress=True``, waiting follows the service's
live event stream (D14) when it offers one. Otherwise waiting uses the service's long-poll
extension (``GET jobs/{id}?wait=S``, decision D6) when it honours it and falls back to adaptive
polling (50 ms first, backing off to 2 s) when it does not, so a finished job is noticed at once
without hammering the service.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qiskit.primitives import BasePrimitiveJob, PrimitiveResult
from qiskit.providers import JobStatus

from ..exceptions import (
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    QiskitRestProviderError,
    RequestError,
)
from ..wire import protocol
from .progress import ProgressReporter, progress_from_document
from .status import FINAL_STATES, REASON_MAX_TIME, is_transient, map_job_status, parse_time

if TYPE_CHECKING:  # pragma: no cover
    from ..backend import RestBackend
    from ..client import RuntimeClient

logger = logging.getLogger(__name__)

__all__ = ["RestPrimitiveJob", "map_job_status"]

LONG_POLL_MAX = 30.0  # seconds; the most a D6 long-poll may ask for
POLL_FIRST = 0.05  # seconds between the first polls when long-poll is unavailable
POLL_MAX = 2.0
TRANSIENT_GIVE_UP = 300.0  # seconds of consecutive transport failures before result() gives up


class RestPrimitiveJob(BasePrimitiveJob[PrimitiveResult, JobStatus]):
    """A sampler or estimator job on a Qiskit Runtime REST service.

    Example::

        job = sampler.run([(circuit,)], shots=1000)
        print(job.job_id(), job.status())
        counts = job.result()[0].data.meas.get_counts()

        same = service.job(job.job_id())   # later, in another process
        same.result()

    Args:
        client: the :class:`~qiskit_rest_provider.client.RuntimeClient` to talk through.
        job_id: the service's job id.
        program_id: ``"sampler"`` or ``"estimator"`` when known (read from the service otherwise).
        backend: the backend object, when the caller has it (what :meth:`backend` returns).
        backend_lookup: gives the backend object for a name, used by :meth:`backend` when
            ``backend`` was not given (the job's document names the backend); a
            :class:`~qiskit_rest_provider.ProviderService` passes its ``backend`` method.
        service: anything with a ``backend(name)`` method (a ``ProviderService``), a shorthand
            for ``backend_lookup=service.backend``.
        session_id: the session the job belongs to, when known.
        data: a job document already fetched (``GET jobs/{id}``), to avoid a first request.
    """

    def __init__(
        self,
        client: RuntimeClient,
        job_id: str,
        *,
        program_id: str | None = None,
        backend: RestBackend | None = None,
        backend_lookup: Callable[[str], RestBackend] | None = None,
        service: Any = None,
        session_id: str | None = None,
        tags: list[str] | None = None,
        data: dict | None = None,
        circuit_metadata: list[dict] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(job_id, **kwargs)
        self._client = client
        self._program_id = program_id
        self._backend = backend
        if backend_lookup is None and service is not None:
            backend_lookup = service.backend
        self._backend_lookup = backend_lookup
        self._session_id = session_id
        self._tags = list(tags) if tags is not None else None
        self._data: dict | None = None
        #: The final status a results read (D16) reported, when no job document says it yet.
        self._final_status: str | None = None
        self._result: PrimitiveResult | None = None
        self._lock = threading.Lock()
        # OpenQASM 3 does not carry circuit.metadata; the submitting process restores it.
        self._circuit_metadata = circuit_metadata
        self._long_poll: bool | None = None  # None: not yet known whether the service honours wait
        self._events_supported: bool | None = None  # None: not yet known (D14 event streams)
        self._reporter: ProgressReporter | None = None  # set while a wait reports progress
        self._progress: dict | None = None
        if data:
            self._absorb(data)

    # ------------------------------------------------------------------ job document
    def _absorb(self, data: dict) -> None:
        self._data = data
        program = data.get("program")
        if isinstance(program, dict) and program.get("id"):
            self._program_id = program["id"]
        elif isinstance(data.get("program_id"), str):
            self._program_id = data["program_id"]
        if data.get("session_id"):
            self._session_id = data["session_id"]
        if isinstance(data.get("tags"), list):
            self._tags = list(data["tags"])
        status, reason, _ = self._state(data)
        if status is not None and (self._progress or {}).get("state") != status:
            self._progress = progress_from_document(self._job_id, status, reason)
            if self._reporter is not None:  # no event stream: report what the polls see
                self._reporter(self._progress)

    def _refresh(self, wait: float | None = None, deadline: float | None = None) -> dict:
        kwargs: dict[str, Any] = {}
        if wait is not None:
            kwargs["wait"] = wait
        if deadline is not None:
            # Bound the request itself, retries included: a poll that hangs or a service that is
            # down must not hold result(timeout=...) past its deadline.
            kwargs["timeout"] = max(deadline - time.monotonic(), 0.05)
        data = self._client.job(self._job_id, **kwargs)
        self._absorb(data)
        return data

    def _document(self) -> dict:
        if self._data is None:
            return self._refresh()
        return self._data

    @staticmethod
    def _state(data: dict) -> tuple[str | None, str | None, Any]:
        state = data.get("state")
        status = reason = reason_code = None
        if isinstance(state, dict):
            status = state.get("status")
            reason = state.get("reason")
            reason_code = state.get("reason_code", state.get("reasonCode"))
        elif isinstance(state, str):
            status = state
        if status is None:
            status = data.get("status")
        return status, reason, reason_code

    # ------------------------------------------------------------------ status
    def status(self) -> JobStatus:
        """The job's current status (one request unless the job is known to be final)."""
        if self._data is not None:
            cached = map_job_status(*self._state(self._data)[::2])
            if cached in FINAL_STATES:
                return cached
        if self._final_status is not None:
            return map_job_status(self._final_status, None)
        status, _, code = self._state(self._refresh())
        return map_job_status(status, code)

    def done(self) -> bool:
        """Whether the job completed successfully."""
        return self.status() is JobStatus.DONE

    def running(self) -> bool:
        """Whether the job is running now."""
        return self.status() is JobStatus.RUNNING

    def cancelled(self) -> bool:
        """Whether the job was cancelled."""
        return self.status() is JobStatus.CANCELLED

    def in_final_state(self) -> bool:
        """Whether the job is done, failed or cancelled (it will not change any more)."""
        return self.status() in FINAL_STATES

    def cancel(self) -> None:
        """Ask the service to cancel the job (queued or running).

        Raises:
            ConflictError: the job has already reached a final state.
        """
        self._client.cancel_job(self._job_id)
        self._data = None

    def error_message(self) -> str | None:
        """The service's reason for a failed or cancelled job, else ``None``."""
        data = self._document()
        status, reason, code = self._state(data)
        if map_job_status(status, code) not in (JobStatus.ERROR, JobStatus.CANCELLED):
            return None
        text = f"Job {self._job_id} {str(status).lower()}"
        if code is not None:
            text += f" (reason code {code})"
        return f"{text}: {reason}" if reason else text

    # ------------------------------------------------------------------ waiting
    def progress(self) -> dict:
        """The latest known progress: ``state``, ``queue_position``, ``pubs_done``, ``pubs_total``.

        What the last event (or job document) said; one request only when nothing is known
        yet. ``queue_position`` (Queued jobs ahead) and the PUB counts are ``None`` where the
        service did not say (no event stream, or not known at that point). ``pubs_done`` is
        ``pubs_total`` once Completed and 0 before (no per-PUB progress yet).
        """
        if self._progress is None:
            self._refresh()
        return dict(self._progress or progress_from_document(self._job_id, None, None))

    def wait_for_final_state(
        self,
        timeout: float | None = None,
        callback: Callable[[dict], Any] | None = None,
        progress: bool = False,
    ) -> JobStatus:
        """Block until the job is final, or raise :class:`JobTimeoutError` after ``timeout`` s.

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as the job takes.
            callback: called with each event's data (``state``, ``reason``, ``queue_position``,
                ``pubs_done``, ``pubs_total``) as it happens: from the service's event stream
                (D14) when it offers one, else once per state change the long-poll sees.
            progress: show a tqdm bar on a terminal (if tqdm is installed; else nothing).
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        if callback is None and not progress:
            return self._wait_polling(timeout, deadline)
        reporter = ProgressReporter(self._job_id, callback, bar=progress)
        try:
            if self._events_supported is not False:
                status = self._wait_events(timeout, deadline, reporter)
                if status is not None:
                    return status
            self._reporter = reporter
            if self._progress is not None and reporter.last is None:
                reporter(self._progress)
            return self._wait_polling(timeout, deadline)
        finally:
            self._reporter = None
            reporter.close()

    def _wait_events(
        self, timeout: float | None, deadline: float | None, reporter: ProgressReporter
    ) -> JobStatus | None:
        """Follow the event stream to the final state; ``None``: fall back to the long-poll."""
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.05)
        try:
            for event in self._client.job_events(self._job_id, timeout=remaining):
                self._events_supported = True
                data = event.get("data")
                if not isinstance(data, dict):
                    continue
                self._progress = dict(data)
                reporter(data)
                if event.get("event") == protocol.EVENT_FINAL:
                    status, _, code = self._state(self._refresh(deadline=deadline))
                    return map_job_status(status, code)
        except NotFoundError:
            if self._events_supported is None:
                logger.debug("no event stream for job %s; using the long-poll", self._job_id)
                self._events_supported = False
                return None
            raise
        except RequestError as exc:
            if not is_transient(exc):
                raise
            logger.info("job %s: event stream failed (%s); polling instead", self._job_id, exc)
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            raise JobTimeoutError(
                f"Timed out after {timeout} s waiting for job {self._job_id} "
                f"(state {(self._progress or {}).get('state')}); the job goes on"
            )
        return None

    def _wait_polling(self, timeout: float | None, deadline: float | None) -> JobStatus:
        """Long-poll (D6), else adaptive polling, until final or ``deadline``."""
        interval = POLL_FIRST
        early = 0
        failing_since: float | None = None
        data = self._data
        if data is None and self._long_poll is not False:
            # Nothing known yet: start with a long-poll instead of a plain GET (one request less).
            data = {"state": {"status": protocol.QUEUED}}
        while True:
            try:
                if data is None:
                    data = self._refresh(deadline=deadline)
                status, _, code = self._state(data)
                mapped = map_job_status(status, code)
                failing_since = None
            except RequestError as exc:
                if not is_transient(exc):
                    raise
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > TRANSIENT_GIVE_UP:
                    raise
                if deadline is not None and now >= deadline:
                    raise JobTimeoutError(
                        f"Timed out after {timeout} s waiting for job {self._job_id}: "
                        f"the service is unreachable ({exc})"
                    ) from exc
                logger.info("waiting for job %s: transient error (%s), retrying", self._job_id, exc)
                mapped, data = JobStatus.RUNNING, None
                self._sleep(min(interval, POLL_MAX), deadline)
                interval = min(interval * 2, POLL_MAX)
                continue
            if mapped in FINAL_STATES:
                return mapped
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise JobTimeoutError(
                    f"Timed out after {timeout} s waiting for job {self._job_id} "
                    f"(status {mapped.name}); the job goes on"
                )
            if self._long_poll is not False and (remaining is None or remaining >= 0.1):
                wait = LONG_POLL_MAX if remaining is None else min(LONG_POLL_MAX, remaining)
                wait = round(max(wait, 0.1), 3)
                start = time.monotonic()
                data = None
                try:
                    data = self._refresh(wait=wait, deadline=deadline)
                except RequestError as exc:
                    if not is_transient(exc):
                        raise
                    data = None  # handled (with the deadline) at the top of the loop
                    continue
                elapsed = time.monotonic() - start
                status, _, code = self._state(data)
                if map_job_status(status, code) in FINAL_STATES:
                    self._long_poll = True
                    continue
                if elapsed < min(wait, 1.0) * 0.5:
                    # Answered early while not final: a state change, or a service ignoring wait.
                    early += 1
                    if early >= 3:
                        logger.debug("service ignores ?wait=; polling job %s instead", self._job_id)
                        self._long_poll = False
                    self._sleep(interval, deadline)
                    interval = min(interval * 1.5, POLL_MAX)
                else:
                    early = 0
                    self._long_poll = True
                continue
            self._sleep(interval, deadline)
            interval = min(interval * 1.5, POLL_MAX)
            data = None

    @staticmethod
    def _sleep(seconds: float, deadline: float | None) -> None:
        if deadline is not None:
            seconds = min(seconds, max(0.0, deadline - time.monotonic()))
        if seconds > 0:
            time.sleep(seconds)

    def result(
        self,
        timeout: float | None = None,
        callback: Callable[[dict], Any] | None = None,
        progress: bool = False,
    ) -> PrimitiveResult:
        """Wait for the job and return its :class:`PrimitiveResult` (cached after the first call).

        Example::

            result = job.result(callback=lambda e: print(e["state"], e["queue_position"]))

        Args:
            timeout: seconds to wait at most; ``None`` waits as long as the job takes.
            callback: called with each event's data while waiting (see
                :meth:`wait_for_final_state`).
            progress: show a tqdm bar on a terminal while waiting (if tqdm is installed).

        Raises:
            JobTimeoutError: the job was not final after ``timeout`` seconds (it goes on).
            JobFailedError: the job failed; carries the service's ``reason`` and ``reason_code``.
            JobCancelledError: the job was cancelled.
        """
        if self._result is not None:
            return self._result
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        body = None
        if callback is not None or progress:
            status = self.wait_for_final_state(timeout, callback=callback, progress=progress)
        else:
            if getattr(self._client, "results_wait", None):  # D16, once announced
                body = self._results_when_final(deadline)
            if body is None:  # the same deadline: time spent above counts
                status = self._wait_polling(timeout, deadline)
        with self._lock:
            if self._result is not None:
                return self._result
            if body is None:
                if status is not JobStatus.DONE:
                    raise self._failure(status)
                body = self._fetch_results(deadline, timeout)
            from ..wire.results import decode_result

            if not body:  # 204: a private job's results, already read once
                raise QiskitRestProviderError(
                    f"Job {self._job_id} is private and its results were already retrieved: "
                    "a private job's results can be read once only"
                )
            result = decode_result(body)
            if self._circuit_metadata:
                for pub_result, metadata in zip(result, self._circuit_metadata, strict=False):
                    if metadata and not pub_result.metadata.get("circuit_metadata"):
                        pub_result.metadata["circuit_metadata"] = metadata
            self._result = result
            return result

    def _results_when_final(self, deadline: float | None) -> bytes | None:
        """A Completed job's result body, waited for on the results route itself (D16).

        One request per job where a status long-poll and a results read take two (about a
        fifth of a small job's round trip). ``None`` hands over to the status wait, which then
        finds anything but a Completed job at once and reports it as usual (a failure, a
        cancel, a transport error, a deadline about to pass): this path only ever shortens
        the way to a result.
        """
        if self._data is not None and map_job_status(*self._state(self._data)[::2]) in FINAL_STATES:
            return None  # known final: the usual way reads the document it already has
        while True:
            wait = LONG_POLL_MAX
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait < 0.1:
                    return None
            try:
                answer = self._client.job_results_when_final(
                    self._job_id, wait=round(wait, 3), deadline=deadline
                )
            except RequestError:
                return None
            if answer is None:
                continue  # not final yet: wait again
            status, body = answer
            if status != protocol.COMPLETED:
                return None
            # The status only: the job document (created, tags, ...) is read when asked for.
            self._final_status = status
            return body

    def _fetch_results(self, deadline: float | None, timeout: float | None) -> bytes:
        """GET the results body, within what is left of ``result(timeout=...)``."""
        if deadline is None:
            return self._client.job_results(self._job_id)
        try:
            return self._client.job_results(
                self._job_id, timeout=max(deadline - time.monotonic(), 0.05)
            )
        except RequestError as exc:
            if is_transient(exc) and time.monotonic() >= deadline - 0.1:
                raise JobTimeoutError(
                    f"Timed out after {timeout} s fetching the results of job {self._job_id} "
                    f"({exc}); the results stay on the service"
                ) from exc
            raise

    def _failure(self, status: JobStatus) -> JobFailedError:
        data = self._document()
        raw, reason, code = self._state(data)
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        if not reason and status is JobStatus.ERROR:
            try:
                body: Any = self._client.job_results(self._job_id)
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
                reason = text.strip()[-2000:] or None
            except RequestError:
                reason = None
        detail = f" (reason code {code})" if code is not None else ""
        detail += f": {reason}" if reason else ""
        if status is JobStatus.CANCELLED:
            return JobCancelledError(
                f"Job {self._job_id} was cancelled{detail}",
                job_id=self._job_id,
                reason=reason,
                reason_code=code,
            )
        if code == REASON_MAX_TIME:
            what = "ran longer than its maximum execution time"
        else:
            what = f"failed (status {raw})"
        return JobFailedError(
            f"Job {self._job_id} {what}{detail}",
            job_id=self._job_id,
            reason=reason,
            reason_code=code,
        )

    # ------------------------------------------------------------------ details
    @property
    def program_id(self) -> str | None:
        """``"sampler"`` or ``"estimator"``."""
        if self._program_id is None:
            self._document()
        return self._program_id

    primitive_id = program_id

    @property
    def session_id(self) -> str | None:
        """The id of the session or batch the job ran in, else ``None``."""
        if self._session_id is None and self._data is None:
            self._document()
        return self._session_id

    @property
    def creation_date(self) -> datetime | None:
        """When the service accepted the job (timezone-aware UTC)."""
        return parse_time(self._document().get("created"))

    @property
    def tags(self) -> list[str]:
        """The job's tags."""
        if self._tags is None:
            self._document()
        return list(self._tags or [])

    def update_tags(self, new_tags: list[str]) -> list[str]:
        """Replace the job's tags on the service; returns the new tags."""
        if isinstance(new_tags, str) or not all(isinstance(t, str) for t in new_tags):
            raise ValueError("new_tags must be a list of strings")
        self._client.update_job_tags(self._job_id, list(new_tags))
        self._tags = list(new_tags)
        if self._data is not None:
            self._data["tags"] = list(new_tags)
        return list(new_tags)

    @property
    def backend_name(self) -> str | None:
        """The name of the backend the job runs on."""
        if self._backend is not None:
            return self._backend.name
        return self._document().get("backend")

    def backend(self) -> RestBackend | None:
        """The backend the job runs on (looked up by name on first use when not given)."""
        if self._backend is None and self._backend_lookup is not None:
            name = self.backend_name
            if name:
                self._backend = self._backend_lookup(name)
        return self._backend

    @property
    def inputs(self) -> dict:
        """The job's ``params`` as the service stored them (one request; raw JSON form)."""
        return self._client.job(self._job_id, exclude_params=False).get("params") or {}

    def logs(self) -> str:
        """The job's log text."""
        return self._client.job_logs(self._job_id)

    def metrics(self) -> dict:
        """The job's metrics (timestamps, usage seconds, circuit counts)."""
        return self._client.job_metrics(self._job_id)

    def usage(self) -> float:
        """Quantum seconds the job used (0 while it has not finished)."""
        usage = self.metrics().get("usage") or {}
        for key in ("qpu_charge_time_seconds", "quantum_seconds", "seconds"):
            value = usage.get(key)
            if value is not None:
                if usage.get("status") == "pending":
                    return 0.0
                return float(value)
        return 0.0

    def usage_estimation(self) -> dict:
        """The service's estimate of the job's running time, when it gives one."""
        value = self._document().get("estimated_running_time_seconds")
        return {"quantum_seconds": value} if value is not None else {}

    def __repr__(self) -> str:
        program = self._program_id or "job"
        return f"<RestPrimitiveJob {program} id={self._job_id!r}>"
