"""Observables on the wire: every accepted JSON form -> nested lists of ``{pauli: coeff}`` dicts.

Labels follow Qiskit's convention: the leftmost character acts on the highest qubit
(``"IIIZZ"`` acts on qubits 0 and 1 of five).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..exceptions import WireFormatError
from .arrays import decode_ndarray

__all__ = ["observables_to_lists"]

_LABEL = re.compile(r"[IXYZ]+")


def _real(value: Any, field: str) -> float:
    if isinstance(value, dict) and value.get("__type__") == "complex":
        value = value.get("__value__")
    if isinstance(value, (list, tuple)) and len(value) == 2:
        re_part, im_part = value
        if not isinstance(im_part, (int, float)) or abs(im_part) > 1e-12:
            raise WireFormatError(f"{field}: coefficients must be real, got {value!r}")
        value = re_part
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise WireFormatError(f"{field}: coefficient must be a real number, got {value!r}")
    out = float(value)
    if not np.isfinite(out):
        raise WireFormatError(f"{field}: coefficient must be finite, got {value!r}")
    return out


def _check_label(label: Any, num_qubits: int | None, field: str) -> str:
    if label == "":
        # The model's PauliString allows "": the identity on zero qubits (the observable of a
        # zero-qubit circuit). A circuit read at the backend's width (D4) gets the identity on
        # all of its qubits, which has the same value.
        return "I" * (num_qubits or 0)
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise WireFormatError(
            f"{field}: Pauli label must be a non-empty string of I, X, Y, Z, got {label!r}"
        )
    if num_qubits is not None and len(label) != num_qubits:
        raise WireFormatError(
            f"{field}: observable {label!r} acts on {len(label)} qubits but the circuit has "
            f"{num_qubits}"
        )
    return label


def _sparse_pauli_op(value: Any, field: str) -> dict[str, float]:
    try:
        paulis = value["data"]
        if isinstance(paulis, dict):
            paulis = paulis.get("__value__", paulis)
            paulis = paulis.get("data", paulis) if isinstance(paulis, dict) else paulis
        coeffs = decode_ndarray(value["coeffs"], field=field)
    except (KeyError, TypeError) as exc:
        raise WireFormatError(f"{field}: malformed SparsePauliOp ({exc})") from exc
    if not isinstance(paulis, list) or len(paulis) != coeffs.size:
        raise WireFormatError(f"{field}: SparsePauliOp labels and coefficients differ in length")
    out: dict[str, float] = {}
    for label, coeff in zip(paulis, coeffs.ravel().tolist()):
        phase_free = label.lstrip("-i") if isinstance(label, str) else label
        sign = -1.0 if isinstance(label, str) and label.startswith("-") else 1.0
        if isinstance(coeff, complex):
            coeff = [coeff.real, coeff.imag]
        out[phase_free] = out.get(phase_free, 0.0) + sign * _real(coeff, field)
    return out


def _one(obj: Any, num_qubits: int | None, field: str) -> dict[str, float]:
    if isinstance(obj, str):
        return {_check_label(obj, num_qubits, field): 1.0}
    if isinstance(obj, dict):
        kind = obj.get("__type__")
        if kind == "settings" and obj.get("__class__") == "SparsePauliOp":
            obj = _sparse_pauli_op(obj.get("__value__"), field)
        elif kind is not None:
            raise WireFormatError(f"{field}: unsupported observable wrapper {kind!r}")
        if not obj:
            raise WireFormatError(f"{field}: an observable needs at least one Pauli term")
        out: dict[str, float] = {}
        for label, coeff in obj.items():
            label = _check_label(label, num_qubits, field)
            out[label] = out.get(label, 0.0) + _real(coeff, field)
        return out
    raise WireFormatError(f"{field}: expected a Pauli string or a {{pauli: coeff}} dict")


def observables_to_lists(obj: Any, num_qubits: int | None, field: str) -> Any:
    """Turn any accepted observables form into a dict or nested lists of dicts.

    Accepted: ``"ZZ"``, ``["ZZ", "XX"]``, ``{"ZZ": 1}``, nested lists of those, and the
    ``ObservablesArray`` and ``SparsePauliOp`` (``settings``) wrappers of qiskit-ibm-runtime.

    Raises:
        WireFormatError: naming ``field`` and, for nested lists, the index path.
    """
    if isinstance(obj, dict) and obj.get("__type__") == "ObservablesArray":
        obj = obj.get("__value__")
    if isinstance(obj, (list, tuple)):
        # An empty list is an ObservablesArray of shape (0,) (or (k, 0) nested), as Qiskit's
        # coerce reads it: the PUB has no expectation values, and its result arrays are empty.
        return [observables_to_lists(o, num_qubits, f"{field}[{i}]") for i, o in enumerate(obj)]
    return _one(obj, num_qubits, field)
