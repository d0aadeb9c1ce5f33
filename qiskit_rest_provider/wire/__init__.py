"""The single definition of the JSON wire format shared by client and server.

Nothing here does HTTP. Submodules: :mod:`.protocol` (states, media types, program ids,
defaults; no Qiskit), :mod:`.contract` (``params`` and result documents checked against
``ibm-quantum-schemas``), :mod:`.arrays` (ndarray wrapper), :mod:`.json` (orjson bytes),
:mod:`.circuits` (OpenQASM 3 / QPY), :mod:`.pubs` (PUBs <-> ``params``), :mod:`.results`
(``PrimitiveResult`` <-> result bodies, both encodings).

The names below are imported on first use, so ``import qiskit_rest_provider.wire.protocol``
(what the Qiskit-free ``client`` package does) does not pull in Qiskit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "decode_ndarray": "arrays",
    "encode_ndarray": "arrays",
    "ExportedCircuit": "circuits",
    "ImportedCircuit": "circuits",
    "decode_circuit": "circuits",
    "encode_qpy": "circuits",
    "export_qasm3": "circuits",
    "import_qasm": "circuits",
    "dumps": "json",
    "loads": "json",
    "DecodedParams": "pubs",
    "decode_estimator_params": "pubs",
    "decode_sampler_params": "pubs",
    "encode_estimator_params": "pubs",
    "encode_estimator_pub": "pubs",
    "encode_sampler_params": "pubs",
    "encode_sampler_pub": "pubs",
    "decode_result": "results",
    "encode_result": "results",
}

__all__ = [
    "DecodedParams",
    "ExportedCircuit",
    "ImportedCircuit",
    "decode_circuit",
    "decode_estimator_params",
    "decode_ndarray",
    "decode_result",
    "decode_sampler_params",
    "dumps",
    "encode_estimator_params",
    "encode_estimator_pub",
    "encode_ndarray",
    "encode_qpy",
    "encode_result",
    "encode_sampler_params",
    "encode_sampler_pub",
    "export_qasm3",
    "import_qasm",
    "loads",
]

if TYPE_CHECKING:
    from .arrays import decode_ndarray, encode_ndarray
    from .circuits import (
        ExportedCircuit,
        ImportedCircuit,
        decode_circuit,
        encode_qpy,
        export_qasm3,
        import_qasm,
    )
    from .json import dumps, loads
    from .pubs import (
        DecodedParams,
        decode_estimator_params,
        decode_sampler_params,
        encode_estimator_params,
        encode_estimator_pub,
        encode_sampler_params,
        encode_sampler_pub,
    )
    from .results import decode_result, encode_result


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
