"""Deterministic generator of the reference server's built-in device definitions.

The JSON files next to this module (``conf_<name>.json`` / ``props_<name>.json``) are what the
server serves for its built-in backends. They are generated, not hand-edited: run

    python -m qiskit_rest_provider.server.backends.devices.generate

to (re)create them. A seeded RNG makes the output identical on every run and machine, so
re-running it produces no diff unless this module changed.

The devices are our own, with calibration magnitudes typical of IBM's Heron/Eagle generation
(T1 ≈ 100–300 µs, 1q error ≈ 2–3e-4, cz error ≈ 3e-3, readout error ≈ 1–2 %), laid out on the
familiar topologies: a 5-qubit line, the 27-qubit Falcon heavy-hex and the 127-qubit Eagle
heavy-hex, all with ``cz`` as their two-qubit gate; ``rest_line_5q_ecr`` is a 5-qubit line with
Eagle's directed ``ecr`` instead (for code written for ``ecr`` devices, such as IBM's own noise
learner scenarios). The ideal simulator has no properties and a broad standard gate set.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEVICES_DIR",
    "NOISY_BASIS",
    "ECR_BASIS",
    "SIMULATOR_BASIS",
    "line_edges",
    "falcon_27_edges",
    "eagle_127_edges",
    "build_simulator",
    "build_device",
    "build_all",
    "write_all",
]

DEVICES_DIR = Path(__file__).resolve().parent

NOISY_BASIS = ["cz", "id", "rz", "sx", "x"]
"""Basis gates of the noisy devices (Heron style)."""

ECR_BASIS = ["ecr", "id", "rz", "sx", "x"]
"""Basis gates of the noisy device with echoed cross-resonance gates (Eagle style)."""

SIMULATOR_BASIS = [
    "ccx", "cx", "cz", "ecr", "h", "id", "p", "rx", "rxx", "ry", "ryy", "rz", "s", "sdg",
    "swap", "sx", "t", "tdg", "u", "x", "y", "z",
]  # fmt: skip
"""Basis gates of the ideal simulator. No ``rzz``: an IBM-style Target pins ``rzz`` to angles in
``[0, π/2]``, which an ideal simulator has no reason to impose."""

CONTROL_FLOW = ["if_else", "while_loop", "for_loop", "switch_case"]
NON_UNITARY = ["measure", "reset", "delay"]

# Fixed dates keep the generated files byte-identical between runs.
ONLINE_DATE = "2025-01-01T00:00:00+00:00"
CALIBRATION_DATE = "2026-01-15T08:00:00+00:00"
BACKEND_VERSION = "1.0.0"

_QASM_DEFS = {
    "id": ([], "gate id q { U(0, 0, 0) q; }"),
    "rz": (["theta"], "gate rz(theta) q { U(0, 0, theta) q; }"),
    "sx": ([], "gate sx q { U(pi/2, 3*pi/2, pi/2) q; }"),
    "x": ([], "gate x q { U(pi, 0, pi) q; }"),
    "cz": ([], "gate cz q0, q1 { U(0, 0, 0) q0; }"),
    "ecr": ([], "gate ecr q0, q1 { U(0, 0, 0) q0; }"),
}


# ---------------------------------------------------------------------------------------------
# Topologies (undirected edges, each pair once with the smaller index first)


def line_edges(num_qubits: int) -> list[tuple[int, int]]:
    """Edges of a linear chain ``0 - 1 - ... - n-1``."""
    return [(q, q + 1) for q in range(num_qubits - 1)]


def falcon_27_edges() -> list[tuple[int, int]]:
    """Edges of IBM's 27-qubit Falcon heavy-hex layout (28 edges)."""
    return [
        (0, 1), (1, 2), (1, 4), (2, 3), (3, 5), (4, 7), (5, 8), (6, 7), (7, 10), (8, 9),
        (8, 11), (10, 12), (11, 14), (12, 13), (12, 15), (13, 14), (14, 16), (15, 18),
        (16, 19), (17, 18), (18, 21), (19, 20), (19, 22), (21, 23), (22, 25), (23, 24),
        (24, 25), (25, 26),
    ]  # fmt: skip


