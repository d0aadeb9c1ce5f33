"""The transpile endpoints (``POST /transpile``, ``GET /transpile/{id}``, its cancel), plain dicts.

They live under the service root, not the runtime API (``base="root"``), as on IBM's transpiler
service. Circuits arrive here already encoded (Base64 QPY or OpenQASM 3 text, built by
:mod:`qiskit_rest_provider.transpiler.remote`), so this module never touches Qiskit: it moves a
request body out and a task document back.

Example (the requests need a live server, so those two lines are skipped when the docs run;
building the client makes no request):
    >>> from qiskit_rest_provider.account import Account
    >>> from qiskit_rest_provider.client import RuntimeClient
    >>> client = RuntimeClient(Account("ibm_quantum_platform", "http://127.0.0.1:8000", "KEY"))
    >>> task = client.create_transpile_task(  # doctest: +SKIP
    ...     backend="rest_line_5q", optimization_level=1, body={"qasm_circuits": ["OPENQASM 3.0;"]}
    ... )
    >>> client.transpile_task(task["task_id"], wait=5.0)["state"]  # doctest: +SKIP
    'SUCCESS'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..exceptions import ConflictError, RequestError
from .base import BaseClient

__all__ = ["TRANSPILE_WAIT_SLACK", "TranspileEndpoints"]

TRANSPILE_WAIT_SLACK = 30.0
"""Seconds a long-poll's read timeout exceeds the ``wait`` it asks for (the answer's own time)."""


def _q(segment: str) -> str:
    return quote(segment, safe="")


class TranspileEndpoints(BaseClient):
    """The transpile service's endpoints; :class:`~.runtime.RuntimeClient` inherits them."""

    def create_transpile_task(
        self, *, backend: str, optimization_level: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        """``POST /transpile?backend=&optimization_level=``: start a task.

        Safe to retry: a repeated POST only creates a second, harmless task.

        Args:
            backend: backend name.
            optimization_level: Qiskit preset level, 0-3.
            body: ``qpy_circuits`` (Base64 QPY) or ``qasm_circuits`` (OpenQASM 3 texts), plus
                ``qiskit_transpile_options`` and the service's own parameters (``ai``, ...).

        Returns:
            The service's answer, with at least ``"task_id"``.

        Raises:
            RequestError: the service rejected the request or answered without a task id.
        """
        response = self.request(
            "POST",
            "transpile",
            base="root",
            params={"backend": backend, "optimization_level": optimization_level},
            json=body,
            idempotent=True,
        )
        data = self._json(response, "POST /transpile")
        if not isinstance(data, dict) or not isinstance(data.get("task_id"), str):
            raise RequestError("POST /transpile: the answer names no task_id")
        return data

    def transpile_task(
        self, task_id: str, *, wait: float | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """``GET /transpile/{task_id}``: the task document (``state``, ``result``, ``warnings``).

        Args:
            task_id: the id :meth:`create_transpile_task` returned.
            wait: seconds the service may hold the answer until the task is final (long-poll;
                a service without it answers at once).
            timeout: read timeout in seconds (default: ``wait`` plus
                :data:`TRANSPILE_WAIT_SLACK` when waiting, else the client's).

        Returns:
            The task document; ``state`` is ``"PENDING"``/``"STARTED"``, ``"SUCCESS"`` (with
            ``result``: one dict per circuit), ``"FAILURE"`` or ``"CANCELLED"`` (``result``: the
            message).
        """
        params = None if wait is None else {"wait": f"{max(wait, 0.0):.3f}"}
        if timeout is None and wait is not None:
            timeout = wait + TRANSPILE_WAIT_SLACK
        data = self.get_json(
            f"transpile/{_q(task_id)}", base="root", params=params, timeout=timeout
        )
        if not isinstance(data, dict):
            raise RequestError(f"GET /transpile/{task_id}: the answer is not a JSON object")
        return data

    def cancel_transpile_task(self, task_id: str) -> None:
        """``POST /transpile/{task_id}/cancel``: stop a queued or running task.

        The task ends ``CANCELLED`` (a running one's worker is stopped). Retried like a GET:
        cancelling twice is harmless.

        A reference-server extension (IBM's transpiler service has no cancel).

        Raises:
            ConflictError: the task already ended otherwise (``SUCCESS`` or ``FAILURE``).
        """
        try:
            self.request("POST", f"transpile/{_q(task_id)}/cancel", base="root", idempotent=True)
        except ConflictError:
            # a retried cancel whose first attempt succeeded answers 409: that is success
            if str(self.transpile_task(task_id).get("state", "")).upper() != "CANCELLED":
                raise
