"""Size limits on circuits arriving over the wire, checked before any parser allocates.

A program or QPY payload states its register sizes up front; the importers allocate one object
per declared bit, so a few bytes claiming ``10**9`` qubits would exhaust memory (a request could
take a server down). Both circuit forms are checked against these limits first.
"""

MAX_QUBITS = 100_000
"""Most qubits a circuit may declare when the caller gives no backend width."""

MAX_CLBITS = 100_000
"""Most classical bits a circuit may declare."""

MAX_QPY_BYTES = 64 << 20
"""Most bytes a QPY payload may inflate to (bytes, after zlib).

Far below the 1 GiB cap on parameter arrays: a QPY file is a circuit, and 64 MiB of QPY is over a
million instructions. Without it a 300 KB compressed body could inflate to most of a GiB.
"""

MAX_QPY_CIRCUITS = 1_000
"""Most circuits one QPY file may hold (the transpile service takes several per request)."""
