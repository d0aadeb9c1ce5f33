"""Qiskit's reference primitives and ours on the same edge-case inputs: same shapes, same values.

Every case runs twice: through our ``SamplerV2``/``EstimatorV2`` on the reference server (on the
ideal simulator and on every noisy device, circuits transpiled with
``generate_preset_pass_manager(optimization_level=1, backend=...)`` and observables laid out to
match), and through Qiskit's ``StatevectorSampler``/``StatevectorEstimator`` on the logical
circuit with the same parameter and observable objects. Shapes, register names, ``num_bits``,
``num_shots`` and dtypes must be identical; values must agree within 5 standard errors (the
estimator's reported ``stds``; for the sampler, the binomial error of two independent samples of
the given shots), plus a noise allowance on the noisy devices (the devices' gate noise moves
values by a few per cent on these one- and two-qubit circuits; readout error is mitigated at the
estimator's default resilience level).

The edges: parameter values in every form ``BindingsArray.coerce``/``EstimatorPub.coerce`` accept
(``None``, ``[]``, ``[[]]``, ``np.array([[]])``, ``[np.array([])]``, empty arrays of any shape,
scalars for one parameter, shapes ``(n,)``, ``(k, n)``, ``(2, 3, n)``, dicts keyed by tuples,
by ``Parameter``, by name, by ``ParameterVector``, a ``BindingsArray``); observables in every form
``ObservablesArray.coerce`` accepts (``str``, ``Pauli``, ``SparsePauliOp``, ``SparseObservable``
with projectors, ``dict``, lists, nested lists, object arrays, an ``ObservablesArray``);
broadcasting between the two; PUBs with no parameter sets at all (a zero in the shape: the
worker process used to die on them); empty circuits, circuits that transpile to nothing, zero-qubit
circuits; classical registers without measurements, several registers, a register named
``output``, circuits without classical registers; ``shots=1``. Each program runs as one job.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit.circuit import (
    ClassicalRegister,
    Clbit,
    Parameter,
    ParameterVector,
    QuantumCircuit,
    QuantumRegister,
)
from qiskit.primitives import BackendSamplerV2, StatevectorEstimator, StatevectorSampler
from qiskit.primitives.containers import BindingsArray, ObservablesArray
from qiskit.quantum_info import Pauli, SparseObservable, SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from workloads import bell_circuit

from qiskit_rest_provider import EstimatorV2, SamplerV2

pytestmark = pytest.mark.timeout(300)

BACKENDS = ("rest_simulator", "rest_line_5q", "rest_hex_27q", "rest_hex_127q")
PRECISION = 0.02
SHOTS = 2000
NOISE_SLACK = 0.1
"""Allowed gate-noise bias on a noisy device, per unit of observable norm (or of probability)."""


@pytest.fixture(scope="module", params=BACKENDS)
def device(request, service):
    """``(backend, pass manager, noisy?)`` for each backend of the module's parametrization."""
    backend = service.backend(request.param)
    pm = generate_preset_pass_manager(optimization_level=1, backend=backend, seed_transpiler=7)
    return backend, pm, request.param != "rest_simulator"


# ------------------------------------------------------------------------------ observables
def _label(label: str, isa: QuantumCircuit) -> str:
    return SparsePauliOp(label).apply_layout(isa.layout, isa.num_qubits).paulis[0].to_label()


def lay(obs, isa: QuantumCircuit):
    """``obs`` laid out on ``isa``'s physical qubits, in the same form it came in."""
    if isa.layout is None:
        return obs
    n = isa.num_qubits
    if isinstance(obs, ObservablesArray):
        return obs.apply_layout(isa.layout, n)
    if isinstance(obs, np.ndarray):
        out = np.empty(obs.shape, dtype=object)
        for index, item in np.ndenumerate(obs):
            out[index] = lay(item, isa)
        return out
    if isinstance(obs, list):
        return [lay(item, isa) for item in obs]
    if isinstance(obs, str):
        return _label(obs, isa)
    if isinstance(obs, dict):
        return {_label(k, isa): v for k, v in obs.items()}
    if isinstance(obs, (Pauli, SparsePauliOp, SparseObservable)):
        return obs.apply_layout(isa.layout, n)
    raise TypeError(type(obs))


