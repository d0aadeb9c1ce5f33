"""The server's view of the primitives' ``options`` tree (protocol §4.4).

The checking itself lives in :mod:`qiskit_rest_provider.wire.options`, derived from
``ibm-quantum-schemas``' option models plus the server's documented extra rules, so that the
client's option setters and the server give the same verdict on the same value. This module keeps
the names the server's modules have always imported.

What the simulator does with the options: ``default_shots``, ``default_precision``,
``seed_estimator`` and ``simulator.*`` (noise model, seed) change the execution; the hardware
options (dynamical decoupling, twirling, resilience, ``execution.*``) are accepted, validated and
echoed in the result metadata, but have no effect on an Aer simulation (decoupling and twirling
do not change ideal or Markovian-noise statistics in expectation; error mitigation is not
simulated). ``execution.meas_type`` other than ``"classified"`` is rejected: a simulator has no
kerneled IQ data to return, and inventing it would be dishonest.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ..wire.options import DEFAULT_PRECISION, DEFAULT_SHOTS, OptionsError, check_options

__all__ = [
    "DEFAULT_PRECISION",
    "DEFAULT_SHOTS",
    "OptionsError",
    "noise_model_from_dict",
    "validate_options",
]


def noise_model_from_dict(value: Mapping[str, Any]) -> Any:
    """Build an Aer ``NoiseModel`` from ``NoiseModel.to_dict()`` output.

    ``NoiseModel.from_dict`` is deprecated in Aer but remains the only reader of the format
    that qiskit-ibm-runtime sends, so its warning is silenced here.
    """
    from qiskit_aer.noise import NoiseModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return NoiseModel.from_dict(dict(value))


def validate_options(program_id: str, options: Any, *, path: str = "options") -> dict[str, Any]:
    """Validate a sampler/estimator ``options`` object and fill in the server's defaults.

    A thin wrapper of :func:`qiskit_rest_provider.wire.options.check_options` that also has Aer
    read a ``simulator.noise_model`` document (the client half cannot: it works without Aer).

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        options: the raw ``params.options`` value (``None`` means "nothing set").
        path: prefix for error messages, e.g. ``"params.options"``.

    Returns:
        A new dict with every documented key present.

    Raises:
        OptionsError: naming the full key path of the first unknown or invalid key.

    Example:
        >>> validate_options("sampler", {"default_shots": 100})["twirling"]["strategy"]
        'active-accum'
    """
    return check_options(program_id, options, path, noise_model_reader=noise_model_from_dict)
