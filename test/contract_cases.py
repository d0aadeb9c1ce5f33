"""Inputs for the contract tests: the same option values and circuits fed to client and server.

Shared by ``test/unit/test_contract_verdicts.py`` (client setters, ``admission.prepare_job``, the
transpiler plugin's rule) and ``test/integration/test_contract_verdicts_server.py`` (the real
server over HTTP), so both halves are judged on exactly the same inputs.

Option cases are generated from the ``ibm-quantum-schemas`` models: for every leaf option, values
on and around each bound of its type, each ``Literal`` choice and a wrong one, and wrong JSON types.
The expected verdict of a case is the model's own (the whole minimal tree validated by the
program's ``OptionsModel``), except where a documented extra rule of the server applies
(``qiskit_rest_provider.wire.options``: strict JSON types, finite numbers, seed range, layer pair
depths, sampler ``meas_type``); such cases say which rule in ``why``.
"""

from __future__ import annotations

import copy
import json
import math
import types as types_module
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.classical import expr, types

from qiskit_rest_provider.wire.options import (
    NOT_PERFORMED,
    not_performed_default,
    option_fields,
    options_model,
)

# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class OptionCase:
    """One option value, the program it is set on, and the verdict the contract gives it."""

    program: str
    path: str  # below ``options`` ("twirling.strategy"), or "resilience_level"
    value: Any
    accepted: bool
    why: str = "model"

    @property
    def id(self) -> str:
        return f"{self.program}:{self.path}={self.value!r}"[:90]


def nested(path: str, value: Any) -> dict[str, Any]:
    """``"a.b.c", v`` -> ``{"a": {"b": {"c": v}}}``."""
    out: Any = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out


