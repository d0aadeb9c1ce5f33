"""The ``rest_provider`` translation plugin: registration, ISA output, equivalence, and what it
does that Qiskit's default translation does not."""

from __future__ import annotations

import importlib.metadata
import math
import subprocess
import sys

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import (
    CZGate,
    ECRGate,
    Measure,
    Reset,
    RXGate,
    RZGate,
    RZZGate,
    SXGate,
    XGate,
)
from qiskit.circuit.random import random_circuit
from qiskit.providers import BackendV2, Options
from qiskit.quantum_info import Operator
from qiskit.transpiler import Target, TranspilerError, generate_preset_pass_manager
from qiskit.transpiler.preset_passmanagers.plugin import list_stage_plugins

from qiskit_rest_provider.transpiler.passes import (
    ReportUnsupportedInstructions,
    unsupported_instructions,
)
from qiskit_rest_provider.transpiler.plugin import RestTranslationPlugin

LEVELS = (0, 1, 2, 3)


# --------------------------------------------------------------------------------------------------
# Targets with constraints beyond basis names (the cases Qiskit's default translation gets wrong)


def _base_target(num_qubits: int, *, x_on=None) -> Target:
    target = Target(num_qubits=num_qubits)
    target.add_instruction(RZGate(Parameter("a")), {(q,): None for q in range(num_qubits)})
    target.add_instruction(SXGate(), {(q,): None for q in range(num_qubits)})
    x_qubits = range(num_qubits) if x_on is None else x_on
    target.add_instruction(XGate(), {(q,): None for q in x_qubits})
    target.add_instruction(Measure(), {(q,): None for q in range(num_qubits)})
    target.add_instruction(Reset(), {(q,): None for q in range(num_qubits)})
    return target


def fractional_target() -> Target:
    """IBM-style fractional gates: rx in [0, pi] and rzz in [0, pi/2] on a 4-qubit line."""
    target = _base_target(4)
    edges = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)]
    target.add_instruction(
        RXGate(Parameter("a")), {(q,): None for q in range(4)}, angle_bounds=[(0, math.pi)]
    )
    target.add_instruction(CZGate(), {edge: None for edge in edges})
    target.add_instruction(
        RZZGate(Parameter("a")), {edge: None for edge in edges}, angle_bounds=[(0, math.pi / 2)]
    )
    return target


def one_way_target() -> Target:
    """ecr only on (0, 1), cz on (1, 2) and (2, 3), x only on qubit 0: non-global gates."""
    target = _base_target(4, x_on=[0])
    target.add_instruction(ECRGate(), {(0, 1): None})
    target.add_instruction(CZGate(), {(1, 2): None, (2, 3): None})
    return target


def narrow_rz_target() -> Target:
    """rz only in [-pi/2, pi/2] (so even Z = rz(pi) is out of range) and one-way ecr."""
    target = Target(num_qubits=3)
    target.add_instruction(
        RZGate(Parameter("a")),
        {(q,): None for q in range(3)},
        angle_bounds=[(-math.pi / 2, math.pi / 2)],
    )
    target.add_instruction(SXGate(), {(q,): None for q in range(3)})
    target.add_instruction(XGate(), {(q,): None for q in range(3)})
    target.add_instruction(ECRGate(), {(0, 1): None, (1, 2): None})
    target.add_instruction(Measure(), {(q,): None for q in range(3)})
    return target


def rx_rz_target() -> Target:
    """No sx/x: 1q gates are rz and rx in [0, pi/2] (so X = rx(pi) must be split), plus cz."""
    target = Target(num_qubits=3)
    target.add_instruction(RZGate(Parameter("a")), {(q,): None for q in range(3)})
    target.add_instruction(
        RXGate(Parameter("a")), {(q,): None for q in range(3)}, angle_bounds=[(0, math.pi / 2)]
    )
    target.add_instruction(CZGate(), {(0, 1): None, (1, 0): None, (1, 2): None, (2, 1): None})
    target.add_instruction(Measure(), {(q,): None for q in range(3)})
    return target


def _corpus(num_qubits: int, count: int, *, measure: bool, seed: int = 7) -> list[QuantumCircuit]:
    return [
        random_circuit(num_qubits, 3, max_operands=2, measure=measure, seed=seed + i)
        for i in range(count)
    ]


