"""``EstimatorV2`` over REST: Qiskit's estimator interface, the work done by the service."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.containers.estimator_pub import EstimatorPubLike

from ..exceptions import InvalidInputError, WireFormatError
from .base import RestPrimitiveBase
from .job import RestPrimitiveJob
from .options import UNSET, EstimatorOptions
from .validation import coerce_estimator_pubs

__all__ = ["EstimatorV2"]

logger = logging.getLogger(__name__)


class EstimatorV2(RestPrimitiveBase, BaseEstimatorV2):
    """Estimator V2 primitive that runs on a Qiskit Runtime REST service.

    A drop-in replacement for Qiskit's and qiskit-ibm-runtime's ``EstimatorV2``: the same PUBs
    in, the same :class:`~qiskit.primitives.PrimitiveResult` of
    :class:`~qiskit.primitives.PubResult` out (``evs``, ``stds`` and
    ``ensemble_standard_error`` shaped like the PUB's broadcast shape).

    Example::

        from qiskit.quantum_info import SparsePauliOp
        from qiskit_rest_provider import EstimatorV2

        estimator = EstimatorV2(mode=backend, options={"default_precision": 0.01})
        job = estimator.run([(isa_circuit, SparsePauliOp("ZZ").apply_layout(isa_circuit.layout))])
        print(job.result()[0].data.evs)

    Args:
        mode: a :class:`~qiskit_rest_provider.RestBackend`, or a Session / Batch.
        options: an :class:`EstimatorOptions`, a dict of options, or ``None`` (service defaults).
    """

    _program_id = "estimator"
    _options_class = EstimatorOptions
    version = 2

    def __init__(self, mode: Any = None, options: EstimatorOptions | dict | None = None) -> None:
        RestPrimitiveBase.__init__(self, mode, options)

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> RestPrimitiveJob:
        """Validate the PUBs locally, submit them as one job and return the job at once.

        Args:
            pubs: estimator PUBs ``(circuit, observables, parameter_values, precision)``;
                circuits must be ISA circuits of the backend and observables as wide as them.
            precision: target standard error for the PUBs that name none; else
                ``options.default_precision``, else the service's default (1/64).

        Raises:
            ValueError: (:class:`~qiskit_rest_provider.exceptions.InvalidInputError`) a PUB is
                invalid; the message names its index. Nothing was sent.
        """
        from ..wire.pubs import encode_estimator_params

        coerced = coerce_estimator_pubs(pubs, precision=precision, target=self._backend.target)
        if not coerced:
            raise InvalidInputError("pubs must contain at least one PUB")
        level = self._options.resilience_level
        kwargs: dict[str, Any] = {
            "options": self._options._program_options() or None,
            "resilience_level": None if level is UNSET else level,
        }
        try:
            params = encode_estimator_params(coerced, **kwargs)
        except WireFormatError as exc:
            # OpenQASM 3 cannot express everything (e.g. aliased classical registers); QPY can.
            logger.info("sending QPY circuits: %s", exc)
            params = encode_estimator_params(coerced, circuit_form="qpy", **kwargs)
        return self._submit(params, [pub.circuit for pub in coerced])
