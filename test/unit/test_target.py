"""Our Target builder against qiskit-ibm-runtime's ``convert_to_target`` on real snapshots.

For every ``conf_*.json`` / ``props_*.json`` pair shipped in qiskit-ibm-runtime's fake provider we
build our Target from the raw JSON and theirs the way ``FakeBackendV2.target`` does
(``decode_backend_configuration`` + ``properties_from_server_data`` on the dicts, then
``BackendConfiguration.from_dict`` / ``BackendProperties.from_dict`` and
``convert_to_target(..., include_control_flow=True, include_fractional_gates=True)``), and require
the same operations, qargs, errors, durations, qubit properties, dt, timing constraints and angle
bounds. qiskit-ibm-runtime is a test-only dependency.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import pytest
from qiskit.transpiler import Target

from qiskit_rest_provider.wire.target import target_from_backend_data

runtime = pytest.importorskip("qiskit_ibm_runtime")

from qiskit_ibm_runtime.models import BackendConfiguration, BackendProperties  # noqa: E402
from qiskit_ibm_runtime.utils.backend_converter import convert_to_target  # noqa: E402
from qiskit_ibm_runtime.utils.backend_decoder import (  # noqa: E402
    decode_backend_configuration,
    properties_from_server_data,
)

BACKENDS_DIR = Path(runtime.__file__).parent / "fake_provider" / "backends"


def _snapshots() -> list:
    """Every (conf, props) pair: props_X.json pairs with conf_X.json; extra props files
    (e.g. props_cambridge_alt.json) pair with the directory's only configuration."""
    cases = []
    for conf in sorted(BACKENDS_DIR.glob("*/conf_*.json")):
        props_files = sorted(conf.parent.glob("props_*.json"))
        if not props_files:
            cases.append(pytest.param(conf, None, id=conf.parent.name))
        for props in props_files:
            case_id = props.stem.removeprefix("props_")
            cases.append(pytest.param(conf, props, id=case_id))
    return cases


SNAPSHOTS = _snapshots()


def test_every_fake_backend_directory_is_covered():
    dirs = {p.name for p in BACKENDS_DIR.iterdir() if p.is_dir() and p.name != "__pycache__"}
    covered = {case.values[0].parent.name for case in SNAPSHOTS}
    assert len(dirs) >= 60
    assert covered == dirs


def _theirs(conf: dict, props: dict | None) -> Target:
    """qiskit-ibm-runtime's Target, built as ``FakeBackendV2.target`` does (mutates the dicts)."""
    decode_backend_configuration(conf)
    properties = None
    if props is not None:
        properties_from_server_data(props)
        properties = BackendProperties.from_dict(props)
    return convert_to_target(
        configuration=BackendConfiguration.from_dict(conf),
        properties=properties,
        include_control_flow=True,
        include_fractional_gates=True,
    )


