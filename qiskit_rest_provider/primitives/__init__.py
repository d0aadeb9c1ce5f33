"""Sampler and Estimator V2 primitives that run on a Qiskit Runtime REST service.

``SamplerV2`` / ``EstimatorV2`` (aliases ``SamplerImplementation`` / ``EstimatorImplementation``)
take a :class:`~qiskit_rest_provider.RestBackend`, :class:`~qiskit_rest_provider.Session` or
:class:`~qiskit_rest_provider.Batch` as ``mode``; ``run`` validates PUBs locally, submits one job
and returns a :class:`RestPrimitiveJob`.
"""

from .estimator import EstimatorV2
from .job import RestPrimitiveJob, map_job_status
from .options import EstimatorOptions, SamplerOptions
from .sampler import SamplerV2

SamplerImplementation = SamplerV2
EstimatorImplementation = EstimatorV2

__all__ = [
    "EstimatorImplementation",
    "EstimatorOptions",
    "EstimatorV2",
    "RestPrimitiveJob",
    "SamplerImplementation",
    "SamplerOptions",
    "SamplerV2",
    "map_job_status",
]