def eagle_127_edges() -> list[tuple[int, int]]:
    """Edges of IBM's 127-qubit Eagle heavy-hex layout (144 edges).

    Seven rows of qubits (14, 15, 15, 15, 15, 15, 14 qubits) joined by six rows of four bridge
    qubits. Each bridge connects a row qubit to the row qubit below it; the bridge columns
    alternate between offsets 0, 4, 8, 12 and 2, 6, 10, 14 (counted from the row's left end).
    """
    row_sizes = [14, 15, 15, 15, 15, 15, 14]
    rows: list[list[int]] = []
    bridges: list[list[int]] = []
    index = 0
    for r, size in enumerate(row_sizes):
        rows.append(list(range(index, index + size)))
        index += size
        if r < len(row_sizes) - 1:
            bridges.append(list(range(index, index + 4)))
            index += 4
    edges = []
    for row in rows:
        edges += [(row[i], row[i + 1]) for i in range(len(row) - 1)]
    for r, bridge in enumerate(bridges):
        # Column of each bridge, in "full row" coordinates where rows 1..5 span columns 0..14
        # and row 0 spans 0..13, row 6 spans 1..14.
        columns = [0, 4, 8, 12] if r % 2 == 0 else [2, 6, 10, 14]
        lower_start = 1 if r + 1 == len(rows) - 1 else 0
        for b, column in zip(bridge, columns):
            upper = rows[r][column]
            lower = rows[r + 1][column - lower_start]
            edges += [(upper, b), (b, lower)]
    return sorted(edges)


# ---------------------------------------------------------------------------------------------
# Builders


def _nduv(name: str, value: float, unit: str = "") -> dict[str, Any]:
    return {"date": CALIBRATION_DATE, "name": name, "unit": unit, "value": value}


