"""A user-given ``resilience.layer_noise_model``: decoded, matched to the PUBs' layers, checked.

The legacy ``estimator`` program's PEC and PEA need the Pauli–Lindblad noise of each unique
twirled layer. Without a given model the server computes it (:mod:`.layer_noise`); with one (the
``NoiseLearner`` result, or a list of its ``LayerError`` entries, as qiskit-ibm-runtime's
``RuntimeEncoder`` writes them and ``ibm-quantum-schemas`` models them) no learning runs and the
given noise is used, as IBM's service does:

* each entry is a layer circuit on ``len(qubits)`` qubits, its physical ``qubits`` and a
  ``PauliLindbladError`` (generators on those qubits, little-endian, and one rate each) or
  ``null`` (noise unknown or disabled: the layer is treated as noiseless);
* a layer of a PUB (a box of qiskit-mitigation's boxing, the one ``prepare`` uses) matches an
  entry when both act on the same set of physical qubits with the same two-qubit gates on the
  same physical qubits (single-qubit gates are not compared: twirling absorbs them);
* a PUB layer that matches no entry is noiseless (neither mitigated nor amplified: IBM's
  documented meaning), and the PUB's metadata counts only the layers that matched;
* an entry that matches no layer of any PUB is unused (noise learned once for many circuits may
  be reused for a few of them); a model *none* of whose entries matches, a malformed entry, or a
  given model with neither PEC nor PEA on, is a 400 at admission (:mod:`..jobs.mitigation_checks`)
  naming ``params.options.resilience.layer_noise_model[i]``: an option accepted is an option
  performed.

Aer-free at import (admission uses it); the heavy libraries are imported on first use.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIELD",
    "GivenLayer",
    "LayerNoiseModelError",
    "LayerKey",
    "decode_layer_noise_model",
    "describe_key",
    "finalized_options",
    "given_noise_maps",
    "layer_key",
    "needs_layer_noise",
    "pub_layers",
    "unmatched_entries",
]

FIELD = "params.options.resilience.layer_noise_model"

LayerKey = tuple[tuple[int, ...], tuple[tuple[str, tuple[int, ...], tuple[str, ...]], ...]]
"""``(sorted physical qubits, sorted two-qubit gates as (name, physical qubits, params))``."""


class LayerNoiseModelError(ValueError):
    """A given layer noise model is malformed; ``path`` names the offending part."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class GivenLayer:
    """One decoded entry of a given layer noise model.

    Attributes:
        index: its position in the option's list.
        qubits: its physical qubits, in the order its circuit and generators use.
        key: what a PUB layer must equal to use it (:data:`LayerKey`).
        terms: ``[(paulis, physical qubits, rate), ...]``, or ``None`` (no error given).
        wire: the entry in its canonical wire form (echoed in the result metadata).
        path: where it is in the job, e.g. ``params.options.resilience.layer_noise_model[2]``.
    """

    index: int
    qubits: tuple[int, ...]
    key: LayerKey
    terms: tuple[tuple[str, tuple[int, ...], float], ...] | None
    wire: dict
    path: str = FIELD


