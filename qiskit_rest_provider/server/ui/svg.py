"""Geometry of the dashboard's inline SVG figures, computed on the server.

Each function returns plain numbers (coordinates, colours, labels) that a Jinja template turns
into ``<svg>`` elements, so every label is escaped by the template like any other text and the
browser needs no script to draw. Sizes are in SVG user units (pixels at 100 % zoom).

Example:
    >>> from qiskit_rest_provider.server.ui.svg import histogram
    >>> fig = histogram([("00", 510), ("11", 514)])
    >>> [bar.label for bar in fig.bars], fig.bars[0].height < fig.bars[1].height
    (['00', '11'], True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Bar:
    """One bar of a histogram."""

    x: float
    y: float
    width: float
    height: float
    label: str
    count: int
    share: float


@dataclass(frozen=True)
class Tick:
    """An axis tick: its position along the axis and its label."""

    pos: float
    label: str


@dataclass
class Histogram:
    """A bar chart of counts."""

    width: float
    height: float
    left: float
    bottom: float
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    rotate_labels: bool = False


def _nice_step(span: float, target: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target`` ticks."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return mult * power
    return 10 * power  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def histogram(counts: Sequence[tuple[str, int]], *, height: float = 260.0) -> Histogram:
    """A histogram of ``(outcome, count)`` pairs, in the order given."""
    n = max(len(counts), 1)
    bar_w = max(8.0, min(48.0, 640.0 / n))
    gap = bar_w * 0.25
    rotate = any(len(label) > 4 for label, _ in counts) or bar_w < 30
    left, top = 56.0, 12.0
    bottom = 70.0 if rotate else 36.0
    width = left + n * (bar_w + gap) + 16
    plot_h = height - top - bottom
    total = sum(c for _, c in counts) or 1
    peak = max((c for _, c in counts), default=1) or 1
    step = _nice_step(peak)
    top_value = step * math.ceil(peak / step)
    fig = Histogram(width, height, left, height - bottom, rotate_labels=rotate)
    for i, (label, count) in enumerate(counts):
        h = plot_h * count / top_value
        x = left + gap / 2 + i * (bar_w + gap)
        fig.bars.append(Bar(x, height - bottom - h, bar_w, h, label, count, count / total))
    value = 0.0
    while value <= top_value + 1e-9:
        fig.ticks.append(Tick(height - bottom - plot_h * value / top_value, _fmt(value)))
        value += step
    return fig


@dataclass(frozen=True)
class Point:
    """One expectation value with its error bar, in plot coordinates."""

    x: float
    y: float
    y_low: float
    y_high: float
    index: int
    value: float
    std: float | None


@dataclass
class LinePlot:
    """Expectation values against their index, with ±1 standard error bars."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    points: list[Point] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    zero: float | None = None

    @property
    def path(self) -> str:
        """The polyline through the points (SVG ``points`` attribute)."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def expectation_plot(
    evs: Sequence[float], stds: Sequence[float] = (), *, width: float = 640.0, height: float = 260.0
) -> LinePlot:
    """A plot of expectation values (one point per entry of the PUB's flattened ``evs``)."""
    values = np.asarray(list(evs), dtype=float)
    errors = np.asarray(list(stds)[: len(values)], dtype=float)
    if errors.size != values.size:
        errors = np.zeros_like(values)
    errors = np.where(np.isfinite(errors), errors, 0.0)
    left, right, top, bottom = 64.0, width - 16.0, 12.0, height - 36.0
    fig = LinePlot(width, height, left, right, top, bottom)
    if values.size == 0:
        return fig
    low = float(np.min(values - errors))
    high = float(np.max(values + errors))
    if high - low < 1e-12:
        low, high = low - 1.0, high + 1.0
    step = _nice_step(high - low)
    low = step * math.floor(low / step)
    high = step * math.ceil(high / step)

    def y_of(v: float) -> float:
        return bottom - (bottom - top) * (v - low) / (high - low)

    n = values.size
    for i, (v, e) in enumerate(zip(values, errors)):
        x = left + (right - left) * ((i + 0.5) / n)
        std = float(e) if stds else None
        fig.points.append(Point(x, y_of(v), y_of(v - e), y_of(v + e), i, float(v), std))
    tick = low
    while tick <= high + step * 1e-6:
        fig.y_ticks.append(Tick(y_of(tick), _fmt(round(tick, 12))))
        tick += step
    x_step = max(1, int(_nice_step(n, 8)))
    for i in range(0, n, x_step):
        fig.x_ticks.append(Tick(left + (right - left) * ((i + 0.5) / n), str(i)))
    if low < 0 < high:
        fig.zero = y_of(0.0)
    return fig


@dataclass(frozen=True)
class Node:
    """A qubit of a coupling map."""

    x: float
    y: float
    qubit: int
    title: str


@dataclass(frozen=True)
class Edge:
    """A coupler (both directions drawn once) coloured by its two-qubit gate error."""

    x1: float
    y1: float
    x2: float
    y2: float
    a: int
    b: int
    error: float | None
    color: str


@dataclass
class CouplingMap:
    """A device's coupling graph laid out in the plane."""

    width: float
    height: float
    radius: float
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)


def error_color(error: float | None, low: float, high: float) -> str:
    """Green (lowest error of the device) through yellow to red (highest), log scale."""
    if error is None or error <= 0 or not math.isfinite(error):
        return "#9aa0a6"
    if high <= low:
        t = 0.0
    else:
        t = (math.log10(error) - math.log10(low)) / (math.log10(high) - math.log10(low))
    t = min(max(t, 0.0), 1.0)
    return f"hsl({120 * (1 - t):.0f}, 70%, 42%)"


