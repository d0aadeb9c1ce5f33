"""Connection-level limits of the server's HTTP edge, below ASGI (uvicorn's h11 protocol).

The ASGI :class:`~qiskit_rest_provider.server.http.RequestGuard` only sees a request once its
headers are complete, so two attacks never reach it: connections that send nothing or headers a
byte at a time (each holds a socket and memory forever), and one address opening thousands of
connections. :func:`guarded_h11_protocol` builds uvicorn's h11 protocol with

* a **header timeout**: a connection must complete the headers of its next request within
  ``header_timeout`` seconds of opening (or of its previous response), else it is closed;
* a **per-client connection cap**: one client address may hold ``max_connections_per_client``
  connections; the next ones are closed at once, so other clients keep being served.

uvicorn's own ``timeout_keep_alive`` (idle keep-alive connections) and
``h11_max_incomplete_event_size`` (header size) are set by the CLI next to it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_INCOMPLETE_EVENT_SIZE = 64 * 1024


def guarded_h11_protocol(header_timeout: float, max_connections_per_client: int) -> type:
    """Build uvicorn's h11 protocol class with a header timeout and a per-client connection cap.

    Args:
        header_timeout: seconds a connection may take to send a complete request head.
        max_connections_per_client: open connections per client address (0 = no cap).

    Returns:
        A class to pass as ``uvicorn.Config(http=...)``.
    """
    open_per_client: dict[str, int] = {}

    class GuardedH11Protocol(H11Protocol):
        """H11Protocol closing slow request heads and connections over the per-client cap."""

        _header_timer: asyncio.TimerHandle | None = None
        _client_key: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            client = self.client
            self._client_key = str(client[0]) if client else "?"
            count = open_per_client.get(self._client_key, 0) + 1
            open_per_client[self._client_key] = count
            if max_connections_per_client and count > max_connections_per_client:
                self.logger.warning(
                    "closing a connection from %s: over %d open connections",
                    self._client_key,
                    max_connections_per_client,
                )
                transport.close()
                return
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            if self._client_key is not None:
                left = open_per_client.get(self._client_key, 1) - 1
                if left > 0:
                    open_per_client[self._client_key] = left
                else:
                    open_per_client.pop(self._client_key, None)
                self._client_key = None
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout, self._header_deadline)

        def _header_deadline(self) -> None:
            """Close the connection if no request is in progress.

            A request in progress re-arms the timer when its response completes; its body has
            the ASGI guard's own deadline.
            """
            self._header_timer = None
            idle = self.cycle is None or self.cycle.response_complete
            if idle and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
