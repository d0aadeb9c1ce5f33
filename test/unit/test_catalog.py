"""The backend catalog: built-in devices, snapshot loading, specs, and transpilation sanity."""

from __future__ import annotations

import json
import logging
import math
import pickle
import shutil
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp
from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

from qiskit_rest_provider.server.backends.catalog import (
    BUILTIN_BACKENDS,
    BUILTIN_DEVICES_DIR,
    BackendCatalog,
    BackendSpec,
    CatalogError,
)
from qiskit_rest_provider.server.backends.devices import generate

NOISY = ("rest_line_5q", "rest_hex_27q", "rest_hex_127q")


@pytest.fixture(scope="module")
def catalog() -> BackendCatalog:
    return BackendCatalog.load()


def _fake_backends_dir() -> Path:
    runtime = pytest.importorskip("qiskit_ibm_runtime")
    return Path(runtime.__file__).parent / "fake_provider" / "backends"


# -- built-in devices -------------------------------------------------------------------------


def test_builtin_names(catalog):
    assert catalog.names() == sorted(BUILTIN_BACKENDS)
    assert len(catalog) == 5
    for name in BUILTIN_BACKENDS:
        assert name in catalog
        assert catalog.get(name).name == name
    assert "nope" not in catalog
    with pytest.raises(KeyError):
        catalog.get("nope")
    assert [spec.name for spec in catalog] == catalog.names()


def test_simulator_spec(catalog):
    sim = catalog.get("rest_simulator")
    assert sim.simulator and sim.num_qubits == 32 and sim.properties is None
    assert sim.noise_model is None
    target = sim.target
    assert target.build_coupling_map() is None  # all-to-all
    for name in ("cx", "h", "u", "ccx", "swap", "measure", "reset", "delay", "if_else", "for_loop"):
        assert name in target.operation_names, name
    assert target.qargs_for_operation_name("cx") is None  # global: any pair
    assert len(sim.configuration["coupling_map"]) == 32 * 31


def test_ecr_device_has_directed_ecr_and_its_noise(catalog):
    """``rest_line_5q_ecr``: Eagle-style ``ecr`` on each edge, one direction, noisy."""
    spec = catalog.get("rest_line_5q_ecr")
    conf = spec.configuration
    assert conf["basis_gates"] == ["ecr", "id", "rz", "sx", "x"]
    assert spec.num_qubits == 5 and not spec.simulator
    target = spec.target
    assert "cz" not in target.operation_names
    assert set(target["ecr"]) == {(0, 1), (1, 2), (2, 3), (3, 4)}
    for props in target["ecr"].values():
        assert 0 < props.error < 0.05 and props.duration == pytest.approx(400e-9)
    errors = spec.noise_model._local_quantum_errors["ecr"]  # noqa: SLF001 - Aer has no getter
    assert set(errors) == set(target["ecr"])


@pytest.mark.parametrize("name", NOISY)
def test_noisy_device_configuration(catalog, name):
    spec = catalog.get(name)
    conf = spec.configuration
    assert not spec.simulator
    assert conf["basis_gates"] == ["cz", "id", "rz", "sx", "x"]
    assert {"measure", "reset", "delay", "if_else", "while_loop", "for_loop", "switch_case"} <= set(
        conf["supported_instructions"]
    )
    assert conf["max_shots"] == 100000 and conf["max_experiments"] == 300
    assert conf["online_date"] and conf["dt"] > 0 and conf["timing_constraints"]
    assert spec.num_qubits == {"rest_line_5q": 5, "rest_hex_27q": 27, "rest_hex_127q": 127}[name]
    target = spec.target
    assert target.dt == pytest.approx(conf["dt"] * 1e-9)
    cmap = target.build_coupling_map()
    assert cmap.is_connected()
    # cz on both directions of every edge, with calibration
    for a, b in conf["coupling_map"]:
        assert (b, a) in target["cz"]
        props = target["cz"][(a, b)]
        assert 0 < props.error < 0.05 and props.duration == pytest.approx(
            68e-9 if "127" not in name else 84e-9
        )
    # Every calibrated duration is a whole number of granularity steps (schedulable as is).
    step = target.granularity * target.dt
    for name_ in ("sx", "x", "id", "cz", "measure", "reset"):
        for props in target[name_].values():
            assert props.duration / step == pytest.approx(round(props.duration / step)), name_
    for q in range(spec.num_qubits):
        assert target["measure"][(q,)].error > 0
        assert target["sx"][(q,)].error > 0
        assert target["rz"][(q,)].error == 0 and target["rz"][(q,)].duration == 0