def _equivalent(out: QuantumCircuit, circuit: QuantumCircuit) -> bool:
    """Whether ``out`` (with its layout) implements ``circuit``; ancillas start and end idle."""
    padded = QuantumCircuit(out.num_qubits)
    padded.compose(circuit, range(circuit.num_qubits), inplace=True)
    return Operator.from_circuit(out).equiv(Operator(padded))


def _run(target: Target, circuits, level: int, method: str = "rest_provider"):
    pm = generate_preset_pass_manager(
        level, target=target, translation_method=method, seed_transpiler=11
    )
    return pm.run(circuits, num_processes=1)


# --------------------------------------------------------------------------------------------------
# Registration


def test_entry_point_is_registered():
    names = {
        ep.name: ep for ep in importlib.metadata.entry_points(group="qiskit.transpiler.translation")
    }
    assert "rest_provider" in names
    assert names["rest_provider"].load() is RestTranslationPlugin
    assert "rest_provider" in list_stage_plugins("translation")


def test_plugin_module_is_import_light():
    code = (
        "import sys, qiskit_rest_provider.transpiler.plugin as p; p.RestTranslationPlugin();"
        "heavy = [m for m in ('requests', 'fastapi', 'qiskit_aer', 'sqlalchemy',"
        " 'qiskit_rest_provider.transpiler.remote', 'qiskit_rest_provider.server')"
        " if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _RestLikeBackend(BackendV2):
    """The smallest BackendV2 that names our plugin, as RestBackend does."""

    def __init__(self, target: Target) -> None:
        super().__init__(name="rest_like")
        self._target = target

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self):
        return None

    @classmethod
    def _default_options(cls):
        return Options()

    def run(self, run_input, **options):
        raise NotImplementedError

    def get_translation_stage_plugin(self) -> str:
        return "rest_provider"


@pytest.mark.parametrize("level", LEVELS)
def test_backend_selects_plugin_without_arguments(level):
    target = fractional_target()
    pm = generate_preset_pass_manager(level, backend=_RestLikeBackend(target), seed_transpiler=1)
    tasks = pm.translation.to_flow_controller().tasks
    assert any(isinstance(task, ReportUnsupportedInstructions) for task in tasks)
    circuit = QuantumCircuit(2)
    circuit.rx(-2.5, 0)
    circuit.rzz(2.9, 0, 1)
    circuit.measure_all()
    assert unsupported_instructions(target, pm.run(circuit)) == []


def test_rest_backend_names_the_plugin():
    backend_module = pytest.importorskip("qiskit_rest_provider.backend")
    assert backend_module.RestBackend.get_translation_stage_plugin(None) == "rest_provider"


# --------------------------------------------------------------------------------------------------
# What the plugin does that Qiskit's default translation does not


def test_default_translation_fails_on_bounded_rx_and_plugin_fixes_it():
    target = fractional_target()
    circuit = QuantumCircuit(2)
    circuit.rx(-0.7, 0)
    circuit.rx(4.0, 1)
    circuit.rzz(-0.3, 0, 1)
    circuit.rzz(2.5, 0, 1)
    with pytest.raises(KeyError, match="rx"):
        _run(target, circuit, 0, method="translator")
    out = _run(target, circuit, 0)
    assert unsupported_instructions(target, out) == []
    assert _equivalent(out, circuit)


def test_default_translation_fails_on_one_way_ecr_and_plugin_fixes_it():
    target = one_way_target()
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.ecr(1, 0)  # ecr exists only as (0, 1); Qiskit's flip rule needs gates q1 lacks
    layout = [0, 1]
    with pytest.raises(TranspilerError, match="direction"):
        generate_preset_pass_manager(
            1, target=target, initial_layout=layout, translation_method="translator"
        ).run(circuit)
    out = generate_preset_pass_manager(
        1, target=target, initial_layout=layout, translation_method="rest_provider"
    ).run(circuit)
    assert unsupported_instructions(target, out) == []
    assert _equivalent(out, circuit)


