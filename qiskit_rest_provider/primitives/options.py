"""Typed options of :class:`SamplerV2` and :class:`EstimatorV2`, mirroring protocol §4.4.

Every option starts *unset*: only what the user sets travels to the service, so the service
applies its own defaults to the rest (exactly what the official client does). Options are
plain attributes on nested dataclass groups, checked when they are set by the contract's
options checker (:mod:`qiskit_rest_provider.wire.options`, derived from ``ibm-quantum-schemas``'
option models and shared with the server), so a typo or a bad value fails at the line that
wrote it rather than as an HTTP 400 later::

    sampler = SamplerV2(mode=backend, options={"default_shots": 1000})
    sampler.options.twirling.enable_gates = True
    sampler.options.update(simulator={"seed_simulator": 42})
    sampler.options.environment.job_tags = ["experiment-7"]

Client-side groups are split off when a job is created: ``environment.job_tags`` becomes the
job's ``tags``, ``environment.log_level`` its ``log_level``, ``environment.private`` its
``private`` flag, ``max_execution_time`` its ``cost`` (seconds); ``resilience_level`` is a
top-level ``params`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..wire.options import check_options
from ._options_base import (
    UNSET,
    OptionsGroup,
    _bool,
    _choice,
    _group,
    _int,
    _opt,
    _str_list,
    _wire,
)
from ._options_base import options_group as _options_group

__all__ = [
    "UNSET",
    "DynamicalDecouplingOptions",
    "EnvironmentOptions",
    "EstimatorExecutionOptions",
    "EstimatorOptions",
    "LayerNoiseLearningOptions",
    "MeasureNoiseLearningOptions",
    "PecOptions",
    "ResilienceOptions",
    "SamplerExecutionOptions",
    "SamplerOptions",
    "SimulatorOptions",
    "TwirlingOptions",
    "ZneOptions",
]


# --------------------------------------------------------------------------- groups
@_options_group("dynamical_decoupling.")
class DynamicalDecouplingOptions(OptionsGroup):
    """Dynamical decoupling (protocol §4.4 ``dynamical_decoupling``)."""

    enable: Any = _wire()
    sequence_type: Any = _wire()
    extra_slack_distribution: Any = _wire()
    scheduling_method: Any = _wire()
    skip_reset_qubits: Any = _wire()


@_options_group("twirling.")
class TwirlingOptions(OptionsGroup):
    """Pauli twirling of gates and measurements (protocol §4.4 ``twirling``)."""

    enable_gates: Any = _wire()
    enable_measure: Any = _wire()
    num_randomizations: Any = _wire()
    shots_per_randomization: Any = _wire()
    strategy: Any = _wire()


@_options_group("execution.")
class SamplerExecutionOptions(OptionsGroup):
    """Execution settings of the sampler; ``rep_delay`` in seconds."""

    init_qubits: Any = _wire()
    rep_delay: Any = _wire()
    meas_type: Any = _wire()


@_options_group("execution.")
class EstimatorExecutionOptions(OptionsGroup):
    """Execution settings of the estimator; ``rep_delay`` in seconds."""

    _program = "estimator"

    init_qubits: Any = _wire()
    rep_delay: Any = _wire()


@_options_group("simulator.")
class SimulatorOptions(OptionsGroup):
    """Simulator settings; ``seed_simulator`` makes runs on simulators reproducible.

    ``method`` (an extension of this service): ``"automatic"`` lets the server pick the
    simulation method from its cost model (stabilizer for Clifford circuits, a matrix product
    state for wide circuits of little entanglement, statevector or density matrix where they
    fit); ``"statevector"``, ``"density_matrix"``, ``"stabilizer"`` or
    ``"matrix_product_state"`` forces one. The result's ``metadata["simulator"]`` says which
    ran.
    """

    noise_model: Any = _wire()
    seed_simulator: Any = _wire()
    coupling_map: Any = _wire()
    basis_gates: Any = _wire()
    method: Any = _wire()


@_options_group("environment.")
class EnvironmentOptions(OptionsGroup):
    """Client-side job settings: sent as the job's ``tags``, ``log_level`` and ``private``."""

    log_level: Any = _opt(_choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", upper=True))
    job_tags: Any = _opt(_str_list)
    private: Any = _opt(_bool)


@_options_group("resilience.measure_noise_learning.")
class MeasureNoiseLearningOptions(OptionsGroup):
    """Readout-error learning for measurement mitigation."""

    _program = "estimator"

    num_randomizations: Any = _wire()
    shots_per_randomization: Any = _wire()


@_options_group("resilience.zne.")
class ZneOptions(OptionsGroup):
    """Zero-noise extrapolation settings."""

    _program = "estimator"

    amplifier: Any = _wire()
    noise_factors: Any = _wire()
    extrapolator: Any = _wire()
    extrapolated_noise_factors: Any = _wire()


@_options_group("resilience.pec.")
class PecOptions(OptionsGroup):
    """Probabilistic error cancellation settings."""

    _program = "estimator"

    max_overhead: Any = _wire()
    noise_gain: Any = _wire()


@_options_group("resilience.layer_noise_learning.")
class LayerNoiseLearningOptions(OptionsGroup):
    """Layer noise learning (used by PEA/PEC)."""

    _program = "estimator"

    max_layers_to_learn: Any = _wire()
    shots_per_randomization: Any = _wire()
    num_randomizations: Any = _wire()
    layer_pair_depths: Any = _wire()


@_options_group("resilience.")
class ResilienceOptions(OptionsGroup):
    """Error mitigation settings of the estimator."""

    _program = "estimator"

    measure_mitigation: Any = _wire()
    measure_noise_learning: Any = _group(MeasureNoiseLearningOptions)
    zne_mitigation: Any = _wire()
    zne: Any = _group(ZneOptions)
    pec_mitigation: Any = _wire()
    pec: Any = _group(PecOptions)
    layer_noise_learning: Any = _group(LayerNoiseLearningOptions)
    layer_noise_model: Any = _wire()


# --------------------------------------------------------------------------- top level
_CLIENT_ONLY = ("environment", "max_execution_time")


class _PrimitiveOptions(OptionsGroup):
    """Shared behaviour of the two top-level option classes."""

    def _program_options(self) -> dict[str, Any]:
        """The ``params.options`` object: what the user set, minus client-only groups.

        The set options are checked together first, with the contract's checker the server
        uses, so rules across options (PEC with ZNE, extrapolators that need more noise factors
        than are set) fail here, before any request, exactly as the server would reject them.

        Raises:
            OptionsError: a ``ValueError`` naming the option.
        """
        out = self.to_dict()
        raw = self._set_values(lambda value: value)  # Aer NoiseModel objects stay objects
        for key in (*_CLIENT_ONLY, "resilience_level"):
            out.pop(key, None)
            raw.pop(key, None)
        check_options(self._program_id, raw)
        return out

    def _job_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``RuntimeClient.create_job`` (tags, log_level, private, cost)."""
        env = self.environment  # type: ignore[attr-defined]
        fields: dict[str, Any] = {}
        if env.job_tags is not UNSET:
            fields["tags"] = list(env.job_tags)
        if env.log_level is not UNSET:
            fields["log_level"] = env.log_level
        if env.private is not UNSET:
            fields["private"] = env.private
        if self.max_execution_time is not UNSET:  # type: ignore[attr-defined]
            fields["cost"] = self.max_execution_time  # type: ignore[attr-defined]
        return fields

    @classmethod
    def coerce(cls, options: Any) -> Any:
        """Build options from ``None``, a dict, or an existing instance (copied)."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return cls._from_dict_full(options)
        if isinstance(options, Mapping):
            obj = cls()
            obj.update(**options)
            return obj
        raise ValueError(f"options must be a dict or {cls.__name__}, got {type(options).__name__}")

    @classmethod
    def _from_dict_full(cls, options: Any) -> Any:
        import copy

        return copy.deepcopy(options)


@_options_group("")
class SamplerOptions(_PrimitiveOptions):
    """Options of :class:`~qiskit_rest_provider.primitives.SamplerV2` (all unset by default).

    Attributes:
        default_shots: shots for PUBs that name none (service default 4096).
        dynamical_decoupling: see :class:`DynamicalDecouplingOptions`.
        twirling: see :class:`TwirlingOptions`.
        execution: see :class:`SamplerExecutionOptions`.
        simulator: see :class:`SimulatorOptions` (``seed_simulator`` for reproducible runs).
        environment: job tags, log level, private flag (client side).
        max_execution_time: upper bound of quantum seconds for a job (sent as the job's ``cost``).
        experimental: free-form options passed through under ``options.experimental``.
    """

    _program = "sampler"

    default_shots: Any = _wire()
    dynamical_decoupling: Any = _group(DynamicalDecouplingOptions)
    twirling: Any = _group(TwirlingOptions)
    execution: Any = _group(SamplerExecutionOptions)
    simulator: Any = _group(SimulatorOptions)
    environment: Any = _group(EnvironmentOptions)
    max_execution_time: Any = _opt(_int(1))
    experimental: Any = _wire()


@_options_group("")
class EstimatorOptions(_PrimitiveOptions):
    """Options of :class:`~qiskit_rest_provider.primitives.EstimatorV2` (all unset by default).

    Attributes:
        default_precision: target standard error for PUBs that name none (service default 1/64).
        default_shots: shots per basis; overrides ``default_precision`` when set.
        seed_estimator: seed of the estimator's sampling noise, for reproducible runs.
        resilience_level: 0, 1 or 2 (sent as top-level ``params.resilience_level``).
        resilience: see :class:`ResilienceOptions`.
        dynamical_decoupling, twirling, execution, simulator, environment, max_execution_time,
        experimental: as for :class:`SamplerOptions`.
    """

    _program = "estimator"

    default_precision: Any = _wire()
    default_shots: Any = _wire()
    seed_estimator: Any = _wire()
    resilience_level: Any = _wire()
    resilience: Any = _group(ResilienceOptions)
    dynamical_decoupling: Any = _group(DynamicalDecouplingOptions)
    twirling: Any = _group(TwirlingOptions)
    execution: Any = _group(EstimatorExecutionOptions)
    simulator: Any = _group(SimulatorOptions)
    environment: Any = _group(EnvironmentOptions)
    max_execution_time: Any = _opt(_int(1))
    experimental: Any = _wire()
