"""The single definition of the JSON wire format shared by client and server.

Nothing here does HTTP. Submodules: :mod:`.arrays` (ndarray wrapper), :mod:`.json` (orjson
bytes), :mod:`.circuits` (OpenQASM 3 / QPY), :mod:`.pubs` (PUBs <-> ``params``),
:mod:`.results` (``PrimitiveResult`` <-> result bodies, both encodings).
"""

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
    "encode_ndarray",
    "encode_estimator_params",
    "encode_estimator_pub",
    "encode_qpy",
    "encode_result",
    "encode_sampler_params",
    "encode_sampler_pub",
    "export_qasm3",
    "import_qasm",
    "loads",
]
