"""Transpile on the service: ``POST /transpile``, poll ``GET /transpile/{id}``, rebuild circuits.

The service transpiles against the backend's own Target (on our reference server: Qiskit's preset
pass manager with the ``rest_provider`` translation stage) and returns ISA circuits with their
layout, which this module attaches as a :class:`~qiskit.transpiler.TranspileLayout` so the result
behaves like the output of a local ``generate_preset_pass_manager(...).run(...)``: ``layout``,
``initial_index_layout()``, ``final_index_layout()`` and ``Operator.from_circuit`` all work.

Example::

    from qiskit_rest_provider import ProviderService
    from qiskit_rest_provider.transpiler import RemotePassManager, transpile_remote

    service = ProviderService(url="http://127.0.0.1:8000", token="...")
    isa = transpile_remote(service, circuit, "rest_hex_27q", optimization_level=3)
    # the same with the service's HTTP client, which is all this module uses:
    isa = transpile_remote(service.client, circuit, "rest_hex_27q", optimization_level=3)
    # or, where a pass manager is expected:
    pm = RemotePassManager(service, "rest_hex_27q", optimization_level=3, seed_transpiler=1)
    isa_circuits = pm.run([circuit_a, circuit_b])

Circuits travel as one Base64 QPY file by default (``circuit_form="qpy"``: exact, keeps parameters,
global phase and classical expressions) or as OpenQASM 3 text (``circuit_form="qasm3"``, what
every transpiler service accepts). Polling uses the server's ``wait`` long-poll where available
and otherwise backs off from 50 ms to 2 s between polls. The requests themselves are
:class:`~qiskit_rest_provider.client.transpile.TranspileEndpoints` methods of the
:class:`~qiskit_rest_provider.client.RuntimeClient`: this module turns circuits into request
bodies and task documents back into circuits, and never builds a request.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from qiskit.circuit import QuantumCircuit, QuantumRegister
from qiskit.transpiler import Layout, TranspileLayout
from qiskit.transpiler.exceptions import TranspilerError

from ..exceptions import InvalidInputError, JobTimeoutError, QiskitRestProviderError

if TYPE_CHECKING:
    from ..client import RuntimeClient

logger = logging.getLogger(__name__)

SERVICE_OPTIONS = frozenset(
    {
        "ai",
        "use_ai",
        "ai_layout_mode",
        "use_fractional_gates",
        "coupling_map",
        "backend_coupling_map",
    }
)
"""Options sent as transpile-service parameters; all others go into ``qiskit_transpile_options``."""

_LONG_POLL_SECONDS = 10.0
_FIRST_SLEEP = 0.05
_MAX_SLEEP = 2.0


class HoldsClient(Protocol):
    """Anything that holds a :class:`~qiskit_rest_provider.client.RuntimeClient` as ``client``.

    A :class:`~qiskit_rest_provider.ProviderService` is one; naming the shape instead of the class
    keeps this module from importing the service (which wires this module in).
    """

    @property
    def client(self) -> RuntimeClient:
        """The client to send requests through."""
        ...


def client_of(source: RuntimeClient | HoldsClient) -> RuntimeClient:
    """The :class:`~qiskit_rest_provider.client.RuntimeClient` to send through.

    Args:
        source: a ``RuntimeClient``, or an object holding one as ``.client`` (a
            :class:`~qiskit_rest_provider.ProviderService`).

    Raises:
        InvalidInputError: ``source`` is neither.
    """
    if hasattr(source, "create_transpile_task"):
        return source  # type: ignore[return-value]
    client = getattr(source, "client", None)
    if client is None or not hasattr(client, "create_transpile_task"):
        raise InvalidInputError(
            f"service: expected a ProviderService or its RuntimeClient, got {type(source).__name__}"
        )
    return client  # type: ignore[no-any-return]


class RemoteTranspileError(QiskitRestProviderError, TranspilerError):
    """The service reported the transpile task as ``FAILURE`` (or ``CANCELLED``).

    Attributes:
        task_id: the service's task id.
        message: the service's failure message.
    """

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id


def _backend_name(backend: Any) -> str:
    if isinstance(backend, str):
        return backend
    name = getattr(backend, "name", None)
    if not isinstance(name, str):
        raise InvalidInputError(f"backend: expected a backend or its name, got {backend!r}")
    return name


def _qpy_b64(circuits: Sequence[QuantumCircuit]) -> str:
    from qiskit import qpy

    from ..wire.circuits import QPY_MAX_VERSION

    buffer = io.BytesIO()
    qpy.dump(list(circuits), buffer, version=min(QPY_MAX_VERSION, qpy.QPY_VERSION))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _request_body(
    circuits: Sequence[QuantumCircuit], circuit_form: str, options: dict[str, Any]
) -> tuple[dict[str, Any], list[Any] | None]:
    body: dict[str, Any] = {}
    exported = None
    if circuit_form == "qpy":
        body["qpy_circuits"] = _qpy_b64(circuits)
    elif circuit_form == "qasm3":
        from ..wire.circuits import export_qasm3

        exported = [export_qasm3(circuit) for circuit in circuits]
        body["qasm_circuits"] = [item.text for item in exported]
    else:
        raise InvalidInputError(f"circuit_form: expected 'qpy' or 'qasm3', got {circuit_form!r}")
    transpile_options = {k: v for k, v in options.items() if k not in SERVICE_OPTIONS}
    if transpile_options:
        body["qiskit_transpile_options"] = transpile_options
    for key in SERVICE_OPTIONS & options.keys():
        target_key = "backend_coupling_map" if key == "coupling_map" else key
        value = options[key]
        if target_key == "backend_coupling_map" and value is not None:
            edges = value.get_edges() if hasattr(value, "get_edges") else value
            value = [[int(a), int(b)] for a, b in edges]
        body[target_key] = value
    return body, exported


def _complete(values: Sequence[int], size: int) -> list[int]:
    """Extend a partial index list to a permutation of ``range(size)`` (free slots in order)."""
    values = [int(v) for v in values]
    missing = [q for q in range(size) if q not in set(values)]
    return values + missing[: size - len(values)]


def apply_layout(
    circuit: QuantumCircuit, original: QuantumCircuit, initial: Sequence[int], final: Sequence[int]
) -> QuantumCircuit:
    """Attach the service's layout to ``circuit`` (the transpiled form of ``original``).

    Args:
        circuit: the transpiled circuit, one qubit per physical qubit.
        original: the circuit that was sent (its qubits become the layout's virtual qubits).
        initial: ``initial[v]`` = physical qubit where virtual qubit ``v`` starts.
        final: ``final[v]`` = physical qubit where virtual qubit ``v`` ends.

    Returns:
        ``circuit`` itself, with ``circuit.layout`` set (left ``None`` for an identity layout on a
        circuit as wide as the original, as a local transpile without layout stage does).
    """
    size = circuit.num_qubits
    if len(initial) > size:
        circuit = QuantumCircuit(len(initial)).compose(circuit, range(size))
        size = circuit.num_qubits
    num_virtual = original.num_qubits
    initial = _complete(initial, size)
    final = _complete(final, size)
    if size == num_virtual and initial == list(range(size)) and final == initial:
        return circuit
    virtual = list(original.qubits)
    if size > num_virtual:
        virtual += list(QuantumRegister(size - num_virtual, "ancilla"))
    initial_layout = Layout({initial[v]: virtual[v] for v in range(size)})
    input_mapping = {virtual[v]: v for v in range(size)}
    final_layout = None
    if final != initial:
        final_layout = Layout({circuit.qubits[initial[v]]: final[v] for v in range(size)})
    circuit._layout = TranspileLayout(  # noqa: SLF001 - the documented way to attach a layout
        initial_layout=initial_layout,
        input_qubit_mapping=input_mapping,
        final_layout=final_layout,
        _input_qubit_count=num_virtual,
        _output_qubit_list=list(circuit.qubits),
    )
    return circuit


def _circuit_from_item(
    item: dict[str, Any], original: QuantumCircuit, exported: Any
) -> QuantumCircuit:
    layout = item.get("layout") or {}
    initial = layout.get("initial") or []
    final = layout.get("final") or initial
    if item.get("qpy"):
        from qiskit import qpy

        circuit = qpy.load(io.BytesIO(base64.b64decode(item["qpy"])))[0]
    else:
        from ..wire.circuits import import_qasm

        imported = import_qasm(item["qasm"], num_qubits=len(initial) or None)
        circuit = imported.circuit
        if exported is not None and exported.parameters:
            by_name = dict(zip(exported.parameter_names, exported.parameters))
            mapping = {p: by_name[p.name] for p in imported.parameters if p.name in by_name}
            if mapping:
                circuit.assign_parameters(mapping, inplace=True)
        circuit.name = original.name
        circuit.metadata = dict(original.metadata or {})
    return apply_layout(circuit, original, initial, final)


def _poll(client: RuntimeClient, task_id: str, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    sleep = _FIRST_SLEEP
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobTimeoutError(
                f"transpile task {task_id} did not finish within {timeout} s "
                "(it may still finish on the service)"
            )
        wait = max(min(_LONG_POLL_SECONDS, remaining), 0.0)
        asked = time.monotonic()
        body = client.transpile_task(task_id, wait=wait)
        state = str(body.get("state", "")).upper()
        if state == "SUCCESS" and body.get("result") is not None:
            for warning in body.get("warnings") or ():
                logger.info("transpile task %s: %s", task_id, warning)
            return list(body["result"])
        if state in ("FAILURE", "CANCELLED", "REVOKED"):
            raise RemoteTranspileError(
                f"transpile task {task_id} {'failed' if state == 'FAILURE' else 'was cancelled'}: "
                f"{body.get('result')}",
                task_id=task_id,
            )
        if time.monotonic() - asked < 0.5 * wait:  # the service ignored `wait`: back off
            time.sleep(min(sleep, max(deadline - time.monotonic(), 0.0)))
            sleep = min(sleep * 1.6, _MAX_SLEEP)


def transpile_remote(
    service: RuntimeClient | HoldsClient,
    circuits: QuantumCircuit | Sequence[QuantumCircuit],
    backend: Any,
    optimization_level: int = 2,
    *,
    timeout: float = 300.0,
    circuit_form: Literal["qpy", "qasm3"] = "qpy",
    **options: Any,
) -> QuantumCircuit | list[QuantumCircuit]:
    """Transpile ``circuits`` on the service for ``backend`` and return ISA circuits with layout.

    Args:
        service: the :class:`~qiskit_rest_provider.ProviderService`, or its
            :class:`~qiskit_rest_provider.client.RuntimeClient` (which sends the requests).
        circuits: one circuit or a sequence of circuits.
        backend: a backend of the service, or its name.
        optimization_level: Qiskit preset level, 0-3.
        timeout: seconds to wait for the task before raising ``JobTimeoutError``.
        circuit_form: ``"qpy"`` (exact) or ``"qasm3"`` (OpenQASM 3 text).
        **options: ``ai``, ``use_ai``, ``ai_layout_mode``, ``use_fractional_gates``,
            ``coupling_map`` (edges or a ``CouplingMap``) go to the service as such; anything else
            (``seed_transpiler``, ``initial_layout``, ``layout_method``, ...) is sent as
            ``qiskit_transpile_options``.

    Returns:
        A circuit for a single circuit input, else a list in input order.

    Raises:
        RemoteTranspileError: the task failed; the message is the service's.
        JobTimeoutError: the task did not finish within ``timeout``.
        RequestError: the service rejected the request (bad options, unknown backend, ...).
    """
    single = isinstance(circuits, QuantumCircuit)
    batch = [circuits] if single else list(circuits)
    if not batch:
        return []
    if not all(isinstance(c, QuantumCircuit) for c in batch):
        raise InvalidInputError("circuits: expected QuantumCircuit objects")
    if not isinstance(optimization_level, int) or not 0 <= optimization_level <= 3:
        raise InvalidInputError(
            f"optimization_level: expected an integer from 0 to 3, got {optimization_level!r}"
        )
    client = client_of(service)
    name = _backend_name(backend)
    body, exported = _request_body(batch, circuit_form, options)
    task_id = client.create_transpile_task(
        backend=name, optimization_level=optimization_level, body=body
    )["task_id"]
    logger.debug("transpile task %s created for %d circuit(s) on %s", task_id, len(batch), name)
    items = _poll(client, task_id, timeout)
    if len(items) != len(batch):
        raise RemoteTranspileError(
            f"transpile task {task_id} returned {len(items)} circuits for {len(batch)} inputs",
            task_id=task_id,
        )
    outputs = [
        _circuit_from_item(item, original, exported[i] if exported else None)
        for i, (item, original) in enumerate(zip(items, batch))
    ]
    return outputs[0] if single else outputs


transpile = transpile_remote
"""Alias used by :meth:`ProviderService.transpile`."""


class RemotePassManager:
    """A pass-manager look-alike whose :meth:`run` transpiles on the service.

    Use it where code calls ``pass_manager.run(circuits)``, for example in place of
    ``generate_preset_pass_manager(level, backend=backend)``.

    Args:
        service: the :class:`~qiskit_rest_provider.ProviderService`, or its
            :class:`~qiskit_rest_provider.client.RuntimeClient`.
        backend: a backend of the service, or its name.
        optimization_level: Qiskit preset level, 0-3.
        timeout: seconds to wait for each task.
        **options: as for :func:`transpile_remote`.
    """

    def __init__(
        self,
        service: RuntimeClient | HoldsClient,
        backend: Any,
        optimization_level: int = 2,
        *,
        timeout: float = 300.0,
        **options: Any,
    ) -> None:
        client_of(service)  # a wrong first argument fails here, not at the first run()
        self.service = service
        self.backend = backend
        self.optimization_level = optimization_level
        self.timeout = timeout
        self.options = options

    def run(
        self,
        circuits: QuantumCircuit | Sequence[QuantumCircuit],
        output_name: str | None = None,
        callback: Any = None,
        num_processes: int | None = None,
    ) -> QuantumCircuit | list[QuantumCircuit]:
        """Transpile on the service; same call shape as :meth:`PassManager.run`.

        ``callback`` and ``num_processes`` are accepted for compatibility and ignored (the work
        happens on the service); ``output_name`` names the output circuit(s).
        """
        result = transpile_remote(
            self.service,
            circuits,
            self.backend,
            self.optimization_level,
            timeout=self.timeout,
            **self.options,
        )
        if output_name is not None:
            for circuit in [result] if isinstance(result, QuantumCircuit) else result:
                circuit.name = output_name
        return result

    def __repr__(self) -> str:
        return (
            f"RemotePassManager(backend={_backend_name(self.backend)!r}, "
            f"optimization_level={self.optimization_level})"
        )
