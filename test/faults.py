"""A fault-injecting HTTP proxy for reliability tests (issue 7).

:class:`FaultProxy` listens on ``127.0.0.1`` in front of a real server and forwards every request
to it, except that rules added with :meth:`FaultProxy.add` change what happens to the requests they
match. What real networks and gateways do to a client, reproduced on demand:

* ``drop``: forward the request (the server acts) and close the connection without an answer;
* ``reset``: forward the request, then reset the connection (TCP RST, ``SO_LINGER`` 0);
* ``reset_before``: reset the connection without forwarding (the server never sees it);
* ``delay``: forward, then hold the answer ``delay`` seconds (past a client's read timeout);
* ``truncate``: forward, then send the status, headers and only part of the body and close;
* ``status``: answer ``status`` with ``body``/``headers`` without forwarding (429 + Retry-After,
  502/503 bursts, an HTML error page from a gateway).

A rule matches on method and a regular expression searched in the path, and applies ``times``
times (``None`` = forever). When the upstream cannot be reached, the proxy answers 502 with an HTML
page, as a gateway would. Every request is recorded in :attr:`FaultProxy.log`.

Example::

    with FaultProxy(server.url) as proxy:
        proxy.add("drop", method="POST", path=r"/jobs$")
        service = ProviderService(url=proxy.url, token=server.token)
"""

from __future__ import annotations

import http.client
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}
GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)
KINDS = {"drop", "reset", "reset_before", "delay", "truncate", "status"}


@dataclass
class Fault:
    """One rule: what to do to the requests it matches, and how many more times."""

    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    status: int = 503
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    keep: float = 0.5  # truncate: the fraction of the body sent
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request (and has uses left)."""
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None


@dataclass
class Seen:
    """A request that reached the proxy and what became of it."""

    method: str
    path: str
    headers: dict[str, str]
    fault: str | None
    status: int | None
    at: float = field(default_factory=time.monotonic)


class FaultProxy:
    """Threaded HTTP/1.1 proxy on 127.0.0.1 in front of ``upstream`` that injects faults.

    Args:
        upstream: base URL of the real server, e.g. ``"http://127.0.0.1:8000"``.
        upstream_timeout: seconds to wait for the upstream's answer.
    """

    def __init__(self, upstream: str, *, upstream_timeout: float = 120.0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.upstream_timeout = upstream_timeout
        self.faults: list[Fault] = []
        self.log: list[Seen] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                try:
                    outer._handle(self)
                except OSError:  # the client hung up (e.g. its read timeout): nothing to do
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ control
    def add(self, kind: str, **kwargs: object) -> Fault:
        """Add a rule (see the module docstring for ``kind``); returns it (``.hits`` counts)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(KINDS)}")
        fault = Fault(kind, **kwargs)  # type: ignore[arg-type]
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule (requests are forwarded untouched again)."""
        with self.lock:
            self.faults.clear()

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """Recorded requests, optionally filtered like a rule."""
        probe = Fault("status", method=method, path=path, times=None)
        with self.lock:
            return [s for s in self.log if probe.matches(s.method, s.path)]

    def close(self) -> None:
        """Stop listening (handler threads still sleeping in a delay are daemons)."""
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ handling
    def _take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                    fault.hits += 1
                    return fault
        return None

    def _record(self, h: BaseHTTPRequestHandler, fault: Fault | None, status: int | None) -> None:
        with self.lock:
            self.log.append(
                Seen(h.command, h.path, dict(h.headers.items()), fault and fault.kind, status)
            )

    @staticmethod
    def _reset(h: BaseHTTPRequestHandler) -> None:
        """Abort the client connection with a TCP RST."""
        h.close_connection = True
        try:
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        except OSError:
            pass

    def _forward(
        self, h: BaseHTTPRequestHandler, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Host"] = f"{self.upstream_host}:{self.upstream_port}"
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(
            self.upstream_host, self.upstream_port, timeout=self.upstream_timeout
        )
        try:
            conn.request(h.command, h.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        except OSError:
            return None
        finally:
            conn.close()

    @staticmethod
    def _answer(
        h: BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        send: int | None = None,
    ) -> None:
        h.send_response(status)
        for key, value in headers:
            if key.lower() not in HOP_BY_HOP:
                h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        if send is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(body if send is None else body[:send])
        h.wfile.flush()
        if send is not None:
            h.close_connection = True

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        fault = self._take(h.command, h.path)
        kind = fault.kind if fault else None
        if fault is not None and kind == "reset_before":
            self._record(h, fault, None)
            self._reset(h)
            return
        if fault is not None and kind == "status":
            self._record(h, fault, fault.status)
            headers = list(fault.headers.items())
            if not any(k.lower() == "content-type" for k, _ in headers):
                ctype = "application/json" if fault.body[:1] in (b"{", b"[") else "text/html"
                headers.append(("Content-Type", ctype))
            self._answer(h, fault.status, headers, fault.body)
            return
        forwarded = self._forward(h, body)
        if forwarded is None:  # upstream unreachable: a gateway's HTML page
            self._record(h, fault, 502)
            self._answer(h, 502, [("Content-Type", "text/html")], GATEWAY_PAGE)
            return
        status, headers, data = forwarded
        self._record(h, fault, status)
        if fault is None:
            self._answer(h, status, headers, data)
        elif kind == "drop":
            h.close_connection = True  # the server acted; its answer is lost
        elif kind == "reset":
            self._reset(h)
        elif kind == "delay":
            time.sleep(fault.delay)
            self._answer(h, status, headers, data)
        elif kind == "truncate":
            cut = max(0, min(len(data) - 1, int(len(data) * fault.keep)))
            self._answer(h, status, headers, data, send=cut)