def finalized_options(options: dict, level: int, *, noisy: bool, shots: int | None) -> Any:
    """qiskit-ibm-runtime's finalized ``EstimatorOptions`` for one PUB of the job.

    On an ideal backend the level's implicit defaults are those of level 0 (nothing to mitigate);
    explicitly set options are kept. The layer noise model is left out (the caller sets it).
    """
    from qiskit_ibm_runtime.executor_estimator.finalize_options import (
        finalize_estimator_options,
    )
    from qiskit_ibm_runtime.options_models.estimator import EstimatorOptions

    resilience = options["resilience"]
    given: dict[str, Any] = {
        "resilience_level": level if noisy else 0,
        "default_shots": shots,
        "twirling": {k: v for k, v in options["twirling"].items() if v is not None},
        "dynamical_decoupling": {"enable": False},  # applied afterwards, to count pulses
        "resilience": {
            "measure_mitigation": resilience.get("measure_mitigation"),
            "zne_mitigation": resilience.get("zne_mitigation"),
            "zne": dict(resilience["zne"]),
            "measure_noise_learning": {
                "num_randomizations": resilience["measure_noise_learning"]["num_randomizations"]
            },
            "pec_mitigation": bool(resilience.get("pec_mitigation")),
            "pec": dict(resilience["pec"]),
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return finalize_estimator_options(EstimatorOptions(**given))


def needs_layer_noise(final: Any) -> bool:
    """Whether finalized options run PEC or PEA (the techniques that need layer noise)."""
    resilience = final.resilience
    return bool(
        resilience.pec_mitigation
        or (resilience.zne_mitigation and resilience.zne.amplifier == "pea")
    )


# ----------------------------------------------------------------------------- decoding


def _entries(value: Any) -> tuple[list[Any], str]:
    """The ``LayerError`` entries of the option and the path their indices hang from."""
    if isinstance(value, dict) and value.get("__type__") == "NoiseLearnerResult":
        inner = value.get("__value__")
        data = inner.get("data") if isinstance(inner, dict) else None
        if not isinstance(data, list):
            raise ValueError(f"{FIELD}.__value__.data must be a list of LayerError entries")
        return data, f"{FIELD}.__value__.data"
    if not isinstance(value, list):
        raise ValueError(
            f"{FIELD} must be a list of LayerError entries or a NoiseLearnerResult, "
            f"got {type(value).__name__}"
        )
    return value, FIELD


def _param_text(param: Any) -> str:
    try:
        return repr(round(float(param), 10))
    except (TypeError, ValueError):
        return str(param)


def _gate(name: str, physical: Sequence[int], params: Sequence[Any]) -> Any:
    return (name, tuple(int(q) for q in physical), tuple(_param_text(p) for p in params))


def _decode_entry(entry: Any, index: int, where: str, num_qubits: int) -> GivenLayer:
    from ibm_quantum_schemas.estimator.version_0_1.layer_noise_model import (
        LayerNoiseModelWrapperModel,
    )
    from pydantic import ValidationError
    from qiskit.exceptions import QiskitError
    from qiskit.quantum_info import PauliList

    from ...exceptions import WireFormatError
    from ...wire._qpy import decode_qpy
    from ...wire.arrays import decode_ndarray

    try:
        model = LayerNoiseModelWrapperModel.model_validate(entry)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = ".".join(str(p) for p in error["loc"])
        raise ValueError(f"{where} must be a LayerError document ({loc}: {error['msg']})") from None
    layer = model.value_
    qubits = tuple(int(q) for q in layer.qubits)
    if len(set(qubits)) != len(qubits) or any(not 0 <= q < num_qubits for q in qubits):
        raise ValueError(
            f"{where}.qubits must be distinct qubits of the backend (0..{num_qubits - 1}), "
            f"got {list(qubits)}"
        )
    try:
        circuit = decode_qpy(layer.circuit.value_, f"{where}.circuit")
    except WireFormatError as exc:
        raise ValueError(str(exc)) from None
    if circuit.num_qubits != len(qubits):
        raise ValueError(
            f"{where}.circuit has {circuit.num_qubits} qubits but {where}.qubits names "
            f"{len(qubits)}"
        )
    gates = []
    for inst in circuit.data:
        if inst.operation.name == "barrier" or inst.operation.num_qubits < 2:
            continue
        physical = [qubits[circuit.find_bit(q).index] for q in inst.qubits]
        gates.append(_gate(inst.operation.name, physical, inst.operation.params))
    if not gates:
        raise ValueError(f"{where}.circuit has no two-qubit gate: it is not a layer to mitigate")
    terms = None
    if layer.error is not None:
        error_path = f"{where}.error.__value__"
        try:
            generators = PauliList(layer.error.value_.generators.value_.data)
        except (ValueError, TypeError, QiskitError) as exc:
            raise ValueError(f"{error_path}.generators are not Pauli labels: {exc}") from None
        try:
            rates = decode_ndarray(
                entry["__value__"]["error"]["__value__"]["rates"],
                dtype=float,
                field=f"{error_path}.rates",
            ).ravel()
        except WireFormatError as exc:
            raise ValueError(str(exc)) from None
        if generators.num_qubits != len(qubits):
            raise ValueError(
                f"{error_path}.generators act on {generators.num_qubits} qubits but "
                f"{where}.qubits names {len(qubits)}"
            )
        if len(rates) != len(generators):
            raise ValueError(
                f"{error_path}.rates has {len(rates)} values for {len(generators)} generators"
            )
        if not all(math.isfinite(r) for r in rates):
            raise ValueError(f"{error_path}.rates must be finite")
        decoded = []
        for pauli, rate in zip(generators, rates):
            chars, where_on = [], []
            for j in range(len(qubits)):
                z, x = bool(pauli.z[j]), bool(pauli.x[j])
                if z or x:
                    chars.append("Y" if z and x else "Z" if z else "X")
                    where_on.append(qubits[j])
            if chars:
                decoded.append(("".join(chars), tuple(where_on), float(rate)))
        terms = tuple(decoded)
    key: LayerKey = (tuple(sorted(qubits)), tuple(sorted(gates)))
    wire = model.model_dump(by_alias=True, mode="json")
    return GivenLayer(index, qubits, key, terms, wire, where)


def decode_layer_noise_model(value: Any, num_qubits: int) -> list[GivenLayer]:
    """Decode a given ``resilience.layer_noise_model`` (the options tree's value).

    Raises:
        LayerNoiseModelError: a malformed entry; the message (and ``path``) name
            ``params.options.resilience.layer_noise_model[i]`` and what is wrong.
    """
    try:
        entries, path = _entries(value)
    except ValueError as exc:
        raise LayerNoiseModelError(str(exc), FIELD) from None
    out = []
    for i, entry in enumerate(entries):
        where = f"{path}[{i}]"
        try:
            out.append(_decode_entry(entry, i, where, num_qubits))
        except ValueError as exc:
            raise LayerNoiseModelError(str(exc), where) from None
    return out


# ----------------------------------------------------------------------------- matching


def pub_layers(pub: Any, final: Any) -> tuple[Any, list[int], list[Any]]:
    """``(compact circuit, its physical qubits, its unique boxed layers)`` of one PUB.

    The circuit is restricted to the qubits that matter (:mod:`.compaction`), as the worker runs
    it; the layers are qiskit-mitigation's, with the boxing options ``prepare`` uses.
    """
    from qiskit_ibm_runtime.executor_estimator.prepare import choose_task_class
    from qiskit_ibm_runtime.executor_estimator.utils import estimator_options_to_boxing_options
    from qiskit_mitigation import find_combined_unique_layers

    from .compaction import compact_circuit, relevant_qubits

    circuit = pub.circuit
    qubits = relevant_qubits(circuit, pub.observables)
    if circuit.num_qubits:
        circuit = compact_circuit(circuit, qubits)
    boxing = estimator_options_to_boxing_options(
        final.twirling,
        bool(final.resilience.measure_mitigation),
        inject_noise=True,
        add_tags=False,
    )
    task_class = choose_task_class(final.resilience)
    layers = find_combined_unique_layers([circuit], [task_class()], boxing, box_types="gates")
    return circuit, qubits, list(layers)


def _layer_physical(instruction: Any, circuit: Any, physical: Sequence[int]) -> list[int]:
    return [int(physical[circuit.find_bit(q).index]) for q in instruction.qubits]


def layer_key(instruction: Any, circuit: Any, physical: Sequence[int]) -> LayerKey:
    """The :data:`LayerKey` of a boxed layer of ``circuit`` (``physical[i]``: qubit ``i``)."""
    from samplomatic.utils import undress_box

    box_physical = _layer_physical(instruction, circuit, physical)
    body = undress_box(instruction.operation).body
    gates = []
    for inner in body.data:
        if inner.operation.name == "barrier" or inner.operation.num_qubits < 2:
            continue
        on = [box_physical[body.find_bit(q).index] for q in inner.qubits]
        gates.append(_gate(inner.operation.name, on, inner.operation.params))
    return tuple(sorted(box_physical)), tuple(sorted(gates))


def describe_key(key: LayerKey) -> str:
    """A layer key in words (for error messages)."""
    gates = ", ".join(f"{name}{list(on)}" for name, on, _params in key[1])
    return f"{gates} on qubits {list(key[0])}"


def given_noise_maps(
    layers: Sequence[Any], circuit: Any, physical: Sequence[int], given: Sequence[GivenLayer]
) -> tuple[list[tuple[Any, Any]], list[int]]:
    """The ``(layer, PauliLindbladMap)`` pairs of ``layers`` from the given entries.

    Returns:
        ``(pairs, matched)``: every layer gets a map in box-local qubit order (an empty one when
        no entry matches it, or its entry has no error); ``matched`` lists the entries' indices
        used, one per layer that matched.
    """
    from qiskit.quantum_info import PauliLindbladMap

    by_key = {entry.key: entry for entry in given}
    pairs, matched = [], []
    for layer in layers:
        box_physical = _layer_physical(layer, circuit, physical)
        width = len(box_physical)
        entry = by_key.get(layer_key(layer, circuit, physical))
        terms: list[tuple[str, list[int], float]] = []
        if entry is not None:
            matched.append(entry.index)
            local = {q: k for k, q in enumerate(box_physical)}
            for paulis, on, rate in entry.terms or ():
                terms.append((paulis, [local[q] for q in on], rate))
        pairs.append((layer, PauliLindbladMap.from_sparse_list(terms, width)))
    return pairs, matched


def unmatched_entries(
    pubs: Sequence[Any], final_of: Any, given: Sequence[GivenLayer]
) -> tuple[list[GivenLayer], list[LayerKey]]:
    """The given entries that match no layer of any PUB, and the PUBs' layer keys.

    ``final_of(i)`` is the finalized options of PUB ``i``.
    """
    keys: list[LayerKey] = []
    for i, pub in enumerate(pubs):
        if 0 in tuple(pub.shape):
            continue
        circuit, qubits, layers = pub_layers(pub, final_of(i))
        keys.extend(layer_key(layer, circuit, qubits) for layer in layers)
    seen = set(keys)
    return [entry for entry in given if entry.key not in seen], list(dict.fromkeys(keys))
