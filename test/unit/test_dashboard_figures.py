"""The dashboard's server-side figures and result summaries (no server, no browser)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jinja2")

from qiskit_rest_provider.server.jobs.summary import (  # noqa: E402
    MAX_OUTCOMES,
    pub_inputs,
    result_outcomes,
)
from qiskit_rest_provider.server.ui import svg  # noqa: E402

DEVICES = Path(__file__).resolve().parents[2] / "qiskit_rest_provider/server/backends/devices"


def test_histogram_bars_scale_with_counts_and_ticks_are_round():
    fig = svg.histogram([("00", 250), ("01", 0), ("11", 750)])
    heights = [b.height for b in fig.bars]
    assert heights[1] == 0 and heights[2] == pytest.approx(3 * heights[0])
    assert [b.share for b in fig.bars] == [0.25, 0.0, 0.75]
    assert all(b.y + b.height == pytest.approx(fig.bottom) for b in fig.bars)
    labels = [t.label for t in fig.ticks]
    assert labels[0] == "0" and all(float(x) % 100 == 0 for x in labels)
    assert float(labels[-1]) >= 750
    assert svg.histogram([("0" * 12, 5)]).rotate_labels  # long bitstrings are turned


def test_expectation_plot_keeps_values_and_error_bars():
    evs = np.cos(np.linspace(0, np.pi, 9))
    fig = svg.expectation_plot(evs, [0.01] * 9)
    assert [p.value for p in fig.points] == pytest.approx(list(evs))
    ys = [p.y for p in fig.points]
    assert ys == sorted(ys)  # cos falls: the points go down the plot (SVG y grows downwards)
    assert all(p.y_high < p.y < p.y_low for p in fig.points)
    assert fig.zero is not None and fig.top <= fig.zero <= fig.bottom
    assert len(fig.path.split()) == 9
    assert svg.expectation_plot([]).points == []
    flat = svg.expectation_plot([0.5, 0.5])  # no spread: the axis still has a range
    assert flat.points[0].y == flat.points[1].y and fig.top < flat.points[0].y < fig.bottom


def test_error_colour_runs_green_to_red_on_a_log_scale():
    assert svg.error_color(1e-3, 1e-3, 1e-1) == "hsl(120, 70%, 42%)"
    assert svg.error_color(1e-2, 1e-3, 1e-1) == "hsl(60, 70%, 42%)"
    assert svg.error_color(1e-1, 1e-3, 1e-1) == "hsl(0, 70%, 42%)"
    assert svg.error_color(None, 1e-3, 1e-1) == "#9aa0a6"


def test_a_line_lies_flat_in_order():
    pos = svg.layout(5, [(3, 4), (0, 1), (2, 3), (1, 2)])
    assert list(np.argsort(pos[:, 0])) in ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0])
    assert np.allclose(pos[:, 1], pos[0, 1])


@pytest.mark.parametrize("name", ["rest_hex_27q", "rest_hex_127q"])
def test_heavy_hex_layout_spreads_the_qubits(name):
    conf = json.loads((DEVICES / f"conf_{name}.json").read_text())
    n = conf["n_qubits"]
    props = json.loads((DEVICES / f"props_{name}.json").read_text())
    errors = {
        tuple(g["qubits"]): next(p["value"] for p in g["parameters"] if p["name"] == "gate_error")
        for g in props["gates"]
        if len(g["qubits"]) == 2
    }
    fig = svg.coupling_map(n, conf["coupling_map"], errors)
    assert len(fig.nodes) == n
    assert len(fig.edges) == len({tuple(sorted(p)) for p in conf["coupling_map"]})
    xy = np.array([(node.x, node.y) for node in fig.nodes])
    assert xy.min() >= 0 and xy[:, 0].max() <= fig.width and xy[:, 1].max() <= fig.height
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(n) * 1e9
    assert dist.min() > fig.radius  # no two qubits drawn on top of each other
    colours = {e.color for e in fig.edges}
    assert "hsl(120, 70%, 42%)" in colours and "hsl(0, 70%, 42%)" in colours
    assert [label for label, _ in fig.legend][0] == f"{min(errors.values()):.2e}"


def test_pub_inputs_read_shots_precision_and_sizes():
    sampler = {
        "pubs": [["qasm", None, 100], ["qasm", [[0.1], [0.2]]]],
        "options": {"default_shots": 7},
    }
    assert [(p.shots, p.parameter_sets) for p in pub_inputs("sampler", sampler)] == [
        (100, None),
        (7, 2),
    ]
    estimator = {"pubs": [["qasm", ["ZZ", "XX"], [[0.0], [1.0], [2.0]], 0.01]]}
    (pub,) = pub_inputs("estimator", estimator)
    assert (pub.observables, pub.parameter_sets, pub.precision) == (2, 3, 0.01)
    assert pub_inputs("sampler", {"nope": 1}) == []


def test_result_outcomes_bound_the_outcomes_and_decode_both_programs():
    from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult, SamplerPubResult

    from qiskit_rest_provider.wire.results import encode_result

    rng = np.random.default_rng(3)
    samples = rng.integers(0, 64, size=(2000, 1), dtype=np.uint8)
    sampler = PrimitiveResult(
        [SamplerPubResult(DataBin(c=BitArray(samples, num_bits=6)))], metadata={}
    )
    for qiskit in (True, False):
        (outcome,) = result_outcomes("sampler", encode_result(sampler, qiskit=qiskit))
        counts = outcome.counts["c"]
        assert len(counts) == MAX_OUTCOMES and counts[-1][0] == "other"
        assert sum(n for _, n in counts) == 2000 and outcome.shots == 2000
    evs = np.linspace(-1, 1, 5)
    estimator = PrimitiveResult(
        [PubResult(DataBin(evs=evs, stds=np.full(5, 0.1), shape=(5,)))], metadata={}
    )
    (outcome,) = result_outcomes("estimator", encode_result(estimator, qiskit=True))
    assert outcome.evs == pytest.approx(list(evs)) and outcome.shape == (5,)
    assert outcome.stds == pytest.approx([0.1] * 5) and outcome.counts == {}
    with pytest.raises(ValueError):
        result_outcomes("sampler", b"not json")
