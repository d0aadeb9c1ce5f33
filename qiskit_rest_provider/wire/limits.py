"""Size limits on circuits arriving over the wire, checked before any parser allocates.

A program or QPY payload states its register sizes up front; the importers allocate one object
per declared bit, so a few bytes claiming ``10**9`` qubits would exhaust memory (a request could
take a server down). Both circuit forms are checked against these limits first.
"""

MAX_QUBITS = 100_000
"""Most qubits a circuit may declare when the caller gives no backend width."""

MAX_CLBITS = 100_000
"""Most classical bits a circuit may declare."""