def layout(num_qubits: int, edges: Sequence[tuple[int, int]], seed: int = 7) -> np.ndarray:
    """Plane coordinates of the qubits (``(n, 2)``, in ``[0, 1]``): spectral, then relaxed.

    The spectral embedding (two smallest non-trivial eigenvectors of the graph Laplacian) lays
    lattice-like devices (lines, heavy-hex) out flat and untangled; a few spring iterations from
    there even out the spacing. Deterministic for a given graph.
    """
    n = num_qubits
    if n == 1:
        return np.array([[0.5, 0.5]])
    adj = np.zeros((n, n))
    for a, b in edges:
        if a != b and a < n and b < n:
            adj[a, b] = adj[b, a] = 1.0
    degree = adj.sum(axis=1)
    path = _path_order(adj)
    if path is not None:  # a line of qubits: lay it flat, in its order
        pos = np.zeros((n, 2))
        pos[path, 0] = np.arange(n) / max(n - 1, 1)
        pos[:, 1] = 0.5
        return pos
    if not adj.any():
        angles = np.linspace(0, 2 * math.pi, n, endpoint=False)
        pos = np.column_stack([np.cos(angles), np.sin(angles)])
    else:
        lap = np.diag(degree) - adj
        _, vecs = np.linalg.eigh(lap)
        pos = vecs[:, 1:3].copy() if n > 2 else np.column_stack([vecs[:, 1], np.zeros(n)])
        pos = _relax(pos, adj, seed)
        # principal axes: the longer extent runs left to right (a line lies flat)
        pos = pos - pos.mean(axis=0)
        _, _, axes = np.linalg.svd(pos, full_matrices=False)
        pos = pos @ axes.T
    pos -= pos.min(axis=0)
    span = pos.max(axis=0)
    span[span == 0] = 1.0
    return pos / span  # type: ignore[no-any-return]


def _path_order(adj: np.ndarray) -> list[int] | None:
    """The qubits in order if the graph is one simple path, else ``None``."""
    n = len(adj)
    degree = adj.sum(axis=1)
    if int(adj.sum()) != 2 * (n - 1) or degree.max() > 2:
        return None
    ends = [int(q) for q in np.flatnonzero(degree == 1)]
    if len(ends) != 2:
        return None
    order, prev = [ends[0]], -1
    while len(order) < n:
        nxt = [int(q) for q in np.flatnonzero(adj[order[-1]]) if q != prev]
        if not nxt:
            return None
        prev = order[-1]
        order.append(nxt[0])
    return order


def _relax(pos: np.ndarray, adj: np.ndarray, seed: int, steps: int = 200) -> np.ndarray:
    """Fruchterman-Reingold iterations from ``pos`` (vectorised; fine for a few hundred nodes)."""
    n = len(pos)
    rng = np.random.default_rng(seed)
    pos = pos / (np.abs(pos).max() or 1.0) + rng.normal(scale=1e-4, size=pos.shape)
    k = 1.0 / math.sqrt(n)
    temp = 0.1
    for _ in range(steps):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.linalg.norm(delta, axis=2)
        np.fill_diagonal(dist, 1.0)
        dist = np.maximum(dist, 1e-4)
        force = k * k / dist**2 - adj * dist / k
        np.fill_diagonal(force, 0.0)
        disp = (delta * force[:, :, None]).sum(axis=1)
        length = np.maximum(np.linalg.norm(disp, axis=1), 1e-9)
        pos = pos + disp / length[:, None] * np.minimum(length, temp)[:, None]
        temp *= 0.98
    return pos


def coupling_map(
    num_qubits: int,
    pairs: Sequence[Sequence[int]],
    two_qubit_errors: dict[tuple[int, int], float],
    *,
    titles: dict[int, str] | None = None,
    width: float = 720.0,
) -> CouplingMap:
    """The coupling map figure: nodes, edges coloured by error, and a three-step legend."""
    undirected = sorted({(min(a, b), max(a, b)) for a, b in (tuple(p[:2]) for p in pairs)})
    pos = layout(num_qubits, undirected)
    spread = pos.max(axis=0) - pos.min(axis=0)
    aspect = float(spread[1] / spread[0]) if spread[0] > 0 else 1.0
    aspect = min(max(aspect, 0.12), 1.2)
    radius = max(5.0, min(14.0, 280.0 / math.sqrt(max(num_qubits, 1))))
    margin = radius * 2 + 4
    height = max(2 * margin + 40, (width - 2 * margin) * aspect + 2 * margin)
    xy = np.column_stack(
        [margin + pos[:, 0] * (width - 2 * margin), margin + pos[:, 1] * (height - 2 * margin)]
    )
    errors = [e for e in two_qubit_errors.values() if e > 0]
    low, high = (min(errors), max(errors)) if errors else (0.0, 0.0)
    fig = CouplingMap(width, height, radius)
    for a, b in undirected:
        err = two_qubit_errors.get((a, b), two_qubit_errors.get((b, a)))
        fig.edges.append(
            Edge(
                float(xy[a, 0]),
                float(xy[a, 1]),
                float(xy[b, 0]),
                float(xy[b, 1]),
                a,
                b,
                err,
                error_color(err, low, high),
            )
        )
    for q in range(num_qubits):
        title = (titles or {}).get(q, f"qubit {q}")
        fig.nodes.append(Node(float(xy[q, 0]), float(xy[q, 1]), q, title))
    if errors:
        mid = math.sqrt(low * high)
        fig.legend = [(f"{v:.2e}", error_color(v, low, high)) for v in (low, mid, high)]
    return fig