def paulis(obs):
    """``obs`` for Qiskit's reference, which reads Pauli terms only: projectors expanded.

    ``StatevectorEstimator`` and ``BackendEstimatorV2`` fail on a ``SparseObservable`` with
    projector terms (``0 1 + - r l``) that ``ObservablesArray.coerce`` accepts; ours sends their
    Pauli expansion (the same operator), so the reference gets that expansion too.
    """
    return obs.as_paulis() if isinstance(obs, SparseObservable) else obs


def _norm(obs) -> float:
    """Largest sum of |coefficients| of any observable in ``obs`` (the noise allowance scale)."""
    array = ObservablesArray.coerce(obs)
    return max(
        (sum(abs(c) for c in array.ravel()[k].values()) for k in range(array.size)), default=1.0
    )


# --------------------------------------------------------------------------------- circuits
a, b = Parameter("a"), Parameter("b")
VEC = ParameterVector("v", 12)


def _h1() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.h(0)
    return qc


def _ry1() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.ry(a, 0)
    return qc


def _two() -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.ry(b, 1)
    qc.cx(0, 1)
    return qc


def _vector() -> QuantumCircuit:
    """Twelve parameters: positional order breaks if anyone sorts ``v[10]`` before ``v[2]``."""
    qc = QuantumCircuit(2)
    for k, p in enumerate(VEC):
        (qc.ry if k % 2 == 0 else qc.rz)(p, k % 2)
    qc.cx(0, 1)
    return qc


def _cancelling() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.x(0)
    return qc


VEC_VALUES = np.linspace(0.1, 2.3, 12)