@pytest.mark.parametrize("name", NOISY)
def test_calibration_is_physical_and_realistic(catalog, name):
    spec = catalog.get(name)
    for nduvs in spec.properties["qubits"]:
        v = {n["name"]: n for n in nduvs}
        assert v["T1"]["unit"] == "us" and v["readout_length"]["unit"] == "ns"
        assert v["frequency"]["unit"] == "GHz" and 4 < v["frequency"]["value"] < 6
        t1, t2 = v["T1"]["value"], v["T2"]["value"]
        assert 20 < t1 < 1000 and 0 < t2 <= 2 * t1
        ro = v["readout_error"]["value"]
        assert 0 < ro < 0.2
        p01, p10 = v["prob_meas0_prep1"]["value"], v["prob_meas1_prep0"]["value"]
        assert p01 > p10 > 0  # |1> decays during readout: the usual asymmetry
        assert (p01 + p10) / 2 == pytest.approx(ro, rel=1e-3)
        for nduv in nduvs:
            assert nduv["date"]
    errors = [
        p["value"]
        for g in spec.properties["gates"]
        if g["gate"] == "sx"
        for p in g["parameters"]
        if p["name"] == "gate_error"
    ]
    assert 1e-4 < sorted(errors)[len(errors) // 2] < 1e-3


def test_topologies_match_ibm_layouts():
    fake = _fake_backends_dir()

    def undirected(path: Path) -> set:
        return {tuple(sorted(e)) for e in json.loads(path.read_bytes())["coupling_map"]}

    assert set(generate.falcon_27_edges()) == undirected(fake / "montreal" / "conf_montreal.json")
    assert set(generate.eagle_127_edges()) == undirected(
        fake / "sherbrooke" / "conf_sherbrooke.json"
    )
    for edges, n in ((generate.falcon_27_edges(), 27), (generate.eagle_127_edges(), 127)):
        cmap = CouplingMap([list(e) for e in edges])
        assert cmap.size() == n and cmap.is_connected()
        degrees = [sum(q in e for e in edges) for q in range(n)]
        assert max(degrees) == 3  # heavy-hex


def test_shipped_json_is_what_the_generator_produces():
    for name, (conf, props) in generate.build_all().items():
        shipped = (BUILTIN_DEVICES_DIR / f"conf_{name}.json").read_text(encoding="utf-8")
        assert shipped == generate.dumps(conf), f"regenerate {name}: python -m ...generate"
        props_path = BUILTIN_DEVICES_DIR / f"props_{name}.json"
        if props is None:
            assert not props_path.exists()
        else:
            assert props_path.read_text(encoding="utf-8") == generate.dumps(props)


def test_official_client_accepts_builtin_devices(catalog):
    """qiskit-ibm-runtime parses our JSON and builds the same Target from it."""
    pytest.importorskip("qiskit_ibm_runtime")
    import copy

    from qiskit_ibm_runtime.utils.backend_converter import convert_to_target
    from qiskit_ibm_runtime.utils.backend_decoder import (
        configuration_from_server_data,
        properties_from_server_data,
    )

    for spec in catalog:
        conf = configuration_from_server_data(copy.deepcopy(spec.configuration), "local")
        assert conf is not None, spec.name
        props = None
        if spec.properties is not None:
            props = properties_from_server_data(copy.deepcopy(spec.properties))
        theirs = convert_to_target(conf, props)
        ours = spec.target
        # The official client drops fractional gates by default (rx, rxx, ...); compare the rest.
        assert set(theirs.operation_names) <= set(ours.operation_names)
        for name in theirs.operation_names:
            assert ours.qargs_for_operation_name(name) == theirs.qargs_for_operation_name(name)


def test_status(catalog):
    spec = catalog.get("rest_line_5q")
    assert spec.status() == {
        "state": True,
        "status": "active",
        "message": "",
        "length_queue": 0,
        "backend_version": "1.0.0",
    }
    assert spec.status(length_queue=3)["length_queue"] == 3
    entry = spec.list_entry(queue_length=2)
    assert entry["name"] == "rest_line_5q" and entry["qubits"] == 5
    assert entry["status"] == {"name": "online"} and entry["queue_length"] == 2
    assert entry["is_simulator"] is False


def test_spec_target_cached_and_pickle_drops_derived_objects(catalog):
    spec = catalog.get("rest_hex_27q")
    assert spec.target is spec.target
    data = pickle.dumps(spec)
    assert len(data) < 200_000  # configuration + properties only, no Target / noise model
    clone = pickle.loads(data)
    assert "target" not in clone.__dict__
    assert clone == spec and clone.fingerprint == spec.fingerprint
    assert clone.target is spec.target  # per-process cache keyed by content
    again = BackendCatalog.load().get("rest_hex_27q")
    assert again.target is spec.target


# -- loading snapshots ------------------------------------------------------------------------


@pytest.fixture()
def snapshots_dir(tmp_path: Path) -> Path:
    fake = _fake_backends_dir()
    for name in ("manila", "sherbrooke", "cambridge"):
        shutil.copytree(
            fake / name,
            tmp_path / "nested" / name,
            ignore=shutil.ignore_patterns("*.py", "__pycache__"),
        )
    return tmp_path


def test_load_backends_dir(snapshots_dir: Path):
    catalog = BackendCatalog.load(snapshots_dir)
    for name in ("ibmq_manila", "ibm_sherbrooke", "ibmq_cambridge"):
        assert name in catalog, catalog.names()
    assert set(BUILTIN_BACKENDS) <= set(catalog.names())
    assert len(catalog) == 8  # props_cambridge_alt.json has no configuration: not a backend
    manila = catalog.get("ibmq_manila")
    assert manila.num_qubits == 5 and manila.properties is not None
    assert manila.target["cx"][(0, 1)].error > 0
    assert manila.noise_model is not None
    assert catalog.get("ibm_sherbrooke").target.num_qubits == 127
    assert "ecr" in catalog.get("ibm_sherbrooke").target.operation_names


def test_configuration_without_properties_is_ideal(tmp_path: Path):
    conf = json.loads((BUILTIN_DEVICES_DIR / "conf_rest_line_5q.json").read_bytes())
    conf["backend_name"] = "my_ideal_line"
    del conf["online_date"]
    (tmp_path / "conf_my_ideal_line.json").write_text(json.dumps(conf))
    spec = BackendCatalog.load(tmp_path).get("my_ideal_line")
    assert spec.properties is None and spec.noise_model is None
    assert spec.configuration["online_date"]  # filled in: clients require it
    assert spec.target.qargs_for_operation_name("cz") == {tuple(e) for e in conf["coupling_map"]}


def test_name_conflict_later_wins_with_warning(tmp_path: Path, caplog):
    conf = json.loads((BUILTIN_DEVICES_DIR / "conf_rest_line_5q.json").read_bytes())
    conf["description"] = "operator override"
    (tmp_path / "conf_override.json").write_text(json.dumps(conf))
    with caplog.at_level(logging.WARNING, logger="qiskit_rest_provider.server.backends.catalog"):
        catalog = BackendCatalog.load(tmp_path)
    spec = catalog.get("rest_line_5q")
    assert spec.configuration["description"] == "operator override"
    assert spec.properties is None  # the override ships no props_override.json
    assert any(
        "replaces" in r.getMessage() and "rest_line_5q" in r.getMessage() for r in caplog.records
    )


def test_broken_files_skipped_or_strict(tmp_path: Path, caplog):
    (tmp_path / "conf_broken.json").write_text("{not json")
    (tmp_path / "conf_noqubits.json").write_text(json.dumps({"backend_name": "x"}))
    with caplog.at_level(logging.ERROR, logger="qiskit_rest_provider.server.backends.catalog"):
        catalog = BackendCatalog.load(tmp_path)
    assert catalog.names() == sorted(BUILTIN_BACKENDS)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "conf_broken.json" in messages and "n_qubits" in messages
    with pytest.raises(CatalogError, match="conf_broken.json"):
        BackendCatalog.load(tmp_path, strict=True)
    with pytest.raises(CatalogError, match="does not exist"):
        BackendCatalog.load(tmp_path / "missing")


def test_in_memory_spec():
    spec = BackendSpec(
        name="tiny",
        configuration={"backend_name": "tiny", "n_qubits": 1, "basis_gates": ["x"], "gates": []},
        properties=None,
    )
    catalog = BackendCatalog()
    catalog.add(spec)
    assert catalog.get("tiny").target.num_qubits == 1
    assert spec.backend_version == "0.0.0"


# -- transpilation against the built-in targets -----------------------------------------------


def _sample_circuit() -> QuantumCircuit:
    qc = QuantumCircuit(4, 4)
    qc.h(0)
    qc.cx(0, 1)
    qc.rx(0.3, 2)
    qc.cx(1, 3)
    qc.ccx(0, 1, 2)
    qc.swap(2, 3)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(3)
    qc.measure(range(4), range(4))
    return qc


def _assert_isa(circuit: QuantumCircuit, target, index: dict | None = None) -> None:
    """Every instruction (recursing into control-flow blocks) is supported on its qubits."""
    if index is None:
        index = {bit: i for i, bit in enumerate(circuit.qubits)}
    for instruction in circuit.data:
        op = instruction.operation
        qargs = tuple(index[q] for q in instruction.qubits)
        if op.name == "barrier":
            continue
        if isinstance(op, ControlFlowOp):
            assert op.name in target.operation_names, op.name
            for block in op.blocks:
                inner = {b: index[q] for b, q in zip(block.qubits, instruction.qubits)}
                _assert_isa(block, target, inner)
            continue
        assert target.instruction_supported(op.name, qargs), (op.name, qargs)


@pytest.mark.parametrize("name", BUILTIN_BACKENDS)
def test_preset_pass_manager_produces_isa_circuits(catalog, name):
    target = catalog.get(name).target
    pm = generate_preset_pass_manager(optimization_level=1, target=target, seed_transpiler=7)
    isa = pm.run(_sample_circuit())
    # With no coupling constraints (the ideal simulator) Qiskit applies no layout.
    assert isa.num_qubits == (4 if name == "rest_simulator" else target.num_qubits)
    _assert_isa(isa, target)
    ops = set(isa.count_ops())
    assert "if_else" in ops
    if name != "rest_simulator":
        two = "ecr" if name.endswith("_ecr") else "cz"
        assert ops - {"if_else", "measure", "barrier"} <= {two, "rz", "sx", "x", "id"}
        assert not math.isnan(sum(target["sx"][(q,)].error for q in range(target.num_qubits)))