@pytest.mark.parametrize("bounds", [(-math.pi / 2, 0.0), (0.0, 0.5), (-0.2, 0.2)])
def test_default_output_violates_rzz_bounds_and_plugin_output_does_not(bounds):
    """Qiskit's built-in rzz wrapper assumes IBM's [0, pi/2]; other bounds leave bad output."""
    target = Target(num_qubits=2)
    target.add_instruction(RZGate(Parameter("a")), {(0,): None, (1,): None})
    target.add_instruction(SXGate(), {(0,): None, (1,): None})
    target.add_instruction(XGate(), {(0,): None, (1,): None})
    target.add_instruction(CZGate(), {(0, 1): None, (1, 0): None})
    target.add_instruction(
        RZZGate(Parameter("a")), {(0, 1): None, (1, 0): None}, angle_bounds=[bounds]
    )
    circuit = QuantumCircuit(2)
    circuit.rzz(1.3, 0, 1)
    circuit.rzz(-1.0, 1, 0)
    default_out = _run(target, circuit, 0, method="translator")
    assert unsupported_instructions(target, default_out) != []
    assert not all(
        target.instruction_supported(
            inst.operation.name,
            tuple(default_out.find_bit(q).index for q in inst.qubits),
            parameters=list(inst.operation.params),
        )
        for inst in default_out.data
    )
    ours = _run(target, circuit, 0)
    for inst in ours.data:
        qargs = tuple(ours.find_bit(q).index for q in inst.qubits)
        assert target.instruction_supported(
            inst.operation.name, qargs, parameters=list(inst.operation.params)
        )
    assert _equivalent(ours, circuit)


def test_zero_angle_under_positive_lower_bound_is_dropped():
    from qiskit_rest_provider.transpiler.angles import wrap_rotation

    dag = wrap_rotation("rzz", 4 * math.pi, lambda angle: 0.1 <= angle <= 1.0)
    assert dag.size() == 0


# --------------------------------------------------------------------------------------------------
# Random corpus on synthetic constrained targets: ISA for every level, and equivalent


@pytest.mark.parametrize(
    "make_target", [fractional_target, one_way_target, narrow_rz_target, rx_rz_target]
)
@pytest.mark.parametrize("level", LEVELS)
def test_corpus_is_isa_and_equivalent_on_constrained_targets(make_target, level):
    target = make_target()
    circuits = _corpus(3, 6, measure=False)
    for circuit, out in zip(circuits, _run(target, circuits, level)):
        assert unsupported_instructions(target, out) == [], circuit
        assert _equivalent(out, circuit), circuit


def test_control_flow_blocks_are_fixed_too():
    target = fractional_target()
    for name in ("if_else", "for_loop"):
        from qiskit.circuit import ForLoopOp, IfElseOp

        cls = {"if_else": IfElseOp, "for_loop": ForLoopOp}[name]
        target.add_instruction(cls, name=name)
    circuit = QuantumCircuit(2, 1)
    circuit.h(0)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.rx(-1.2, 1)
        circuit.rzz(3.0, 0, 1)
    with circuit.for_loop(range(2)):
        circuit.rx(5.0, 0)
    for level in LEVELS:
        out = _run(target, circuit, level)
        assert unsupported_instructions(target, out) == []


def test_parameterized_bounded_gates_are_left_for_binding_time():
    target = fractional_target()
    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    circuit.rzz(theta, 0, 1)
    out = _run(target, circuit, 1)
    assert unsupported_instructions(target, out) == []
    assert out.parameters == {theta}


def test_wrap_rotation_is_exact_including_phase():
    from qiskit.converters import dag_to_circuit

    from qiskit_rest_provider.transpiler.angles import _ROTATIONS, SUPPORTED_NAMES, wrap_rotation

    rng = np.random.default_rng(5)
    for name in sorted(SUPPORTED_NAMES):
        gate_cls = _ROTATIONS[name][0]
        for theta in [*rng.uniform(-13, 13, size=6), math.pi, -math.pi, 0.0]:
            for low, high in [(0, math.pi / 2), (0, math.pi), (-0.3, 0.3), (0.1, 0.2)]:
                dag = wrap_rotation(name, theta, lambda a, lo=low, hi=high: lo <= a <= hi)
                circuit = dag_to_circuit(dag)
                for inst in circuit.data:
                    if inst.operation.name == name:
                        assert low <= float(inst.operation.params[0]) <= high
                assert np.allclose(Operator(circuit).data, gate_cls(theta).to_matrix(), atol=1e-9)


def test_empty_bounds_raise_a_named_error():
    from qiskit_rest_provider.transpiler.angles import wrap_rotation

    with pytest.raises(TranspilerError, match="rzz"):
        wrap_rotation("rzz", 1.0, lambda angle: False)