def assert_same_target(ours: Target, theirs: Target) -> None:
    assert ours.num_qubits == theirs.num_qubits
    assert ours.dt == theirs.dt
    for attr in ("granularity", "min_length", "pulse_alignment", "acquire_alignment"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert set(ours.operation_names) == set(theirs.operation_names)
    for name in theirs.operation_names:
        op_ours, op_theirs = ours.operation_from_name(name), theirs.operation_from_name(name)
        if isinstance(op_theirs, type):  # control flow is stored as a class
            assert op_ours is op_theirs, name
        else:
            assert type(op_ours) is type(op_theirs), name
            assert op_ours.num_qubits == op_theirs.num_qubits, name
            assert op_ours.num_clbits == op_theirs.num_clbits, name
            assert len(op_ours.params) == len(op_theirs.params), name
        qargs_ours = ours.qargs_for_operation_name(name)
        qargs_theirs = theirs.qargs_for_operation_name(name)
        assert (qargs_ours is None) == (qargs_theirs is None), name
        if qargs_theirs is None:
            continue
        assert set(qargs_ours) == set(qargs_theirs), name
        props_ours, props_theirs = ours[name], theirs[name]
        for qargs in qargs_theirs:
            p_ours, p_theirs = props_ours[qargs], props_theirs[qargs]
            assert (p_ours is None) == (p_theirs is None), (name, qargs)
            if p_theirs is not None:
                assert p_ours.error == p_theirs.error, (name, qargs)
                assert p_ours.duration == p_theirs.duration, (name, qargs)
        assert ours.gate_has_angle_bounds(name) == theirs.gate_has_angle_bounds(name), name
        if theirs.gate_has_angle_bounds(name):
            for angle in (-0.1, 0.0, 0.7, math.pi / 2, 2.0):
                assert ours.supported_angle_bound(name, [angle]) == theirs.supported_angle_bound(
                    name, [angle]
                )
    if theirs.qubit_properties is None:
        assert ours.qubit_properties is None
    else:
        assert len(ours.qubit_properties) == len(theirs.qubit_properties)
        for q_ours, q_theirs in zip(ours.qubit_properties, theirs.qubit_properties):
            assert q_ours.t1 == q_theirs.t1
            assert q_ours.t2 == q_theirs.t2
            assert q_ours.frequency == q_theirs.frequency


@pytest.mark.parametrize(("conf_path", "props_path"), SNAPSHOTS)
def test_matches_convert_to_target(conf_path: Path, props_path: Path | None):
    conf = json.loads(conf_path.read_bytes())
    props = json.loads(props_path.read_bytes()) if props_path else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours = target_from_backend_data(conf, props)
        ours_no_props = target_from_backend_data(conf)
    # Our builder must not modify its inputs (theirs does, so it runs second).
    theirs_no_props = _theirs(copy.deepcopy(conf), None)
    theirs = _theirs(conf, props)
    assert_same_target(ours, theirs)
    assert_same_target(ours_no_props, theirs_no_props)


def _manila() -> tuple[dict, dict]:
    folder = BACKENDS_DIR / "manila"
    conf = json.loads((folder / "conf_manila.json").read_bytes())
    props = json.loads((folder / "props_manila.json").read_bytes())
    return conf, props


def _mark_faulty(props: dict, *, qubit: int, gate: str, qargs: list[int]) -> None:
    date = props["last_update_date"]
    props["qubits"][qubit].append({"date": date, "name": "operational", "unit": "", "value": 0})
    for entry in props["gates"]:
        if entry["gate"] == gate and entry["qubits"] == qargs:
            entry["parameters"].append(
                {"date": date, "name": "operational", "unit": "", "value": 0}
            )
            break
    else:  # pragma: no cover - the snapshot changed
        raise AssertionError(f"{gate}{qargs} not in the snapshot")


def test_faulty_qubits_and_gates_excluded_like_theirs():
    conf, props = _manila()
    _mark_faulty(props, qubit=4, gate="cx", qargs=[2, 1])
    ours = target_from_backend_data(conf, props)
    assert (4,) not in ours.qargs_for_operation_name("measure")
    assert (4,) not in ours.qargs_for_operation_name("sx")
    assert (3, 4) not in ours.qargs_for_operation_name("cx")
    assert (2, 1) not in ours.qargs_for_operation_name("cx")
    assert (1, 2) in ours.qargs_for_operation_name("cx")
    assert (4,) not in ours.qargs_for_operation_name("reset")
    assert (4,) not in ours.qargs_for_operation_name("delay")
    assert_same_target(ours, _theirs(copy.deepcopy(conf), copy.deepcopy(props)))

    kept = target_from_backend_data(conf, props, include_faulty=True)
    assert (4,) in kept.qargs_for_operation_name("measure")
    assert (2, 1) in kept.qargs_for_operation_name("cx")


def test_units_converted_to_si():
    conf, props = _manila()
    target = target_from_backend_data(conf, props)
    assert target.dt == pytest.approx(conf["dt"] * 1e-9)
    q0 = {n["name"]: n for n in props["qubits"][0]}
    assert q0["T1"]["unit"] == "us"
    assert target.qubit_properties[0].t1 == pytest.approx(q0["T1"]["value"] * 1e-6)
    assert target.qubit_properties[0].frequency == pytest.approx(q0["frequency"]["value"] * 1e9)
    assert target["measure"][(0,)].duration == pytest.approx(q0["readout_length"]["value"] * 1e-9)
    sx0 = next(g for g in props["gates"] if g["gate"] == "sx" and g["qubits"] == [0])
    length = next(p for p in sx0["parameters"] if p["name"] == "gate_length")
    assert target["sx"][(0,)].duration == pytest.approx(length["value"] * 1e-9)
    assert target.granularity == conf["timing_constraints"]["granularity"]


def test_inputs_not_modified():
    conf, props = _manila()
    conf_before, props_before = copy.deepcopy(conf), copy.deepcopy(props)
    target_from_backend_data(conf, props)
    assert conf == conf_before and props == props_before


def test_unknown_gate_warns_and_is_skipped():
    conf = {"n_qubits": 2, "basis_gates": ["cz", "mystery"], "gates": [], "coupling_map": []}
    with pytest.warns(RuntimeWarning, match="mystery"):
        target = target_from_backend_data(conf)
    assert "mystery" not in target.operation_names
    assert "cz" in target.operation_names


def test_custom_gate_from_gate_config_and_signature():
    conf = {
        "n_qubits": 3,
        "basis_gates": ["cz", "mygate"],
        "gates": [
            {"name": "mygate", "parameters": ["a"], "qasm_def": "", "coupling_map": [[0, 1]]}
        ],
        "supported_instructions": ["measure", "measure_2", "if_else"],
        "instruction_signatures": [
            {"name": "measure_2", "num_qubits": 1, "num_clbits": 1, "parameters": []}
        ],
    }
    target = target_from_backend_data(conf)
    assert target.operation_from_name("mygate").num_qubits == 2
    assert target.qargs_for_operation_name("mygate") == {(0, 1)}
    assert target.operation_from_name("measure_2").num_clbits == 1
    assert "if_else" in target.operation_names
    assert "reset" not in target.operation_names  # not in supported_instructions
    assert target.qargs_for_operation_name("measure") == {(0,), (1,), (2,)}


def test_fractional_gate_filtering_is_opt_in():
    conf = {
        "n_qubits": 2,
        "basis_gates": ["cz", "rz", "rx", "rzz"],
        "gates": [],
        "coupling_map": [[0, 1]],
    }
    full = target_from_backend_data(conf)
    assert {"rx", "rzz"} <= set(full.operation_names)
    assert full.gate_has_angle_bounds("rzz")
    assert not full.supported_angle_bound("rzz", [2.0])
    filtered = target_from_backend_data(conf, include_fractional_gates=False)
    assert "rx" not in filtered.operation_names and "rzz" not in filtered.operation_names
    assert "rz" in filtered.operation_names  # virtual Z is not fractional
    no_cf = target_from_backend_data(
        {**conf, "supported_instructions": ["measure", "if_else"]}, include_control_flow=False
    )
    assert "if_else" not in no_cf.operation_names


def test_missing_qubit_records_tolerated():
    conf, props = _manila()
    props["qubits"][3] = []
    target = target_from_backend_data(conf, props)
    assert target.qubit_properties[3].t1 is None
    assert target["measure"][(3,)].error is None


def test_bad_n_qubits():
    with pytest.raises(ValueError, match="n_qubits"):
        target_from_backend_data({"basis_gates": []})


@pytest.mark.parametrize("name", ["fez", "fractional"])
def test_fractional_filtering_matches_theirs(name: str):
    folder = BACKENDS_DIR / name
    conf = json.loads((folder / f"conf_{name}.json").read_bytes())
    props = json.loads((folder / f"props_{name}.json").read_bytes())
    ours = target_from_backend_data(conf, props, include_fractional_gates=False)
    decode_backend_configuration(conf)
    properties_from_server_data(props)
    theirs = convert_to_target(
        BackendConfiguration.from_dict(conf),
        BackendProperties.from_dict(props),
        include_control_flow=True,
        include_fractional_gates=False,
    )
    assert "rzz" not in ours.operation_names and "rx" not in ours.operation_names
    assert_same_target(ours, theirs)


def test_include_faulty_matches_theirs_without_filtering():
    conf, props = _manila()
    _mark_faulty(props, qubit=0, gate="cx", qargs=[3, 4])
    ours = target_from_backend_data(conf, props, include_faulty=True)
    decode_backend_configuration(conf)
    properties_from_server_data(props)
    theirs = convert_to_target(
        BackendConfiguration.from_dict(conf),
        BackendProperties.from_dict(props),
        include_control_flow=True,
        include_fractional_gates=True,
        filter_faulty=False,
    )
    assert_same_target(ours, theirs)


def test_gate_whose_only_calibration_is_faulty_is_unavailable():
    # qiskit-ibm-runtime raises a TypeError here; we pin the gate to its (empty) good qargs.
    conf = {"n_qubits": 2, "basis_gates": ["cz", "x"], "gates": [], "coupling_map": [[0, 1]]}
    date = "2025-01-01T00:00:00Z"
    props = {
        "backend_name": "b",
        "backend_version": "1",
        "last_update_date": date,
        "qubits": [[{"date": date, "name": "T1", "unit": "us", "value": 100}]] * 2,
        "gates": [
            {
                "gate": "cz",
                "qubits": [0, 1],
                "parameters": [{"date": date, "name": "operational", "unit": "", "value": 0}],
            }
        ],
        "general": [],
    }
    target = target_from_backend_data(conf, props)
    assert not target.instruction_supported("cz", (0, 1))
    assert target.instruction_supported("x", (1,))  # uncalibrated gates stay global
    assert target_from_backend_data(conf, props, include_faulty=True).instruction_supported(
        "cz", (0, 1)
    )