def estimator_cases() -> list[tuple[str, QuantumCircuit, object, object]]:
    """``(label, logical circuit, observables, parameter values)`` of every estimator edge."""
    h1, ry1, two, vec = _h1(), _ry1(), _two(), _vector()
    rng = np.random.default_rng(3)
    return [
        # parameter values of a circuit without parameters
        ("no-params None", h1, "X", None),
        ("no-params []", h1, "X", []),
        ("no-params [[]]", h1, "X", [[]]),
        ("no-params np.array([[]])", h1, "X", np.array([[]])),
        ("no-params [np.array([])]", h1, "X", [np.array([])]),
        ("no-params zeros((2,3,0))", h1, "X", np.zeros((2, 3, 0))),
        ("no-params BindingsArray(shape=(2,))", h1, "X", BindingsArray(shape=(2,))),
        ("no-params zero sets (0, 0)", h1, "X", np.zeros((0, 0))),
        # one parameter
        ("zero sets (0, 1)", ry1, "Z", np.zeros((0, 1))),
        ("zero sets (3, 0, 1) x obs (1,)", ry1, ["Z"], np.zeros((3, 0, 1))),
        ("scalar", ry1, "Z", 0.4),
        ("[x]", ry1, "Z", [0.4]),
        ("(k,1) list", ry1, "Z", [[0.1], [0.9], [2.0]]),
        ("(2,3,1) array", ry1, "Z", rng.uniform(0, np.pi, (2, 3, 1))),
        ("dict Parameter", ry1, "X", {a: [0.3, 1.3]}),
        ("dict name", ry1, "X", {"a": np.array([0.3, 1.3, 2.3])}),
        ("dict tuple", ry1, "Z", {(a,): [[0.5], [1.5]]}),
        # two parameters
        ("(n,) array", two, "ZZ", np.array([0.3, 1.1])),
        ("(k,n) list", two, "ZI", [[0.3, 1.1], [1.2, 0.2], [2.0, 2.5]]),
        ("dict tuple (k,n)", two, "IZ", {(a, b): rng.uniform(0, 3, (4, 2))}),
        ("dict of arrays", two, "XX", {a: [0.1, 0.2], b: [1.0, 2.0]}),
        ("dict names", two, "ZZ", {("b", "a"): [[1.0, 0.1], [2.0, 0.2]]}),
        ("BindingsArray", two, "ZZ", BindingsArray({(a, b): rng.uniform(0, 3, (2, 2))})),
        ("ParameterVector key", vec, "ZZ", {VEC: np.stack([VEC_VALUES, VEC_VALUES[::-1]])}),
        ("ParameterVector tuple", vec, "XZ", {tuple(VEC): VEC_VALUES}),
        ("ParameterVector positional", vec, "ZX", VEC_VALUES),
        # every observable form
        ("str", h1, "X", None),
        ("Pauli", h1, Pauli("Z"), None),
        ("SparsePauliOp", h1, SparsePauliOp(["X", "Z"], [0.5, -0.25]), None),
        ("SparseObservable", h1, SparseObservable.from_list([("X", 1.0)]), None),
        ("SparseObservable projector +", h1, SparseObservable("+"), None),
        ("SparseObservable projector 0", h1, SparseObservable("0"), None),
        (
            "SparseObservable mixed",
            two,
            SparseObservable.from_list([("Z-", 1.0), ("XX", 2)]),
            [1, 2],
        ),
        ("dict", h1, {"X": 1.0, "Z": 0.5}, None),
        ("list[str]", h1, ["X", "Z", "Y"], None),
        ("nested list", h1, [["X"], ["Z"]], None),
        ("object array", h1, np.array([["X", "Z"], ["Y", "X"]], dtype=object), None),
        ("ObservablesArray", h1, ObservablesArray(["X", "Z"]), None),
        ("list of SparsePauliOp", two, [SparsePauliOp("ZZ"), SparsePauliOp(["XX", "YY"])], [1, 2]),
        ("no observables []", h1, [], None),
        ("no observables (1, 0) x params ()", ry1, [[]], 0.3),
        ("no observables (2, 0) object array", h1, np.empty((2, 0), dtype=object), None),
        # broadcasting
        ("obs (3,1) x params (4,)", two, [["ZZ"], ["XX"], ["ZI"]], rng.uniform(0, 3, (4, 2))),
        ("obs (2,) x params (3,1)", two, ["ZZ", "IZ"], rng.uniform(0, 3, (3, 1, 2))),
        ("obs (1,) x params (2,3)", ry1, ["Z"], rng.uniform(0, 3, (2, 3, 1))),
        ("obs (2,3) x no-params (1,)", h1, [["X", "Z", "Y"], ["Z", "X", "I"]], [[]]),
        # circuits with nothing to do
        ("empty", QuantumCircuit(1), "Z", None),
        ("empty two qubits", QuantumCircuit(2), ["ZZ", "ZI", "XX"], None),
        ("transpiles to nothing", _cancelling(), "Z", None),
        ("zero qubits", QuantumCircuit(0), SparsePauliOp(""), None),
        ("zero qubits, shape (2,)", QuantumCircuit(0), SparsePauliOp(""), [[], []]),
    ]


def test_estimator_edges_match_statevector_estimator(device):
    backend, pm, noisy = device
    cases = estimator_cases()
    ours = []
    for _, circuit, obs, values in cases:
        isa = pm.run(circuit)
        ours.append((isa, lay(obs, isa), values))
    estimator = EstimatorV2(mode=backend, options={"seed_estimator": 5})
    result = estimator.run(ours, precision=PRECISION).result()
    reference = (
        StatevectorEstimator()
        .run([(c, paulis(o), v) for _, c, o, v in cases], precision=0)
        .result()
    )
    assert len(result) == len(cases)
    for (label, _, obs, _), mine, theirs in zip(cases, result, reference, strict=True):
        evs, expected = mine.data.evs, theirs.data.evs
        assert evs.shape == expected.shape, label
        assert mine.data.stds.shape == expected.shape, label
        assert evs.dtype == np.float64, label
        slack = 1e-6 + (NOISE_SLACK * _norm(obs) if noisy else 0.0)
        bound = 5 * np.asarray(mine.data.stds) + slack
        assert np.all(np.abs(evs - expected) <= bound), (label, evs, expected)