def _round(value: float, digits: int = 4) -> float:
    """Round to ``digits`` significant digits (keeps the JSON short and readable)."""
    if value == 0:
        return 0.0
    return round(value, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _common_configuration(name: str, num_qubits: int, description: str) -> dict[str, Any]:
    return {
        "backend_name": name,
        "backend_version": BACKEND_VERSION,
        "n_qubits": num_qubits,
        "local": False,
        "conditional": True,
        "open_pulse": False,
        "memory": True,
        "max_shots": 100000,
        "max_experiments": 300,
        "n_registers": 1,
        "credits_required": False,
        "online_date": ONLINE_DATE,
        "description": description,
        "supported_features": ["qobj", "parameters", "qasm3"],
        "dynamic_reprate_enabled": True,
        "rep_delay_range": [0.0, 500.0],
        "default_rep_delay": 250.0,
    }


def build_simulator(name: str = "rest_simulator", num_qubits: int = 32) -> dict[str, Any]:
    """Configuration of the ideal, all-to-all simulator (it has no properties document)."""
    conf = _common_configuration(
        name, num_qubits, f"Ideal {num_qubits}-qubit simulator (all-to-all, no noise)"
    )
    conf.update(
        {
            "simulator": True,
            "basis_gates": list(SIMULATOR_BASIS),
            "gates": [{"name": g, "parameters": [], "qasm_def": ""} for g in SIMULATOR_BASIS],
            "coupling_map": [
                [a, b] for a in range(num_qubits) for b in range(num_qubits) if a != b
            ],
            "supported_instructions": sorted(SIMULATOR_BASIS + NON_UNITARY + CONTROL_FLOW),
            "processor_type": {"family": "Simulator", "revision": "1"},
            "sample_name": "ideal simulator",
        }
    )
    return conf


def build_device(
    name: str,
    num_qubits: int,
    edges: Sequence[tuple[int, int]],
    *,
    seed: int,
    family: str,
    revision: str,
    t1_us: float = 200.0,
    t2_ratio: float = 0.8,
    readout_error: float = 0.012,
    error_1q: float = 2.5e-4,
    error_cz: float = 3.5e-3,
    length_1q_ns: int = 32,
    length_cz_ns: int = 68,
    readout_length_ns: int = 1560,
    reset_length_ns: int = 1600,
    dt_ns: float = 0.5,
    two_qubit_gate: str = "cz",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configuration and properties of a noisy device with seeded, realistic calibration.

    Per-qubit values scatter log-normally around the given medians (about ±30 %), so that
    error-aware layout has something to choose from; the worst qubits stay physical
    (``T2 <= 2 T1``, errors < 0.5). Every qubit gets ``id``/``rz``/``sx``/``x``/``reset`` records
    and every edge gets ``cz`` records in both directions, as IBM lists them for Heron; with
    ``two_qubit_gate="ecr"`` every edge gets one ``ecr`` record instead, from its smaller to its
    larger qubit (echoed cross-resonance is directed, as on Eagle devices).

    Args:
        name: backend name.
        num_qubits: number of qubits.
        edges: undirected coupling edges.
        seed: RNG seed (each device has its own so the devices differ).
        family: ``processor_type.family``.
        revision: ``processor_type.revision``.
        t1_us: median T1 in µs.
        t2_ratio: median T2 / T1.
        readout_error: median readout assignment error.
        error_1q: median error of ``sx``/``x``/``id``.
        error_cz: median ``cz`` error.
        length_1q_ns: duration of ``sx``/``x``/``id`` in ns.
        length_cz_ns: duration of ``cz`` in ns.
        readout_length_ns: measurement duration in ns.
        reset_length_ns: reset duration in ns.
        dt_ns: system time step in ns.
        two_qubit_gate: ``"cz"`` (both directions) or ``"ecr"`` (one direction per edge); the
            ``error_cz``/``length_cz_ns`` values then describe it.

    Returns:
        ``(configuration, properties)`` as IBM-format dicts.
    """
    rng = random.Random(seed)

    def scatter(median: float, sigma: float = 0.3) -> float:
        return median * rng.lognormvariate(0.0, sigma)

    if two_qubit_gate not in ("cz", "ecr"):
        raise ValueError(f"two_qubit_gate must be 'cz' or 'ecr', got {two_qubit_gate!r}")
    basis = NOISY_BASIS if two_qubit_gate == "cz" else ECR_BASIS
    if two_qubit_gate == "cz":
        directed = sorted({(a, b) for a, b in edges} | {(b, a) for a, b in edges})
    else:
        directed = sorted({(min(a, b), max(a, b)) for a, b in edges})
    conf = _common_configuration(
        name, num_qubits, f"{num_qubits}-qubit noisy device ({family}-like layout)"
    )
    gates_conf = []
    for gate in basis:
        params, qasm_def = _QASM_DEFS[gate]
        two = gate == two_qubit_gate
        coupling = [list(e) for e in directed] if two else [[q] for q in range(num_qubits)]
        gates_conf.append(
            {"name": gate, "parameters": params, "qasm_def": qasm_def, "coupling_map": coupling}
        )
    conf.update(
        {
            "simulator": False,
            "basis_gates": list(basis),
            "gates": gates_conf,
            "coupling_map": [list(e) for e in directed],
            "supported_instructions": sorted(basis + NON_UNITARY + CONTROL_FLOW),
            "dt": dt_ns,
            "dtm": dt_ns,
            "timing_constraints": {
                "acquire_alignment": 8,
                "granularity": 8,
                "min_length": 16,
                "pulse_alignment": 8,
            },
            "meas_map": [list(range(num_qubits))],
            "processor_type": {"family": family, "revision": revision},
            "sample_name": f"family: {family}, revision: {revision}",
            "quantum_volume": None,
            "clops_h": None,
        }
    )

    qubits = []
    gates = []
    for q in range(num_qubits):
        t1 = scatter(t1_us)
        t2 = min(scatter(t1 * t2_ratio, 0.25), 1.9 * t1)
        ro = min(scatter(readout_error, 0.4), 0.2)
        asym = rng.uniform(0.2, 0.45)  # share of the readout error from preparing |0>
        qubits.append(
            [
                _nduv("T1", _round(t1), "us"),
                _nduv("T2", _round(t2), "us"),
                _nduv("frequency", _round(rng.uniform(4.6, 5.2), 5), "GHz"),
                _nduv("anharmonicity", _round(rng.uniform(-0.34, -0.30), 4), "GHz"),
                _nduv("readout_error", _round(ro)),
                _nduv("prob_meas0_prep1", _round(2 * ro * (1 - asym))),
                _nduv("prob_meas1_prep0", _round(2 * ro * asym)),
                _nduv("readout_length", readout_length_ns, "ns"),
            ]
        )
        err = _round(min(scatter(error_1q, 0.35), 0.01))
        for gate in ("id", "rz", "sx", "x"):
            value, length = (0.0, 0) if gate == "rz" else (err, length_1q_ns)
            gates.append(
                {
                    "qubits": [q],
                    "gate": gate,
                    "name": f"{gate}{q}",
                    "parameters": [
                        _nduv("gate_error", value),
                        _nduv("gate_length", length, "ns"),
                    ],
                }
            )
        gates.append(
            {
                "qubits": [q],
                "gate": "reset",
                "name": f"reset{q}",
                "parameters": [_nduv("gate_length", reset_length_ns, "ns")],
            }
        )
    for a, b in sorted(edges):
        err = _round(min(scatter(error_cz, 0.4), 0.05))
        pairs = ((a, b), (b, a)) if two_qubit_gate == "cz" else ((min(a, b), max(a, b)),)
        for pair in pairs:
            gates.append(
                {
                    "qubits": list(pair),
                    "gate": two_qubit_gate,
                    "name": f"{two_qubit_gate}{pair[0]}_{pair[1]}",
                    "parameters": [
                        _nduv("gate_error", err),
                        _nduv("gate_length", length_cz_ns, "ns"),
                    ],
                }
            )
    props = {
        "backend_name": name,
        "backend_version": BACKEND_VERSION,
        "last_update_date": CALIBRATION_DATE,
        "qubits": qubits,
        "gates": gates,
        "general": [],
        "general_qlists": [],
    }
    return conf, props


def build_all() -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    """Every built-in device: ``{name: (configuration, properties or None)}``."""
    return {
        "rest_simulator": (build_simulator(), None),
        "rest_line_5q": build_device(
            "rest_line_5q", 5, line_edges(5), seed=5, family="Canary", revision="1"
        ),
        "rest_line_5q_ecr": build_device(
            "rest_line_5q_ecr",
            5,
            line_edges(5),
            seed=55,
            family="Eagle",
            revision="3",
            error_cz=6e-3,
            length_cz_ns=400,
            two_qubit_gate="ecr",
        ),
        "rest_hex_27q": build_device(
            "rest_hex_27q", 27, falcon_27_edges(), seed=27, family="Falcon", revision="5.11"
        ),
        "rest_hex_127q": build_device(
            "rest_hex_127q",
            127,
            eagle_127_edges(),
            seed=127,
            family="Eagle",
            revision="3",
            t1_us=250.0,
            t2_ratio=0.6,
            readout_error=0.015,
            error_1q=3e-4,
            error_cz=5e-3,
            length_1q_ns=60,
            length_cz_ns=84,
            readout_length_ns=1400,
        ),
    }


def dumps(document: dict[str, Any]) -> str:
    """Serialize a device document the way the shipped files are written."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def write_all(directory: Path = DEVICES_DIR) -> list[Path]:
    """Write every built-in device's ``conf_<name>.json`` (and ``props_<name>.json``)."""
    written = []
    for name, (conf, props) in build_all().items():
        for prefix, document in (("conf", conf), ("props", props)):
            if document is None:
                continue
            path = directory / f"{prefix}_{name}.json"
            path.write_text(dumps(document), encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: regenerate the JSON files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEVICES_DIR, help="output directory")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)  # noqa: T201 - command-line tool output


if __name__ == "__main__":
    main()