def _whole(value: Any) -> Any:
    """A whole float as the integer the checker turns it into (``128.0`` -> ``128``)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def model_accepts(program: str, path: str, value: Any) -> bool:
    """The published model's verdict on a tree holding only this value (lax, as IBM's service)."""
    if path == "resilience_level":
        return isinstance(value, int) and 0 <= value <= 2
    try:
        options_model(program).model_validate(nested(path, value))
    except ValidationError:
        return False
    return True


def client_verdict(program: str, path: str, value: Any) -> tuple[bool, str | None]:
    """Set the option as a user would, then build the job's options as ``run()`` does.

    Returns:
        ``(accepted, path named by the error)``.
    """
    from qiskit_rest_provider.primitives.options import EstimatorOptions, SamplerOptions

    options = SamplerOptions() if program == "sampler" else EstimatorOptions()
    *groups, leaf = path.split(".")
    holder: Any = options
    for group in groups:
        holder = getattr(holder, group)
    try:
        setattr(holder, leaf, value)
        options._program_options()
    except (ValueError, TypeError) as exc:
        return False, getattr(exc, "path", None)
    return True, None


_SEED_PATHS = {"simulator.seed_simulator", "seed_estimator"}
_SKIPPED = {"experimental", "simulator.noise_model", "resilience.layer_noise_model"}


def _members(annotation: Any) -> list[tuple[Any, list[Any]]]:
    """(base type, constraints) of each alternative of a field's annotation."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        flat = []
        for item in meta:
            flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        return [(base, flat)]
    if origin in (typing.Union, types_module.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            out.extend(_members(arg))
        return out
    return [(annotation, [])]


def _number_values(base: type, meta: list[Any], step: float) -> list[tuple[Any, str]]:
    """Values on and around each bound; ``(value, extra rule that rejects it or "")``."""
    values: list[tuple[Any, str]] = []
    for item in meta:
        for attr in ("ge", "gt", "le", "lt"):
            bound = getattr(item, attr, None)
            if isinstance(item, getattr(annotated_types, attr.capitalize())) and bound is not None:
                values += [(bound - step, ""), (bound, ""), (bound + step, "")]
    if base is int:
        low = next((v for v, _ in values), 1)
        values += [
            (float(low + 1), ""),  # a whole JSON number is an integer
            (low + 0.5, ""),
            (str(low + 1), "strict JSON types"),
            (True, "strict JSON types"),
        ]
    else:
        values += [
            (float("inf"), "finite numbers"),
            (float("nan"), "finite numbers"),
            ("0.5", "strict JSON types"),
        ]
    if not meta:
        values += [(-1 if base is int else -0.5, ""), (0, "")]
    return values


def _generated(program: str) -> list[OptionCase]:
    cases = []
    for field in option_fields(program):
        if field.path in _SKIPPED:
            continue
        values: list[tuple[Any, str]] = []
        for base, meta in _members(field.info.annotation):
            if base is bool:
                values += [(True, ""), (False, ""), ("yes", "strict JSON types"), (1, "strict")]
            elif base in (int, float):
                # rep_delay (seconds) must also lie in the backend's rep_delay_range (500 us on
                # the catalog's devices), a limit of the backend, not of the options contract.
                step = 1 if base is int else 1e-4 if field.path == "execution.rep_delay" else 0.5
                values += _number_values(base, meta, step)
            elif typing.get_origin(base) is Literal:
                choices = typing.get_args(base)
                values += [(choices[0], ""), (choices[-1], ""), ("bogus", "")]
        seen = set()
        for value, rule in values:
            key = (type(value).__name__, repr(value))
            if key in seen:
                continue
            seen.add(key)
            if field.path in _SEED_PATHS and isinstance(value, int) and value < 0:
                rule = "seed range"
            if field.path == "execution.meas_type" and value in ("kerneled", "avg_kerneled"):
                rule = "sampler meas_type"
            if (
                program == "estimator"
                and field.path in NOT_PERFORMED
                and model_accepts(program, field.path, value)
                and _whole(value) != not_performed_default(field.path)
            ):
                rule = "not performed"
            ok = model_accepts(program, field.path, value) and not rule
            cases.append(OptionCase(program, field.path, value, ok, rule or "model"))
    return cases


# The values of issue 10 that the client used to accept and the server to reject.
ISSUE_CASES = [
    # The models (and qiskit-ibm-runtime's PecOptions) say max_overhead > 0; PEC is not simulated,
    # so the server has no reason to be stricter: both halves now accept it.
    OptionCase("estimator", "resilience.pec.max_overhead", 0.5, True),
    OptionCase("estimator", "resilience.zne.noise_factors", [0.5, 1.0], False),
    OptionCase("estimator", "resilience.zne.extrapolator", "cubic", False),
    OptionCase("estimator", "resilience.layer_noise_learning.layer_pair_depths", [0.5], False),
    OptionCase("sampler", "simulator.seed_simulator", -5, False, "seed range"),
]

LIST_CASES = [
    OptionCase("estimator", "resilience.zne.noise_factors", [1, 3, 5], True),
    OptionCase("estimator", "resilience.zne.noise_factors", (1.0, 2.0), True),
    OptionCase("estimator", "resilience.zne.noise_factors", [1.0], False),  # 2 needed (model)
    OptionCase("estimator", "resilience.zne.noise_factors", [1, "3"], False, "strict JSON types"),
    OptionCase("estimator", "resilience.zne.extrapolator", ["linear", "exponential"], True),
    OptionCase("estimator", "resilience.zne.extrapolator", ["linear", "cubic"], False),
    OptionCase("estimator", "resilience.zne.extrapolator", [], False),
    OptionCase("estimator", "resilience.zne.extrapolator", "double_exponential", False),
    OptionCase("estimator", "resilience.zne.extrapolated_noise_factors", [0, 0.5, 1], True),
    OptionCase("estimator", "resilience.zne.extrapolated_noise_factors", "auto", True),
    OptionCase("estimator", "resilience.zne.extrapolated_noise_factors", "some", False),
    OptionCase(
        "estimator",
        "resilience.layer_noise_learning.layer_pair_depths",
        [0, 2],
        False,
        "not performed",
    ),
    OptionCase(
        "estimator",
        "resilience.layer_noise_learning.layer_pair_depths",
        [0, 1, 2, 4, 16, 32],
        True,
    ),
    OptionCase("estimator", "resilience.layer_noise_learning.max_layers_to_learn", 2, True),
    OptionCase(
        "estimator", "resilience.layer_noise_learning.layer_pair_depths", [-1], False, "depths"
    ),
    OptionCase("sampler", "simulator.coupling_map", [[0, 1], [1, 2]], True),
    OptionCase("sampler", "simulator.coupling_map", [[0]], False),
    OptionCase("sampler", "simulator.coupling_map", [[0, -1]], False, "non-negative qubits"),
    OptionCase("sampler", "simulator.basis_gates", ["x", "sx"], True),
    OptionCase("sampler", "simulator.basis_gates", "x", False),
    OptionCase("sampler", "simulator.noise_model", 5, False),
    OptionCase("sampler", "simulator.noise_model", {"errors": "none"}, False, "Aer noise model"),
    OptionCase("sampler", "experimental", {"anything": 1}, True),
    OptionCase("sampler", "experimental", "x", False),
    OptionCase("estimator", "resilience_level", 0, True),
    OptionCase("estimator", "resilience_level", 2, True),
    OptionCase("estimator", "resilience_level", 3, False),
    OptionCase("estimator", "resilience_level", -1, False),
    OptionCase("estimator", "resilience_level", True, False, "strict JSON types"),
]

GENERATED_CASES = _generated("sampler") + _generated("estimator")
OPTION_CASES = ISSUE_CASES + LIST_CASES + GENERATED_CASES

# Pairs that only the whole tree can judge (a rule across options of the models).
COMBINED_CASES = [
    ("estimator", {"resilience": {"pec_mitigation": True, "zne_mitigation": True}}, False),
    ("estimator", {"resilience": {"pec_mitigation": True, "zne_mitigation": False}}, True),
    (
        "estimator",
        {
            "resilience": {
                "zne": {"noise_factors": [1, 2, 3], "extrapolator": "polynomial_degree_2"}
            }
        },
        True,
    ),
    (
        "estimator",
        {"resilience": {"zne": {"noise_factors": [1, 2], "extrapolator": "polynomial_degree_2"}}},
        False,
    ),
]


# ----------------------------------------------------------------------------- circuits

RZZ_BACKEND = "rest_rzz_5q"


def rzz_configuration(devices_dir: Path) -> dict[str, Any]:
    """``rest_line_5q``'s configuration with fractional ``rzz`` (bounded to [0, pi/2]) added."""
    conf = json.loads((devices_dir / "conf_rest_line_5q.json").read_text())
    conf = copy.deepcopy(conf)
    conf["backend_name"] = RZZ_BACKEND
    conf["description"] = "5-qubit ideal line with fractional rzz (contract tests)"
    conf["basis_gates"] = [*conf["basis_gates"], "rzz"]
    conf["supported_instructions"] = [*conf["supported_instructions"], "rzz"]
    cz = next(g for g in conf["gates"] if g["name"] == "cz")
    conf["gates"] = [
        *conf["gates"],
        {
            "name": "rzz",
            "parameters": ["theta"],
            "qasm_def": "",
            "coupling_map": cz["coupling_map"],
        },
    ]
    return conf


def _measured(n: int) -> QuantumCircuit:
    return QuantumCircuit(n, 1)


def _finish(qc: QuantumCircuit) -> QuantumCircuit:
    qc.measure(0, 0)
    return qc


def _c_ok(n: int) -> QuantumCircuit:
    qc = _measured(n)
    qc.x(0)
    qc.sx(1)
    qc.rz(0.3, 1)
    qc.cz(0, 1)
    qc.barrier()
    qc.delay(16, 0)
    qc.reset(1)
    return _finish(qc)


def _c_h(n: int) -> QuantumCircuit:
    qc = _measured(n)
    qc.h(0)
    return _finish(qc)


def _c_uncoupled(n: int) -> QuantumCircuit:
    qc = _measured(n)
    qc.cz(0, 2)  # neither the line nor the heavy hex couples 0 and 2
    return _finish(qc)


def _c_store(n: int) -> QuantumCircuit:
    qc = _measured(n)
    flag = qc.add_var("flag", expr.lift(False))
    qc.x(0)
    qc.measure(0, 0)
    qc.store(flag, expr.lift(qc.clbits[0]))
    return _finish(qc)


def _c_input_var(n: int) -> QuantumCircuit:
    qc = QuantumCircuit(n, 1, inputs=[expr.Var.new("k", types.Bool())])
    qc.x(0)
    return _finish(qc)


def _c_if_ok(n: int) -> QuantumCircuit:
    qc = _measured(n)
    qc.x(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)) as else_:
        qc.x(1)
    with else_:
        qc.sx(1)
    return _finish(qc)