# ---------------------------------------------------------------------------------- sampler
def _unmeasured() -> QuantumCircuit:
    """Two classical registers, no measurement: Qiskit reads all zeros of each width."""
    qc = QuantumCircuit(
        QuantumRegister(2, "q"), ClassicalRegister(3, "a"), ClassicalRegister(2, "b")
    )
    qc.h(0)
    qc.x(1)
    return qc


def _several() -> QuantumCircuit:
    """Registers ``alpha`` (2), ``beta`` (1, never measured) and ``output`` (a QASM keyword)."""
    qc = QuantumCircuit(
        QuantumRegister(3, "q"),
        ClassicalRegister(2, "alpha"),
        ClassicalRegister(1, "beta"),
        ClassicalRegister(2, "output"),
    )
    qc.x(0)
    qc.h(1)
    qc.measure(0, qc.cregs[0][0])
    qc.measure(1, qc.cregs[2][1])
    qc.measure(2, qc.cregs[2][0])
    return qc


def _ry_measured() -> QuantumCircuit:
    qc = QuantumCircuit(1, 1)
    qc.ry(a, 0)
    qc.measure(0, 0)
    return qc


def _two_measured() -> QuantumCircuit:
    qc = _two()
    qc.measure_all()
    return qc


def _empty_measured() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    return qc


def _loose_clbits() -> QuantumCircuit:
    """A clbit outside every register: measured, but no register reports it."""
    qc = QuantumCircuit(QuantumRegister(2, "q"), [Clbit()], ClassicalRegister(1, "c"))
    qc.x(0)
    qc.measure(0, 0)
    qc.measure(1, 1)
    return qc


def _unmeasured_parametric() -> QuantumCircuit:
    qc = QuantumCircuit(QuantumRegister(1, "q"), ClassicalRegister(2, "z"))
    qc.ry(a, 0)
    return qc


def sampler_cases() -> list[tuple[str, QuantumCircuit, object, int | None]]:
    """``(label, logical circuit, parameter values, shots)`` of every sampler edge.

    PUBs that share a logical circuit share its transpiled object too (the server merges their
    parameter sets into one Aer experiment list; their results must still come apart).
    """
    ry, two = _ry_measured(), _two_measured()
    return [
        ("loose clbit", _loose_clbits(), None, None),
        ("unmeasured, parameters (3,)", _unmeasured_parametric(), [[0.1], [0.2], [0.3]], 9),
        ("registers without measurement", _unmeasured(), None, None),
        ("several registers, one unmeasured, 'output'", _several(), None, None),
        ("shots=1", bell_circuit(), None, 1),
        ("empty circuit with registers", _empty_measured(), None, 5),
        ("zero qubits with a register", QuantumCircuit(0, 2), None, 5),
        ("no-params [[]]", bell_circuit(), [[]], None),
        ("no-params zeros((2,0))", _unmeasured(), np.zeros((2, 0)), 7),
        ("zero sets (0, 1)", ry, np.zeros((0, 1)), None),
        ("zero sets (2, 0, 1)", ry, np.zeros((2, 0, 1)), 3),
        ("no-params zero sets (0, 0)", bell_circuit(), np.zeros((0, 0)), None),
        ("scalar", ry, 1.1, None),
        ("(k,1)", ry, [[0.2], [2.9]], None),
        ("(2,3,1)", ry, np.linspace(0, 3, 6).reshape(2, 3, 1), 50),
        ("dict name", ry, {"a": [0.5, 2.5]}, None),
        ("dict tuple (k,n)", two, {(a, b): [[0.3, 1.1], [2.0, 0.4]]}, None),
        ("BindingsArray", two, BindingsArray({a: [0.1, 0.2], b: [3.0, 1.5]}), None),
    ]


def _assert_same_distribution(mine, theirs, shots: int, slack: float, label: str) -> None:
    """Two independent samples of ``shots`` each agree within 5 binomial standard errors."""
    for index in np.ndindex(mine.shape):
        ours = mine[index].get_int_counts() if mine.shape else mine.get_int_counts()
        ref = theirs[index].get_int_counts() if theirs.shape else theirs.get_int_counts()
        for outcome in set(ours) | set(ref):
            p_ours, p_ref = ours.get(outcome, 0) / shots, ref.get(outcome, 0) / shots
            p = (p_ours + p_ref) / 2
            sigma = np.sqrt(max(p * (1 - p), 1 / shots) * 2 / shots)
            assert abs(p_ours - p_ref) <= 5 * sigma + slack, (label, index, ours, ref)


