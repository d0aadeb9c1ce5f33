"""Failed-login throttling: per client address and per presented credential.

Without it a guesser gets a 401 per wrong key as fast as the server answers (hundreds a second).
After ``max_failures`` failed authentications within ``window`` seconds from one address, or
with one presented credential from anywhere, further attempts answer 429 with ``Retry-After``
*before the credential is checked* (so throttled guessing costs the server no hashing). Successful
logins never count. Credentials are remembered as keyed hashes only, never as sent.

Example:
    >>> t = LoginThrottle(max_failures=2, window=10.0)
    >>> t.check("127.0.0.1", "guess")
    >>> t.failed("127.0.0.1", "guess"); t.failed("127.0.0.1", "other")
    >>> try:
    ...     t.check("127.0.0.1", "anything")
    ... except Exception as exc:
    ...     print(exc.status_code, "Retry-After" in exc.headers)
    429 True
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time

from ..http import ApiError

_MAX_ENTRIES = 100_000


class LoginThrottle:
    """Counts failed authentications per address and per credential in fixed windows.

    Args:
        max_failures: failures allowed per key and window; 0 disables throttling.
        window: the window length in seconds.
    """

    def __init__(self, max_failures: int = 10, window: float = 10.0) -> None:
        self.max_failures = max_failures
        self.window = window
        self._pepper = secrets.token_bytes(32)
        self._counts: dict[str, tuple[float, int]] = {}  # key -> (window start, failures)
        self._lock = threading.Lock()

    def _keys(self, host: str, credential: str | None) -> list[str]:
        keys = [f"ip:{host}"]
        if credential:
            digest = hmac.new(self._pepper, credential.encode(), hashlib.sha256).hexdigest()
            keys.append(f"key:{digest}")
        return keys

    def check(self, host: str, credential: str | None) -> None:
        """Raise 429 with ``Retry-After`` if ``host`` or ``credential`` failed too often lately."""
        if self.max_failures <= 0:
            return
        now = time.monotonic()
        with self._lock:
            for key in self._keys(host, credential):
                start, count = self._counts.get(key, (now, 0))
                if now - start < self.window and count >= self.max_failures:
                    wait = max(1, math.ceil(start + self.window - now))
                    raise ApiError(
                        429,
                        f"too many failed logins from this address or with this credential "
                        f"({count} in {self.window:g} s); retry in {wait} s",
                        code="too_many_failed_logins",
                        headers={"Retry-After": str(wait)},
                    )

    def failed(self, host: str, credential: str | None) -> None:
        """Count one failed authentication of ``credential`` from ``host``."""
        if self.max_failures <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > _MAX_ENTRIES:  # drop finished windows (bounded memory)
                for key in [k for k, (s, _) in self._counts.items() if now - s >= self.window]:
                    del self._counts[key]
                if len(self._counts) > _MAX_ENTRIES:
                    self._counts.clear()
            for key in self._keys(host, credential):
                start, count = self._counts.get(key, (now, 0))
                if now - start >= self.window:
                    start, count = now, 0
                self._counts[key] = (start, count + 1)
