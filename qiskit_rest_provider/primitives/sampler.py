"""``SamplerV2`` over REST: Qiskit's sampler interface, the work done by the service."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from qiskit.primitives import BaseSamplerV2
from qiskit.primitives.containers.sampler_pub import SamplerPubLike

from ..exceptions import InvalidInputError, WireFormatError
from .base import RestPrimitiveBase
from .job import RestPrimitiveJob
from .options import SamplerOptions
from .validation import coerce_sampler_pubs

__all__ = ["SamplerV2"]

logger = logging.getLogger(__name__)


class SamplerV2(RestPrimitiveBase, BaseSamplerV2):
    """Sampler V2 primitive that runs on a Qiskit Runtime REST service.

    A drop-in replacement for Qiskit's and qiskit-ibm-runtime's ``SamplerV2``: the same PUBs in,
    the same :class:`~qiskit.primitives.PrimitiveResult` of
    :class:`~qiskit.primitives.SamplerPubResult` out (a :class:`~qiskit.primitives.BitArray`
    per classical register, named as in the circuit).

    Example::

        from qiskit_rest_provider import ProviderService, SamplerV2

        service = ProviderService(url="http://127.0.0.1:8000", token="...")
        backend = service.backend("rest_simulator")
        sampler = SamplerV2(mode=backend, options={"default_shots": 1000})
        job = sampler.run([isa_circuit])
        counts = job.result()[0].data.meas.get_counts()

    Args:
        mode: a :class:`~qiskit_rest_provider.RestBackend`, or a
            :class:`~qiskit_rest_provider.Session` / :class:`~qiskit_rest_provider.Batch` whose
            id is sent with each job.
        options: a :class:`SamplerOptions`, a dict of options, or ``None`` (service defaults).
    """

    _program_id = "sampler"
    _options_class = SamplerOptions
    version = 2

    def __init__(self, mode: Any = None, options: SamplerOptions | dict | None = None) -> None:
        RestPrimitiveBase.__init__(self, mode, options)

    def _max_shots(self) -> int | None:
        try:
            value = getattr(self._backend, "max_shots", None)
        except Exception:  # noqa: BLE001 - a limit we cannot read is left to the service
            return None
        return value if isinstance(value, int) and value > 0 else None

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> RestPrimitiveJob:
        """Validate the PUBs locally, submit them as one job and return the job at once.

        Args:
            pubs: sampler PUBs (circuits, or tuples ``(circuit, parameter_values, shots)``).
                Circuits must be ISA circuits of the backend.
            shots: shots for the PUBs that name none; else ``options.default_shots``, else the
                service's default (4096).

        Raises:
            ValueError: (:class:`~qiskit_rest_provider.exceptions.InvalidInputError`) a PUB is
                invalid; the message names its index. Nothing was sent.
        """
        from ..wire.pubs import encode_sampler_params

        coerced = coerce_sampler_pubs(
            pubs, shots=shots, target=self._backend.target, max_shots=self._max_shots()
        )
        if not coerced:
            raise InvalidInputError("pubs must contain at least one PUB")
        options = self._options._program_options() or None
        try:
            params = encode_sampler_params(coerced, options=options)
        except WireFormatError as exc:
            # OpenQASM 3 cannot express everything (e.g. aliased classical registers); QPY can.
            logger.info("sending QPY circuits: %s", exc)
            params = encode_sampler_params(coerced, options=options, circuit_form="qpy")
        return self._submit(params, [pub.circuit for pub in coerced])