def _c_if_h(n: int) -> QuantumCircuit:
    qc = _measured(n)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.h(3)
    return _finish(qc)


def _c_block_mapping_ok(n: int) -> QuantumCircuit:
    # The block acts on outer qubits (3, 4): its local (0, 1) must map to the coupled (3, 4).
    qc = _measured(n)
    qc.measure(0, 0)
    body = QuantumCircuit(2)
    body.cz(0, 1)
    qc.if_else((qc.clbits[0], 1), body, None, [3, 4], [])
    return _finish(qc)


def _c_block_mapping_bad(n: int) -> QuantumCircuit:
    # The same block on outer qubits (0, 2), which are not coupled.
    qc = _measured(n)
    qc.measure(0, 0)
    body = QuantumCircuit(2)
    body.cz(0, 1)
    qc.if_else((qc.clbits[0], 1), body, None, [0, 2], [])
    return _finish(qc)


def _c_loops(n: int) -> QuantumCircuit:
    qc = _measured(n)
    with qc.for_loop(range(2)):
        qc.x(0)
    qc.measure(0, 0)
    with qc.while_loop((qc.clbits[0], 1)):
        qc.x(0)
        qc.measure(0, 0)
    with qc.switch(qc.clbits[0]) as case:
        with case(0):
            qc.x(1)
        with case(case.DEFAULT):
            qc.sx(1)
    return _finish(qc)


