"""Splitting a job into parts and merging them: seeded results equal the unsplit ones."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution.runner import execute_job
from qiskit_rest_provider.server.execution.sampler import (
    MIN_SHOT_CHUNK,
    SHOT_CHUNK,
    aer_seed_stride,
    pub_shot_chunks,
    shot_chunk_size,
    shot_chunks,
)
from qiskit_rest_provider.server.execution.split import merge_outcomes, plan_parts
from qiskit_rest_provider.server.jobs.admission import prepare_job
from qiskit_rest_provider.wire import encode_qpy
from qiskit_rest_provider.wire.pubs import encode_sampler_params
from qiskit_rest_provider.wire.results import decode_result

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; bit[2] meas; h $0; cx $0, $1; '
    "meas[0] = measure $0; meas[1] = measure $1;"
)


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


def _ansatz(width: int, depth: int = 2) -> QuantumCircuit:
    theta = Parameter("t")
    qc = QuantumCircuit(width)
    for layer in range(depth):
        for q in range(width):
            qc.ry(theta * (q + 1 + layer), q)
        for q in range(width - 1):
            qc.cx(q, q + 1)
    qc.measure_all()
    return qc


def _whole_and_split(program, params, backend, workers, noisy=False):
    job = prepare_job(program, params, backend)
    whole = execute_job(job, backend)
    plan = plan_parts(job, workers, noisy=noisy, min_seconds=0)
    outcomes = [vars(execute_job(sub, backend, part)) for sub, part in plan]
    merged = merge_outcomes(outcomes, plan, qiskit=job.support_qiskit)
    return decode_result(whole.result_body), decode_result(merged.body), plan, merged


def _same_bits(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert list(x.data.keys()) == list(y.data.keys())
        for name in x.data.keys():
            assert np.array_equal(x.data[name].array, y.data[name].array), name
        assert x.metadata == y.metadata


def test_aer_seeds_experiments_evenly():
    assert aer_seed_stride()  # the sampler relies on it to seed a part like the whole job


def test_plan_is_contiguous_balanced_and_bounded(catalog):
    backend = catalog.get("rest_simulator")
    params = {"pubs": [[BELL, None, 100]] * 20, "support_qiskit": True}
    job = prepare_job("sampler", params, backend)
    assert len(plan_parts(job, 2)) == 1  # 20 Bell PUBs: too little work to be worth splitting
    plan = plan_parts(job, 2, min_seconds=0)
    assert len(plan) == 4  # two parts per worker
    indices = [j for _, part in plan for j in part.pub_indices]
    assert indices == list(range(20))
    assert [len(part.pub_indices) for _, part in plan] == [5, 5, 5, 5]
    assert all(len(sub.pubs) == len(part.pub_indices) for sub, part in plan)
    assert len(plan_parts(job, 1, min_seconds=0)) == 1
    single = prepare_job("sampler", {"pubs": [[BELL, None, 100]]}, backend)
    assert len(plan_parts(single, 2, min_seconds=0)) == 1


def test_seeded_ideal_sampler_split_equals_whole(catalog):
    backend = catalog.get("rest_simulator")
    qc = encode_qpy(_ansatz(6))
    pubs = [[qc, [[0.1 * j], [0.2 + 0.1 * j]], 300] for j in range(7)] + [[BELL, None, 200]]
    params = {"pubs": pubs, "support_qiskit": True, "options": {"simulator": {"seed_simulator": 3}}}
    for workers in (2, 3):
        whole, split, plan, merged = _whole_and_split("sampler", params, backend, workers)
        assert len(plan) > 1
        _same_bits(whole, split)
    assert merged.metrics["num_circuits"] == 8
    assert len(merged.metrics["num_qubits"]) == 8


def test_seeded_noisy_sampler_split_equals_whole(catalog):
    """Aer samples every shot: experiments seeded by their place in the whole job."""
    backend = catalog.get("rest_line_5q")
    theta = Parameter("t")
    qc = QuantumCircuit(5, 2)
    qc.sx(0)
    qc.rz(theta, 0)
    qc.sx(0)
    qc.cz(0, 1)
    qc.sx(1)
    qc.measure([0, 1], [0, 1])
    blob = encode_qpy(qc)
    fixed = encode_qpy(qc.assign_parameters([0.9]))
    pubs = [
        [blob, [[0.3], [1.2]], 200],
        [blob, [2.0], 200],  # shares the circuit with its neighbour: merged into one Aer run
        [fixed, None, 150],  # another shot count: its own run
        [blob, [[0.5], [0.6], [0.7]], 200],
        [fixed, [[], []], 200],
    ]
    params = {
        "pubs": pubs,
        "support_qiskit": True,
        "options": {"simulator": {"seed_simulator": 11}},
    }
    whole, split, plan, _ = _whole_and_split("sampler", params, backend, 2, noisy=True)
    assert len(plan) == 4
    _same_bits(whole, split)
    # the parameter sets still get independent samples
    assert not np.array_equal(whole[3].data.c.array[1], whole[3].data.c.array[2])


def test_big_shots_noisy_pub_splits_by_shot_chunks(catalog):
    backend = catalog.get("rest_line_5q")
    qc = QuantumCircuit(5, 2)
    qc.sx(0)
    qc.cz(0, 1)
    qc.measure([0, 1], [0, 1])
    shots = 3 * SHOT_CHUNK + 1000
    assert len(shot_chunks(shots)) == 4
    params = {
        "pubs": [[encode_qpy(qc), None, shots]],
        "support_qiskit": True,
        "options": {"simulator": {"seed_simulator": 5}},
    }
    whole, split, plan, merged = _whole_and_split("sampler", params, backend, 2, noisy=True)
    assert len(plan) == 4 and all(part.pub_indices == [0] for _, part in plan)
    assert [part.chunks for _, part in plan] == [[(0, 1)], [(1, 2)], [(2, 3)], [(3, 4)]]
    assert split[0].data.c.num_shots == shots == split[0].metadata["shots"]
    _same_bits(whole, split)
    spans = split.metadata["execution"]["execution_spans"]
    assert len(spans) == 4
    # chunks are not all the same samples
    array = whole[0].data.c.array
    assert not np.array_equal(array[:1000], array[SHOT_CHUNK : SHOT_CHUNK + 1000])


def test_big_shots_ideal_pub_is_not_split_by_shots(catalog):
    backend = catalog.get("rest_simulator")
    params = {"pubs": [[BELL, None, 4 * SHOT_CHUNK]], "support_qiskit": True}
    job = prepare_job("sampler", params, backend)
    assert len(plan_parts(job, 2, min_seconds=0)) == 1  # one exact distribution: nothing to share


def test_plain_encoding_merges_too(catalog):
    backend = catalog.get("rest_simulator")
    params = {
        "pubs": [[BELL, None, 64]] * 5,
        "support_qiskit": False,
        "options": {"simulator": {"seed_simulator": 8}},
    }
    whole, split, plan, _ = _whole_and_split("sampler", params, backend, 2)
    assert len(plan) == 4
    for a, b in zip(whole, split):
        assert a.data.meas.get_bitstrings() == b.data.meas.get_bitstrings()


def test_seeded_estimator_split_equals_whole(catalog):
    backend = catalog.get("rest_line_5q")
    qc = _ansatz(3).remove_final_measurements(inplace=False)
    qc = transpile(qc, target=backend.target, seed_transpiler=1)
    blob = encode_qpy(qc)
    obs = [("ZZ" + "I" * (qc.num_qubits - 2))[::-1], ("XX" + "I" * (qc.num_qubits - 2))[::-1]]
    pubs = [[blob, obs, [[0.1 * j], [0.4]], 0.02] for j in range(6)]
    params = {
        "pubs": pubs,
        "support_qiskit": True,
        "options": {"seed_estimator": 4, "simulator": {"seed_simulator": 2}},
    }
    whole, split, plan, merged = _whole_and_split("estimator", params, backend, 2, noisy=True)
    assert len(plan) == 4
    for a, b in zip(whole, split):
        assert np.array_equal(a.data.evs, b.data.evs)
        assert np.array_equal(a.data.stds, b.data.stds)
        assert a.metadata == b.metadata
    assert whole.metadata == split.metadata
    assert len(merged.metrics["estimation_methods"]) == 6


def test_edge_pubs_split_like_whole(catalog):
    """A PUB without classical bits, a PUB with no parameter sets: same result split or whole."""
    backend = catalog.get("rest_simulator")
    theta = Parameter("t")
    qc = QuantumCircuit(1, 1)
    qc.rx(theta, 0)
    qc.measure(0, 0)
    no_bits = QuantumCircuit(2)
    no_bits.h(0)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    pubs = [
        SamplerPub.coerce((no_bits, None, 30)),
        SamplerPub.coerce((qc, np.zeros((0, 1)), 30)),
        SamplerPub.coerce((bell, None, 30)),
    ]
    params = encode_sampler_params(pubs, options={"simulator": {"seed_simulator": 6}})
    whole, split, plan, _ = _whole_and_split("sampler", params, backend, 2)
    assert len(plan) == 3
    _same_bits(whole, split)
    assert split[1].data.c.array.shape == (0, 30, 1)
    assert list(split[0].data.keys()) == []


def test_parts_mixing_shot_chunks_and_whole_pubs(catalog):
    backend = catalog.get("rest_line_5q")
    qc = QuantumCircuit(5, 2)
    qc.sx(0)
    qc.cz(0, 1)
    qc.sx(1)
    qc.measure([0, 1], [0, 1])
    blob = encode_qpy(qc)
    params = {
        "pubs": [[blob, None, 100], [blob, None, 5 * SHOT_CHUNK + 7], [blob, None, 300]],
        "support_qiskit": False,
        "options": {"simulator": {"seed_simulator": 21}},
    }
    whole, split, plan, _ = _whole_and_split("sampler", params, backend, 2, noisy=True)
    assert len(plan) == 4
    covered = [(j, c) for _, part in plan for j, c in zip(part.pub_indices, part.chunks)]
    assert [j for j, _ in covered] == sorted(j for j, _ in covered)
    assert any(c is not None for _, c in covered)  # the big PUB's chunks are shared out
    for a, b in zip(whole, split):
        assert a.data.c.get_bitstrings() == b.data.c.get_bitstrings()
    assert split[1].data.c.num_shots == 5 * SHOT_CHUNK + 7


def _su2_27(backend):
    from qiskit.circuit.library import efficient_su2

    qc = efficient_su2(27, reps=1)
    qc.measure_all()
    angles = np.random.default_rng(2026).uniform(0, 2 * np.pi, qc.num_parameters)
    return transpile(qc.assign_parameters(angles), target=backend.target, seed_transpiler=1)


def test_expensive_noisy_trajectories_are_shared_by_the_workers(catalog):
    """Issue 11: 2,000 noisy MPS shots of efficient_su2(27) ran as one chunk on one worker."""
    backend = catalog.get("rest_hex_27q")
    params = {"pubs": [[encode_qpy(_su2_27(backend)), None, 2000]], "support_qiskit": True}
    job = prepare_job("sampler", params, backend)
    assert job.options["_simulation_plan"]["method"] == "matrix_product_state"
    size = shot_chunk_size(job.pubs[0], method="matrix_product_state", noisy=True)
    assert MIN_SHOT_CHUNK <= size < 1000  # small enough for 2,000 shots to have several chunks
    plan = plan_parts(job, 2, noisy=True)  # the default threshold: worth splitting
    assert len(plan) == 4
    assert all(part.pub_indices == [0] and part.chunks[0] is not None for _, part in plan)
    chunks = pub_shot_chunks(job.pubs[0], method="matrix_product_state", noisy=True)
    shots = [sum(chunks[c][1] - chunks[c][0] for c in range(*part.chunks[0])) for _, part in plan]
    assert sum(shots) == 2000 and max(shots) - min(shots) <= 2 * size  # balanced
    # statevector trajectories are expensive too; a density matrix is evolved once for all the
    # shots, so chunks would only repeat it
    assert shot_chunk_size(job.pubs[0], method="statevector", noisy=True) == MIN_SHOT_CHUNK
    assert shot_chunk_size(job.pubs[0], method="density_matrix", noisy=True) == SHOT_CHUNK
    # cheap shots keep the big chunks: an ideal final-measurement PUB, a small noisy one
    bell = prepare_job("sampler", {"pubs": [[BELL, None, 4000]]}, catalog.get("rest_simulator"))
    assert shot_chunk_size(bell.pubs[0], method="automatic", noisy=False) == SHOT_CHUNK
    line = QuantumCircuit(5, 2)
    line.sx(0)
    line.cz(0, 1)
    line.measure([0, 1], [0, 1])
    small_params = {"pubs": [[encode_qpy(line), None, 4000]]}
    small = prepare_job("sampler", small_params, catalog.get("rest_line_5q"))
    assert shot_chunk_size(small.pubs[0], method="automatic", noisy=True) == SHOT_CHUNK


def test_seeded_small_chunks_split_equals_whole(catalog, monkeypatch):
    """Chunks of expensive shots: the merged bits are the whole run's, whatever the split."""
    from qiskit_rest_provider.server.execution import sampler

    monkeypatch.setattr(sampler, "CHUNK_SECONDS", 1e-9)  # every PUB's shots count as expensive
    backend = catalog.get("rest_line_5q")
    qc = QuantumCircuit(5, 3)
    qc.sx(0)
    qc.cz(0, 1)
    qc.sx(1)
    qc.cz(1, 2)
    qc.measure([0, 1, 2], [0, 1, 2])
    shots = 5 * MIN_SHOT_CHUNK + 9
    params = {
        "pubs": [[encode_qpy(qc), None, shots], [encode_qpy(qc), None, 3 * MIN_SHOT_CHUNK]],
        "support_qiskit": True,
        "options": {"simulator": {"seed_simulator": 13, "method": "matrix_product_state"}},
    }
    job = prepare_job("sampler", params, backend)
    assert len(pub_shot_chunks(job.pubs[0], method="matrix_product_state", noisy=True)) == 6
    for workers in (2, 3):
        whole, split, plan, _ = _whole_and_split("sampler", params, backend, workers, noisy=True)
        assert len(plan) == 2 * workers
        assert any(c is not None for _, part in plan for c in part.chunks)
        _same_bits(whole, split)
    assert split[0].data.c.num_shots == shots
    array = whole[0].data.c.array  # the chunks are not copies of one another
    assert not np.array_equal(array[:MIN_SHOT_CHUNK], array[MIN_SHOT_CHUNK : 2 * MIN_SHOT_CHUNK])
