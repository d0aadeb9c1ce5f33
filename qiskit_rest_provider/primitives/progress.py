"""What a person waiting on a job sees: the callback of ``result(callback=...)`` and a tqdm bar.

:class:`ProgressReporter` receives each event's data (from the service's event stream, D14, or
derived from long-poll answers where the service has no streams) and hands it to the user's
callback and, with ``progress=True``, to a tqdm bar. tqdm is optional: without it, or when
stderr is not a terminal (logs, CI), ``progress=True`` shows nothing.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["ProgressReporter", "progress_from_document"]


def progress_from_document(job_id: str, state: str | None, reason: str | None) -> dict[str, Any]:
    """Event-shaped data from a plain job document (no queue position or PUB counts known)."""
    return {
        "job_id": job_id,
        "state": state,
        "reason": reason,
        "queue_position": None,
        "pubs_done": None,
        "pubs_total": None,
    }


class ProgressReporter:
    """Passes each piece of event data to a callback and/or a terminal progress bar.

    Args:
        job_id: shown in the bar's label.
        callback: called with each event's data dict; its exceptions propagate to the caller
            of ``result()`` (a broken callback should not go unnoticed).
        bar: show a tqdm bar (only if tqdm is installed and stderr is a terminal).
    """

    def __init__(
        self, job_id: str, callback: Callable[[dict], Any] | None, bar: bool = False
    ) -> None:
        self.job_id = job_id
        self.callback = callback
        self.last: dict[str, Any] | None = None
        self._bar: Any = None
        if bar and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                logger.debug("progress=True: tqdm is not installed; no bar shown")
            else:
                self._bar = tqdm(total=None, desc=f"job {job_id}", unit="pub", leave=True)

    def __call__(self, data: dict[str, Any]) -> None:
        """Report one event's data."""
        self.last = dict(data)
        if self._bar is not None:
            self._draw(data)
        if self.callback is not None:
            self.callback(dict(data))

    def _draw(self, data: dict[str, Any]) -> None:
        total = data.get("pubs_total")
        if total and self._bar.total != total:
            self._bar.total = total
        done = data.get("pubs_done")
        if isinstance(done, int) and done >= self._bar.n:
            self._bar.update(done - self._bar.n)
        label = str(data.get("state") or "")
        if data.get("queue_position") is not None:
            label += f", {data['queue_position']} ahead"
        self._bar.set_postfix_str(label)

    def close(self) -> None:
        """Close the bar (if any)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
