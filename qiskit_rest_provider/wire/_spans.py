"""Execution spans without qiskit-ibm-runtime: when each slice of a PUB's data was taken.

Mirrors the behaviour of qiskit-ibm-runtime's ``ExecutionSpans``/``DoubleSliceSpan`` (same
wire form, ``result.metadata["execution"]["execution_spans"]``) so that users of our primitives
find the same attributes, without depending on that package.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

import numpy as np

__all__ = ["DoubleSliceSpan", "ExecutionSpans"]


class DoubleSliceSpan:
    """Time window of the data slices ``(shape, flat_args_slice, shots_slice)`` per PUB index."""

    def __init__(
        self, start: datetime, stop: datetime, data_slices: dict[int, tuple[tuple, slice, slice]]
    ):
        self.start = start
        self.stop = stop
        self._data_slices = data_slices

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DoubleSliceSpan) and (
            self.start,
            self.stop,
            self._data_slices,
        ) == (other.start, other.stop, other._data_slices)

    def __repr__(self) -> str:
        return f"DoubleSliceSpan(<{self.start}, {self.stop}>, {self._data_slices})"

    @property
    def duration(self) -> float:
        """Length of the window in seconds."""
        return (self.stop - self.start).total_seconds()

    @property
    def data_slices(self) -> dict[int, tuple[tuple, slice, slice]]:
        """PUB index -> ``(shape, flat_args_slice, shots_slice)``."""
        return self._data_slices

    @property
    def pub_idxs(self) -> list[int]:
        """PUB indices with data in this span."""
        return sorted(self._data_slices)

    @property
    def size(self) -> int:
        """Number of results (parameter sets x shots) taken in this span."""
        total = 0
        for shape, args, shots in self._data_slices.values():
            total += len(range(math.prod(shape[:-1]))[args]) * len(range(shape[-1])[shots])
        return total

    def mask(self, pub_idx: int) -> np.ndarray:
        """Boolean array of the PUB's data shape (incl. shots) marking this span's part."""
        shape, args, shots = self._data_slices[pub_idx]
        mask = np.zeros(shape, dtype=bool)
        mask.reshape(math.prod(shape[:-1]), shape[-1])[args, shots] = True
        return mask

    def to_wire(self) -> dict:
        """``{"start", "stop", "data_slices": {"i": [shape, a0, a1, s0, s1]}}`` (datetimes kept)."""
        return {
            "start": self.start,
            "stop": self.stop,
            "data_slices": {
                str(i): [list(shape), args.start, args.stop, shots.start, shots.stop]
                for i, (shape, args, shots) in self._data_slices.items()
            },
        }

    @classmethod
    def from_wire(cls, value: dict) -> DoubleSliceSpan:
        """Inverse of :meth:`to_wire`."""
        slices = {}
        for key, (shape, a0, a1, s0, s1) in value["data_slices"].items():
            slices[int(key)] = (tuple(shape), slice(a0, a1), slice(s0, s1))
        return cls(value["start"], value["stop"], slices)


class ExecutionSpans(Sequence):
    """Ordered collection of :class:`DoubleSliceSpan`."""

    def __init__(self, spans: Iterable[DoubleSliceSpan]):
        self._spans = list(spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __getitem__(self, index):  # type: ignore[override]
        return self._spans[index]

    def __iter__(self) -> Iterator[DoubleSliceSpan]:
        return iter(self._spans)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExecutionSpans) and self._spans == other._spans

    def __repr__(self) -> str:
        return f"ExecutionSpans({self._spans!r})"

    @property
    def start(self) -> datetime:
        """Earliest start of all spans."""
        return min(span.start for span in self._spans)

    @property
    def stop(self) -> datetime:
        """Latest stop of all spans."""
        return max(span.stop for span in self._spans)

    @property
    def duration(self) -> float:
        """Seconds from the first start to the last stop."""
        return (self.stop - self.start).total_seconds()

    @property
    def pub_idxs(self) -> list[int]:
        """PUB indices covered by any span."""
        return sorted({i for span in self._spans for i in span.pub_idxs})
