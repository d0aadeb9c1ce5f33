"""Wire-format benchmarks (issue 2 acceptance): results, circuits and parameter arrays.

Every figure is a median over several repetitions with a baseline measured in the same run:

* 1M shots x 27 bits, sampler results in both JSON encodings and in the optional binary
  container (``application/x-qiskit-rest-result``): encode and decode times. The Qiskit-encoded
  and binary decodes are compared with ``np.frombuffer(...).copy()`` of the same packed bytes
  (the floor: no parsing at all; issue 5's target is binary <= 2x that); the plain hex decode
  with the per-shot ``int(x, 16)`` loop that BackendSamplerV2-style code uses. The server's
  request-time conversion of the stored JSON body to the container is timed too, and a
  low-entropy (GHZ-like) result shows the container's size against JSON.
* a 10k-gate, 27-qubit ISA circuit: export with our ``export_qasm3`` (uncached) against Qiskit's
  Python exporter and Rust exporter; import with our ``import_qasm`` (uncached, fast path) against
  plain ANTLR ``qiskit.qasm3.loads``; the same with 1000 ``input`` parameters (our flat reader,
  since the Rust importer rejects ``input``) and the cached re-import.
* a 1000 x 1000 float64 parameter array: ndarray wrapper encode/decode against orjson nested lists.

Usage::

    python benchmarks/wire.py [--quick] [--out FILE]

``--quick`` shrinks the ANTLR-bound circuit cases (2,000 gates) and the repetitions so that the
run stays under a minute.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import markdown_table, median_seconds, write_json  # noqa: E402


def _sampler_result(shots: int, num_bits: int):
    from qiskit.primitives import BitArray, DataBin, PrimitiveResult
    from qiskit.primitives.containers import SamplerPubResult

    rng = np.random.default_rng(7)
    nbytes = (num_bits + 7) // 8
    array = rng.integers(0, 256, size=(shots, nbytes), dtype=np.uint8)
    array[:, 0] &= (1 << (num_bits % 8 or 8)) - 1
    bits = BitArray(array, num_bits)
    return PrimitiveResult([SamplerPubResult(DataBin(meas=bits, shape=()), {})], {"version": 2})


def _isa_circuit(num_gates: int, num_qubits: int = 27, parameters: int = 0):
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    rng = np.random.default_rng(3)
    qc = QuantumCircuit(num_qubits, num_qubits)
    theta = ParameterVector("θ", parameters)
    p = 0
    for _ in range(num_gates):
        kind = rng.integers(0, 4)
        q = int(rng.integers(0, num_qubits - 1))
        if kind == 0:
            qc.cz(q, q + 1)
        elif kind == 1:
            if p < parameters:
                qc.rz(theta[p], q)
                p += 1
            else:
                qc.rz(float(rng.uniform(-3, 3)), q)
        elif kind == 2:
            qc.sx(q)
        else:
            qc.x(q)
    qc.measure(range(num_qubits), range(num_qubits))
    # make it an ISA circuit on hardware qubits ($n) as a transpiler would
    from qiskit.transpiler import Layout, TranspileLayout

    qc._layout = TranspileLayout(
        initial_layout=Layout.from_qubit_list(qc.qubits),
        input_qubit_mapping={bit: i for i, bit in enumerate(qc.qubits)},
        final_layout=None,
    )
    return qc


def bench_binary(rows: list[dict], repeats: int, shots: int, floor: float) -> None:
    """The binary result container: decode against the floor, conversion cost, sizes."""
    from qiskit.primitives import BitArray, DataBin, PrimitiveResult
    from qiskit.primitives.containers import SamplerPubResult

    from qiskit_rest_provider.wire import decode_result, encode_result
    from qiskit_rest_provider.wire.results import to_binary

    result = _sampler_result(shots, 27)
    json_body = encode_result(result, qiskit=True)
    body = to_binary(json_body)
    assert body is not None and decode_result(body)[0].data.meas == result[0].data.meas
    dec = median_seconds(lambda: decode_result(body), repeats)
    rows.append(
        {
            "case": f"{shots:,} x 27-bit samples, binary container: decode",
            "ours_ms": dec * 1e3,
            "baseline": "np.frombuffer(same bytes).copy() (target ratio <= 2)",
            "baseline_ms": floor * 1e3,
            "ratio": dec / floor,
            "size_MB": len(body) / 1e6,
        }
    )
    enc = median_seconds(lambda: encode_result(result, qiskit=True, binary=True), repeats)
    rows.append({"case": "binary container: encode from PrimitiveResult", "ours_ms": enc * 1e3})
    conv = median_seconds(lambda: to_binary(json_body), repeats)
    rows.append(
        {
            "case": "binary container: server converts the stored Qiskit JSON body",
            "ours_ms": conv * 1e3,
            "size_MB": len(body) / 1e6,
        }
    )
    rng = np.random.default_rng(9)
    ones = np.array([[7, 255, 255, 255]], dtype=np.uint8)
    ghz = np.where(rng.integers(0, 2, (shots, 1)) == 1, ones, 0).astype(np.uint8)
    low = PrimitiveResult(
        [SamplerPubResult(DataBin(meas=BitArray(ghz, 27), shape=()), {})], {"version": 2}
    )
    low_json = encode_result(low, qiskit=True)
    low_body = to_binary(low_json)
    assert low_body is not None
    json_dec = median_seconds(lambda: decode_result(low_json), repeats)
    low_dec = median_seconds(lambda: decode_result(low_body), repeats)
    rows.append(
        {
            "case": f"{shots:,} x 27-bit GHZ samples, binary (zlib-npy buffer): decode",
            "ours_ms": low_dec * 1e3,
            "baseline": f"Qiskit-encoded JSON decode ({len(low_json) / 1e6:.2f} MB)",
            "baseline_ms": json_dec * 1e3,
            "ratio": low_dec / json_dec,
            "size_MB": len(low_body) / 1e6,
        }
    )


def bench_results(rows: list[dict], repeats: int, shots: int) -> None:
    from qiskit_rest_provider.wire import decode_result, encode_result

    result = _sampler_result(shots, 27)
    packed = result[0].data.meas.array.tobytes()
    floor = median_seconds(lambda: np.frombuffer(packed, dtype=np.uint8).copy(), repeats)
    for qiskit, label in ((True, "Qiskit-encoded (§5.2)"), (False, "plain hex (§5.1)")):
        body = encode_result(result, qiskit=qiskit)
        enc = median_seconds(lambda q=qiskit: encode_result(result, qiskit=q), repeats)
        dec = median_seconds(lambda b=body: decode_result(b), repeats)
        assert decode_result(body)[0].data.meas == result[0].data.meas
        rows.append(
            {
                "case": f"{shots:,} x 27-bit samples, {label}: encode",
                "ours_ms": enc * 1e3,
                "size_MB": len(body) / 1e6,
            }
        )
        if qiskit:
            baseline, base_name = floor, "np.frombuffer(same bytes).copy()"
        else:

            def naive(b=body):
                samples = orjson.loads(b)["results"][0]["data"]["meas"]["samples"]
                return [int(x, 16) for x in samples]

            baseline = median_seconds(naive, max(1, repeats // 2))
            base_name = "orjson + per-shot int(x, 16)"
        rows.append(
            {
                "case": f"{shots:,} x 27-bit samples, {label}: decode",
                "ours_ms": dec * 1e3,
                "baseline": base_name,
                "baseline_ms": baseline * 1e3,
                "ratio": dec / baseline,
            }
        )
        if not qiskit:
            rows.append(
                {
                    "case": f"{shots:,} x 27-bit samples, {label}: decode",
                    "ours_ms": dec * 1e3,
                    "baseline": "np.frombuffer(packed bytes).copy()",
                    "baseline_ms": floor * 1e3,
                    "ratio": dec / floor,
                }
            )
    bench_binary(rows, repeats, shots, floor)


def bench_circuits(rows: list[dict], repeats: int, num_gates: int) -> None:
    from qiskit import qasm3

    from qiskit_rest_provider.wire import circuits as wc
    from qiskit_rest_provider.wire import export_qasm3, import_qasm

    warnings.simplefilter("ignore")
    qc = _isa_circuit(num_gates)
    gates = len(qc.data)
    python_export = median_seconds(lambda: qasm3.dumps(qc), repeats)
    rust_export = median_seconds(lambda: qasm3.dumps_experimental(qc), repeats)
    ours = median_seconds(lambda: export_qasm3(qc), repeats, setup=wc.clear_caches)
    rows.append(
        {
            "case": f"export {gates:,}-op ISA circuit (ours, uncached)",
            "ours_ms": ours * 1e3,
            "baseline": "qasm3.dumps (Python)",
            "baseline_ms": python_export * 1e3,
            "ratio": ours / python_export,
        }
    )
    rows.append(
        {
            "case": f"export {gates:,}-op ISA circuit (ours, uncached)",
            "ours_ms": ours * 1e3,
            "baseline": "qasm3.dumps_experimental (Rust)",
            "baseline_ms": rust_export * 1e3,
            "ratio": ours / rust_export,
        }
    )
    cached = median_seconds(lambda: export_qasm3(qc), repeats)
    rows.append({"case": "export, cached (same circuit object)", "ours_ms": cached * 1e3})

    text = export_qasm3(qc).text
    antlr_repeats = max(1, repeats // 3)
    antlr = median_seconds(lambda: qasm3.loads(text, num_qubits=127), antlr_repeats)
    before = wc.import_stats["flat"] + wc.import_stats["fast"]
    fast = median_seconds(lambda: import_qasm(text, num_qubits=127), repeats, setup=wc.clear_caches)
    assert wc.import_stats["flat"] + wc.import_stats["fast"] > before, "fast path not taken"
    rust = median_seconds(lambda: wc._qasm_import.import_fast(text), repeats)
    rows.append(
        {
            "case": f"import {gates:,}-op ISA text ($n, static): ours (flat reader)",
            "ours_ms": fast * 1e3,
            "baseline": "qasm3.loads (ANTLR)",
            "baseline_ms": antlr * 1e3,
            "ratio": fast / antlr,
        }
    )
    rows.append(
        {
            "case": f"import {gates:,}-op ISA text ($n, static): Rust importer after $n rewrite",
            "ours_ms": rust * 1e3,
            "baseline": "qasm3.loads (ANTLR)",
            "baseline_ms": antlr * 1e3,
            "ratio": rust / antlr,
        }
    )
    hit = median_seconds(lambda: import_qasm(text, num_qubits=127), repeats)
    rows.append(
        {
            "case": "import, cached (same text; includes the copy handed out)",
            "ours_ms": hit * 1e3,
            "baseline": "qasm3.loads (ANTLR)",
            "baseline_ms": antlr * 1e3,
            "ratio": hit / antlr,
        }
    )
    pqc = _isa_circuit(num_gates, parameters=num_gates // 10)
    ptext = export_qasm3(pqc).text
    pantlr = median_seconds(lambda: qasm3.loads(ptext, num_qubits=127), antlr_repeats)
    pours = median_seconds(
        lambda: import_qasm(ptext, num_qubits=127), antlr_repeats, setup=wc.clear_caches
    )
    rows.append(
        {
            "case": f"import {len(pqc.data):,}-op text with {pqc.num_parameters} inputs: "
            "ours (flat reader)",
            "ours_ms": pours * 1e3,
            "baseline": "qasm3.loads (ANTLR)",
            "baseline_ms": pantlr * 1e3,
            "ratio": pours / pantlr,
        }
    )


def bench_arrays(rows: list[dict], repeats: int) -> None:
    from qiskit_rest_provider.wire import decode_ndarray, dumps, encode_ndarray, loads

    array = np.random.default_rng(1).uniform(size=(1000, 1000))
    enc = median_seconds(lambda: dumps(encode_ndarray(array)), repeats)
    body = dumps(encode_ndarray(array))
    dec = median_seconds(lambda: decode_ndarray(loads(body)), repeats)
    opt = orjson.OPT_SERIALIZE_NUMPY
    base_enc = median_seconds(lambda: orjson.dumps(array, option=opt), repeats)
    lists = orjson.dumps(array, option=opt)
    base_dec = median_seconds(lambda: np.asarray(orjson.loads(lists)), repeats)
    rows.append(
        {
            "case": "1000x1000 float64 parameters: encode (ndarray wrapper)",
            "ours_ms": enc * 1e3,
            "baseline": "orjson nested lists",
            "baseline_ms": base_enc * 1e3,
            "ratio": enc / base_enc,
            "size_MB": len(body) / 1e6,
        }
    )
    rows.append(
        {
            "case": "1000x1000 float64 parameters: decode (ndarray wrapper)",
            "ours_ms": dec * 1e3,
            "baseline": "orjson nested lists + np.asarray",
            "baseline_ms": base_dec * 1e3,
            "ratio": dec / base_dec,
            "size_MB": len(lists) / 1e6,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    parser.add_argument("--out", help="write the numbers as JSON to this file")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    rows: list[dict] = []
    bench_results(rows, repeats, 1_000_000)
    bench_circuits(rows, repeats, 2_000 if args.quick else 10_000)
    bench_arrays(rows, repeats)
    columns = ["case", "ours_ms", "baseline", "baseline_ms", "ratio", "size_MB"]
    print(markdown_table(rows, columns))
    write_json(args.out, {"benchmark": "wire", "quick": args.quick, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
