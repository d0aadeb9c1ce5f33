"""``RuntimeClient``: one method per Runtime REST endpoint, plain dicts in and out.

The client owns one :class:`~qiskit_rest_provider.client.transport.Transport` (a keep-alive
``requests.Session``) and one authenticator. Every runtime request carries ``IBM-API-Version``,
``X-Qx-Client-Application``, JSON content types and the channel's credentials; channel
differences (classic ``hub``/``group``/``project`` in job bodies, ``provider`` on listings,
``instance`` for sessions) are handled here so callers never see them.

Example (building the client makes no request; the listing needs a live server, so that line is
skipped when the docs run):
    >>> from qiskit_rest_provider.account import Account
    >>> client = RuntimeClient(Account("ibm_quantum_platform", "http://127.0.0.1:8000", "KEY"))
    >>> client.runtime_url
    'http://127.0.0.1:8000/api/v1'
    >>> [b["name"] for b in client.backends()]  # doctest: +SKIP
    ['rest_hex_127q', 'rest_hex_27q', 'rest_line_5q', 'rest_line_5q_ecr', 'rest_simulator']
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ..exceptions import ConflictError, NotFoundError, RequestError
from ..wire import protocol
from .base import API_VERSION, _dumps, client_app_header
from .events import JobEventsEndpoints
from .transpile import TranspileEndpoints

__all__ = ["API_VERSION", "RuntimeClient", "client_app_header"]

logger = logging.getLogger(__name__)

#: Extra read-timeout margin over a long-poll ``wait``, in seconds.
LONG_POLL_MARGIN = 15.0
#: Longest long-poll the protocol allows (D6).
MAX_WAIT = protocol.MAX_WAIT_SECONDS
#: The optional binary result container (named in the Qiskit-free ``wire.protocol``).
#: Services that do not know it answer JSON.
BINARY_RESULT = protocol.BINARY_RESULT_MEDIA_TYPE
RESULTS_ACCEPT = f"{BINARY_RESULT}, {protocol.JSON_MEDIA_TYPE};q=0.9"


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:  # naive datetimes are taken as local time, like qiskit-ibm-runtime
        value = value.astimezone()
    return value.astimezone(timezone.utc).isoformat()


def _q(segment: str) -> str:
    """Quote one path segment (job ids and backend names never contain '/', but be safe)."""
    return quote(str(segment), safe="")


class RuntimeClient(TranspileEndpoints, JobEventsEndpoints):
    """HTTP client of one Runtime REST service (one per :class:`ProviderService`).

    One method per REST endpoint, returning plain data (the transpile endpoints come from
    :class:`~qiskit_rest_provider.client.transpile.TranspileEndpoints`, the job event streams
    from :class:`~qiskit_rest_provider.client.events.JobEventsEndpoints`). Constructor arguments
    are those of :class:`~qiskit_rest_provider.client.base.BaseClient`; no request is made until
    the first call.
    """

    #: The longest ``wait`` the service's results route honours (D16), once a ``POST /jobs``
    #: answer announced it in ``X-Results-Wait``; ``None`` until then (and for a service without
    #: it), so :meth:`job_results_when_final` is only used where it is known to work.
    results_wait: float | None = None

    # ------------------------------------------------------------------ backends

    def backends(self, *, include_mocks: bool = False) -> list[dict]:
        """All backends of the instance, in one request (``GET /backends``).

        Args:
            include_mocks: also return dry-run twins (entries with ``"class": "mock"``), which
                a service lists for qiskit-ibm-runtime's ``dry_run`` and no one runs real work on.

        Returns:
            One dict per backend with at least ``"name"``; with the current API version also
            ``status`` (``{"name": "online"|"paused"|"offline"}``), ``is_simulator``, ``qubits``
            and ``queue_length``. A names-only answer (older services) gives ``{"name": ...}``.
        """
        body = self.get_json("backends", params=self._provider_params())
        devices = body.get("devices", []) if isinstance(body, dict) else body
        if not isinstance(devices, list):
            raise RequestError("GET /backends: unexpected answer (no 'devices' list)")
        out = []
        for item in devices:
            if isinstance(item, str):
                out.append({"name": item})
            elif isinstance(item, dict) and "name" in item:
                if include_mocks or item.get("class") != "mock":
                    out.append(item)
        return out

    def backend_configuration(self, name: str) -> dict:
        """``GET /backends/{name}/configuration``: the IBM-format configuration dict."""
        return self.get_json(f"backends/{_q(name)}/configuration", params=self._provider_params())

    def backend_properties(self, name: str) -> dict | None:
        """``GET /backends/{name}/properties``, or ``None`` when the backend has none."""
        try:
            body = self.get_json(f"backends/{_q(name)}/properties", params=self._provider_params())
        except NotFoundError:
            # An unknown backend must still raise: tell the two 404s apart by the configuration.
            self.backend_configuration(name)
            return None
        return body or None

    def backend_status(self, name: str) -> dict:
        """``GET /backends/{name}/status``: ``{"state", "status", "message", "length_queue"}``."""
        return self.get_json(f"backends/{_q(name)}/status", params=self._provider_params())

    # ------------------------------------------------------------------ jobs

    def create_job(
        self,
        *,
        program_id: str,
        backend: str,
        params: dict | bytes,
        session_id: str | None = None,
        tags: list[str] | None = None,
        log_level: str | None = None,
        cost: int | None = None,
        private: bool | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> dict:
        """``POST /jobs``: submit a job; safe to retry thanks to an ``Idempotency-Key``.

        Every retry of this one call sends the same key, so a service that implements D7 answers
        a repeat with the first job instead of creating another; a service that ignores the
        header still gets at most one job per *accepted* request.

        Args:
            program_id: ``"sampler"`` or ``"estimator"``.
            backend: backend name.
            params: the program inputs (a dict, or its JSON encoding as bytes).
            session_id: the session or batch the job joins.
            tags: job tags.
            log_level: e.g. ``"WARNING"``.
            cost: maximum execution time in seconds.
            private: hide params and read results once.
            idempotency_key: the key to send (a fresh uuid4 when omitted).
            timeout: read timeout for this request (default ``submit_timeout``).

        Returns:
            The service's answer: ``{"id", "backend", ...}``.
        """
        body: dict[str, Any] = {"program_id": program_id, "backend": backend}
        if session_id is not None:
            body["session_id"] = session_id
        if tags:
            body["tags"] = list(tags)
        if log_level is not None:
            body["log_level"] = log_level
        if cost is not None:
            body["cost"] = int(cost)
        if private is not None:
            body["private"] = bool(private)
        hgp = self.account.hgp
        if hgp is not None:
            body["hub"], body["group"], body["project"] = hgp
        if isinstance(params, (bytes, bytearray, memoryview)):
            # Splice pre-encoded params without decoding them again.
            head = _dumps(body)
            encoded = head[:-1] + b',"params":' + bytes(params) + b"}"
        else:
            encoded = _dumps({**body, "params": params})
        key = idempotency_key or str(uuid.uuid4())
        response = self.request(
            "POST",
            "jobs",
            data=encoded,
            headers={protocol.IDEMPOTENCY_KEY_HEADER: key},
            idempotent=True,
            timeout=self.submit_timeout if timeout is None else timeout,
        )
        result = self._json(response, "POST /jobs")
        if not isinstance(result, dict) or "id" not in result:
            raise RequestError("POST /jobs: the answer has no job id", status_code=200)
        announced = response.headers.get(protocol.RESULTS_WAIT_HEADER)
        if announced is not None:
            try:
                seconds = float(announced)
            except ValueError:
                seconds = 0.0
            self.results_wait = (
                min(seconds, MAX_WAIT) if math.isfinite(seconds) and seconds > 0 else None
            )
        result.setdefault("backend", backend)
        return result

    def job(
        self,
        job_id: str,
        *,
        exclude_params: bool = True,
        wait: float | None = None,
        timeout: float | None = None,
    ) -> dict:
        """``GET /jobs/{id}``: job details (``state.status`` etc.).

        Args:
            job_id: the job id.
            exclude_params: leave the (possibly large) params out.
            wait: long-poll (D6): the service answers as soon as the job is final or after
                ``wait`` seconds (capped at 30). A service without long-poll answers at once.
                The read timeout is raised above ``wait`` for this call.
            timeout: give up after about this many seconds, retries included (raises
                :class:`RequestError`); lets ``result(timeout=...)`` keep its promise.
        """
        params: dict[str, Any] = {"exclude_params": "true" if exclude_params else "false"}
        read_timeout = None
        if wait is not None and wait > 0:
            wait = min(float(wait), MAX_WAIT)
            params[protocol.WAIT_QUERY_PARAM] = f"{wait:g}"
            read_timeout = max(self.transport.read_timeout, wait + LONG_POLL_MARGIN)
        deadline = None
        if timeout is not None:
            deadline = time.monotonic() + max(float(timeout), 0.05)
        return self.get_json(
            f"jobs/{_q(job_id)}", params=params, timeout=read_timeout, deadline=deadline
        )

    def job_results(
        self, job_id: str, *, binary: bool = True, timeout: float | None = None
    ) -> bytes:
        """``GET /jobs/{id}/results``: the raw body.

        JSON text, or error text for failed jobs. With ``binary`` (the default) the request
        also accepts the binary result container, which a service that offers it sends for
        Qiskit-encoded results; ``wire.decode_result`` reads every form (it recognises the
        container by its magic bytes). ``binary=False`` asks for JSON only. ``timeout`` bounds
        the whole call, retries included, in seconds.
        """
        headers = {"Accept": RESULTS_ACCEPT if binary else "application/json"}
        deadline = None if timeout is None else time.monotonic() + max(float(timeout), 0.05)
        return self.request(
            "GET", f"jobs/{_q(job_id)}/results", headers=headers, deadline=deadline
        ).content

    def job_results_when_final(
        self, job_id: str, *, wait: float, binary: bool = True, deadline: float | None = None
    ) -> tuple[str, bytes] | None:
        """``GET /jobs/{id}/results?wait=S`` (D16): the job's status and result body once final.

        One request where a status long-poll and a results read take two. Only for a service
        that announced D16 (:attr:`results_wait`): another could answer a job not yet final in
        its own way.

        Args:
            job_id: the job id.
            wait: seconds the service may hold the answer (capped at :attr:`results_wait`).
            binary: also accept the binary result container (as :meth:`job_results`).
            deadline: ``time.monotonic()`` instant bounding the call, retries included.

        Returns:
            ``(status, body)``: the ``X-Job-Status`` of the answer (``""`` if the service left
            it out) and the body, as :meth:`job_results` gives it; ``None`` when the job was
            still not final after ``wait`` seconds.
        """
        wait = min(float(wait), self.results_wait or MAX_WAIT)
        headers = {"Accept": RESULTS_ACCEPT if binary else "application/json"}
        try:
            response = self.request(
                "GET",
                f"jobs/{_q(job_id)}/results",
                params={protocol.WAIT_QUERY_PARAM: f"{wait:g}"},
                headers=headers,
                timeout=max(self.transport.read_timeout, wait + LONG_POLL_MARGIN),
                deadline=deadline,
            )
        except ConflictError:
            return None  # 409 job_not_final: the time was up first
        return response.headers.get(protocol.JOB_STATUS_HEADER, ""), response.content

    def jobs(
        self,
        *,
        limit: int | None = None,
        skip: int = 0,
        backend_name: str | None = None,
        pending: bool | None = None,
        program_id: str | None = None,
        job_tags: Iterable[str] | None = None,
        session_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        descending: bool = True,
        exclude_params: bool = True,
        **extra: Any,
    ) -> dict:
        """``GET /jobs``: one page of jobs, newest first unless ``descending=False``.

        Returns:
            ``{"jobs": [...], "count": total_matching, ...}``; ``count`` ignores ``limit``/``skip``.
        """
        params: list[tuple[str, str]] = [("exclude_params", "true" if exclude_params else "false")]
        if limit is not None:
            params.append(("limit", str(int(limit))))
        if skip:
            params.append(("offset", str(int(skip))))
        if backend_name:
            params.append(("backend", backend_name))
        if pending is not None:
            params.append(("pending", "true" if pending else "false"))
        if program_id:
            params.append(("program", program_id))
        for tag in job_tags or ():
            params.append(("tags", tag))
        if session_id:
            params.append(("session_id", session_id))
        if created_after is not None:
            params.append(("created_after", _iso(created_after)))
        if created_before is not None:
            params.append(("created_before", _iso(created_before)))
        if not descending:
            params.append(("sort", "ASC"))
        params.extend(self._provider_params().items())
        params.extend((k, str(v)) for k, v in extra.items() if v is not None)
        body = self.get_json("jobs", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
            raise RequestError("GET /jobs: unexpected answer (no 'jobs' list)")
        body.setdefault("count", len(body["jobs"]))
        return body

    def cancel_job(self, job_id: str) -> None:
        """``POST /jobs/{id}/cancel``; cancelling is idempotent, so it is retried like a GET.

        Raises:
            ConflictError: the job is already in a final state other than cancelled.
        """
        try:
            self.request("POST", f"jobs/{_q(job_id)}/cancel", idempotent=True)
        except ConflictError:
            # A retried cancel whose first attempt succeeded answers 409: that is success.
            state = (self.job(job_id).get("state") or {}).get("status", "")
            if str(state).lower() != "cancelled":
                raise

    def delete_job(self, job_id: str) -> None:
        """``DELETE /jobs/{id}`` (the job must be in a final state)."""
        self.request("DELETE", f"jobs/{_q(job_id)}")

    def job_logs(self, job_id: str) -> str:
        """``GET /jobs/{id}/logs`` as text."""
        response = self.request(
            "GET", f"jobs/{_q(job_id)}/logs", headers={"Accept": "text/plain, */*"}
        )
        return response.text

    def job_metrics(self, job_id: str) -> dict:
        """``GET /jobs/{id}/metrics``: timestamps, usage, circuit counts."""
        return self.get_json(f"jobs/{_q(job_id)}/metrics")

    def update_job_tags(self, job_id: str, tags: list[str]) -> None:
        """``PUT /jobs/{id}/tags`` with ``{"tags": [...]}`` (replaces the tags)."""
        self.request("PUT", f"jobs/{_q(job_id)}/tags", json={"tags": list(tags)})

    # ------------------------------------------------------------------ sessions

    def create_session(
        self, *, backend: str, mode: str = "dedicated", max_ttl: int | None = None
    ) -> dict:
        """``POST /sessions``: open a session (``mode="dedicated"``) or batch (``"batch"``).

        Not retried after the request may have reached the service (a repeat would open a second
        session); retried when the connection could not be made at all, or on 429.
        """
        if mode not in ("dedicated", "batch"):
            raise ValueError(f"mode must be 'dedicated' or 'batch', not {mode!r}")
        body: dict[str, Any] = {"mode": mode, "backend": backend}
        if self.account.instance:
            body["instance"] = self.account.instance
        if max_ttl is not None:
            body["max_ttl"] = int(max_ttl)
            if self.account.is_classic:
                body["max_session_ttl"] = int(max_ttl)
        response = self.request("POST", "sessions", json=body, idempotent=False)
        result = self._json(response, "POST /sessions")
        if not isinstance(result, dict) or "id" not in result:
            raise RequestError("POST /sessions: the answer has no session id", status_code=200)
        return result

    def session(self, session_id: str) -> dict:
        """``GET /sessions/{id}``: the session's details."""
        return self.get_json(f"sessions/{_q(session_id)}")

    def close_session(self, session_id: str) -> None:
        """``PATCH /sessions/{id}`` ``{"accepting_jobs": false}``: queued jobs still run."""
        self.request("PATCH", f"sessions/{_q(session_id)}", json={"accepting_jobs": False})

    def cancel_session(self, session_id: str) -> None:
        """``DELETE /sessions/{id}/close``: stop the session and cancel its queued jobs."""
        self.request("DELETE", f"sessions/{_q(session_id)}/close")

    # ------------------------------------------------------------------ instance

    def usage(self) -> dict:
        """``GET /instances/usage`` (classic: ``GET /usage``)."""
        path = "usage" if self.account.is_classic else "instances/usage"
        return self.get_json(path) or {}