def _c_box(n: int) -> QuantumCircuit:
    qc = _measured(n)
    with qc.box():
        qc.x(0)
    return _finish(qc)


def _c_rzz(angle: Any) -> Any:
    def build(n: int) -> QuantumCircuit:
        qc = _measured(n)
        qc.rzz(angle, 0, 1)
        return _finish(qc)

    build.__name__ = f"_c_rzz_{angle}"
    return build


@dataclass(frozen=True)
class IsaCase:
    """A circuit, the backend it is checked against, and whether that backend accepts it."""

    backend: str
    name: str
    build: Any
    accepted: bool

    @property
    def id(self) -> str:
        return f"{self.backend}:{self.name}"

    def circuit(self, num_qubits: int) -> QuantumCircuit:
        return self.build(num_qubits)


_DEVICE_CIRCUITS = [
    ("ok", _c_ok, True),
    ("h_not_in_target", _c_h, False),
    ("cz_uncoupled", _c_uncoupled, False),
    ("store", _c_store, False),
    ("input_var", _c_input_var, False),
    ("if_else_ok", _c_if_ok, True),
    ("if_else_h", _c_if_h, False),
    ("loops_ok", _c_loops, True),
    ("box", _c_box, False),
    ("block_qubits_mapped_ok", _c_block_mapping_ok, True),
    ("block_qubits_mapped_bad", _c_block_mapping_bad, False),
]

ISA_CASES = [
    IsaCase(backend, name, build, ok)
    for backend in ("rest_line_5q", "rest_hex_27q")
    for name, build, ok in _DEVICE_CIRCUITS
    if not (backend == "rest_hex_27q" and name.startswith("block_qubits"))  # coupling differs
] + [
    IsaCase("rest_line_5q", "rzz_not_in_target", _c_rzz(1.0), False),
    IsaCase(RZZ_BACKEND, "rzz_2.0", _c_rzz(2.0), False),
    IsaCase(RZZ_BACKEND, "rzz_pi/2", _c_rzz(math.pi / 2), True),
    IsaCase(RZZ_BACKEND, "rzz_1.0", _c_rzz(1.0), True),
    IsaCase(RZZ_BACKEND, "rzz_-0.5", _c_rzz(-0.5), False),
    IsaCase(RZZ_BACKEND, "rzz_parameter", _c_rzz(Parameter("t")), True),
    IsaCase(RZZ_BACKEND, "ok", _c_ok, True),
    IsaCase(RZZ_BACKEND, "store", _c_store, False),
]