def test_sampler_edges_match_statevector_sampler(device):
    backend, pm, noisy = device
    cases = sampler_cases()
    isa: dict[int, QuantumCircuit] = {}
    pubs = [(isa.setdefault(id(c), pm.run(c)), v, s) for _, c, v, s in cases]
    result = SamplerV2(mode=backend).run(pubs, shots=SHOTS).result()
    reference = (
        StatevectorSampler(seed=11).run([(c, v, s) for _, c, v, s in cases], shots=SHOTS).result()
    )
    for (label, circuit, _, shots), mine, theirs in zip(cases, result, reference, strict=True):
        shots = shots or SHOTS
        assert list(mine.data.keys()) == list(theirs.data.keys()), label
        assert list(mine.data.keys()) == [r.name for r in circuit.cregs], label
        assert mine.data.shape == theirs.data.shape, label
        for name, ref_bits in theirs.data.items():
            bits = mine.data[name]
            assert bits.num_bits == ref_bits.num_bits, (label, name)
            assert bits.num_shots == ref_bits.num_shots == shots, (label, name)
            assert bits.shape == ref_bits.shape, (label, name)
            assert bits.array.shape == ref_bits.array.shape, (label, name)
            assert bits.array.dtype == np.uint8, (label, name)
            _assert_same_distribution(bits, ref_bits, shots, NOISE_SLACK if noisy else 0.0, label)


def test_unmeasured_registers_read_exact_zeros(device):
    """Never measured, never noisy: zeros of each register's width, on every backend."""
    backend, pm, _ = device
    result = SamplerV2(mode=backend).run([pm.run(_unmeasured())], shots=64).result()
    data = result[0].data
    assert {name: bits.num_bits for name, bits in data.items()} == {"a": 3, "b": 2}
    assert data.a.get_counts() == {"000": 64}
    assert data.b.get_counts() == {"00": 64}


def test_circuit_without_registers_warns_and_returns_no_data(device):
    """Qiskit's reference samplers warn and return an empty DataBin; so do we."""
    backend, pm, _ = device
    circuit = _h1()
    with pytest.warns(UserWarning, match="no output classical registers"):
        result = SamplerV2(mode=backend).run([pm.run(circuit)], shots=10).result()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = StatevectorSampler().run([circuit], shots=10).result()
    assert list(result[0].data.keys()) == list(reference[0].data.keys()) == []
    assert result[0].data.shape == reference[0].data.shape == ()


def _dynamic() -> QuantumCircuit:
    """Mid-circuit measurement, a conditional and a register that is never written."""
    qc = QuantumCircuit(
        QuantumRegister(2, "q"), ClassicalRegister(1, "m"), ClassicalRegister(2, "never")
    )
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.cregs[0], 1)):
        qc.x(1)
    qc.measure(1, 0)
    return qc


def test_dynamic_circuit_matches_backend_sampler(device):
    """``StatevectorSampler`` cannot run control flow; ``BackendSamplerV2`` on Aer can."""
    backend, pm, noisy = device
    circuit = _dynamic()
    shots = 1000
    mine = SamplerV2(mode=backend).run([pm.run(circuit)], shots=shots).result()[0].data
    theirs = (
        BackendSamplerV2(backend=AerSimulator(seed_simulator=3))
        .run([circuit], shots=shots)
        .result()[0]
        .data
    )
    assert list(mine.keys()) == list(theirs.keys()) == ["m", "never"]
    for name in ("m", "never"):
        assert mine[name].num_bits == theirs[name].num_bits
        assert mine[name].array.shape == theirs[name].array.shape
    assert mine.never.get_counts() == theirs.never.get_counts() == {"00": shots}
    _assert_same_distribution(mine.m, theirs.m, shots, NOISE_SLACK if noisy else 0.0, "dynamic")
