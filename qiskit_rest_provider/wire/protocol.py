"""The names of the protocol that IBM's input/result models do not define, in one place.

``ibm-quantum-schemas`` defines what a program's ``params`` and result documents look like
(:mod:`.contract` uses those models). Everything else both halves must spell the same way lives
here: job states, reason codes, media types, program ids, the services' defaults and the names of
our optional extensions (D6, D7, D14 in ``protocol/decisions.md``). This module imports nothing
but the standard library, so the HTTP layer (``client/``, which must stay free of Qiskit) can use
it.

Example:
    >>> from qiskit_rest_provider.wire import protocol
    >>> protocol.COMPLETED in protocol.FINAL_STATES
    True
    >>> protocol.DEFAULT_SHOTS
    4096
"""

from __future__ import annotations

__all__ = [
    "BINARY_RESULT_MEDIA_TYPE",
    "CANCELLED",
    "COMPLETED",
    "DEFAULT_PRECISION",
    "DEFAULT_RESILIENCE_LEVEL",
    "DEFAULT_SHOTS",
    "ESTIMATOR",
    "EVENTS_MEDIA_TYPE",
    "EVENT_FINAL",
    "EVENT_PROGRESS",
    "EVENT_STATE",
    "EXECUTOR",
    "FAILED",
    "FINAL_STATES",
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENCY_TTL_SECONDS",
    "JOB_STATUS_HEADER",
    "JOB_STATES",
    "JSON_MEDIA_TYPE",
    "LAST_EVENT_ID_HEADER",
    "MAX_WAIT_SECONDS",
    "NOISE_LEARNER",
    "PENDING_STATES",
    "PRIMITIVE_PROGRAMS",
    "PROGRAMS",
    "QUEUED",
    "REASON_EXECUTION",
    "REASON_INPUT",
    "REASON_MAX_TIME",
    "REASON_OUT_OF_MEMORY",
    "REASON_WORKER_CRASH",
    "RESULTS_WAIT_HEADER",
    "RUNNING",
    "SAMPLER",
    "WAIT_QUERY_PARAM",
]

# ----------------------------------------------------------------------------- job states
# The ``state.status`` strings of ``GET /jobs/{id}`` (protocol §3.7), spelled as the service does.
QUEUED = "Queued"
"""Accepted and stored; waiting for a worker."""
RUNNING = "Running"
"""Handed to a worker."""
COMPLETED = "Completed"
"""Finished; ``GET /jobs/{id}/results`` has the result document."""
FAILED = "Failed"
"""Finished without a result; ``state.reason`` / ``state.reason_code`` say why."""
CANCELLED = "Cancelled"
"""Stopped by the user, or by the service (``reason_code`` :data:`REASON_MAX_TIME`)."""

JOB_STATES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
"""Every state a job of this service can be in, in life order."""
FINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED})
"""States a job never leaves."""
PENDING_STATES = frozenset({QUEUED, RUNNING})
"""States from which a job can still move (and be cancelled)."""

# ----------------------------------------------------------------------------- reason codes
REASON_INPUT = 1002
"""Failed: the stored ``params`` turned out invalid when the job ran (e.g. after a restart)."""
REASON_MAX_TIME = 1305
"""Cancelled: the job ran past its maximum execution time (clients report it as an error)."""
REASON_EXECUTION = 1500
"""Failed: the simulation itself failed (message in ``state.reason``)."""
REASON_WORKER_CRASH = 1501
"""Failed: the worker running the job died by itself (after the last retry)."""
REASON_OUT_OF_MEMORY = 1502
"""Failed: the worker running the job was killed for memory (not retried)."""

# ----------------------------------------------------------------------------- media types
JSON_MEDIA_TYPE = "application/json"
"""Every request and response body, and result documents in both JSON forms (§5.1, §5.2)."""
BINARY_RESULT_MEDIA_TYPE = "application/x-qiskit-rest-result"
"""Extension: the binary result container (:mod:`.binary`), sent only to a client whose
``Accept`` names it; everyone else gets :data:`JSON_MEDIA_TYPE`."""
EVENTS_MEDIA_TYPE = "text/event-stream"
"""Extension (D14): live job events as server-sent events."""

# ----------------------------------------------------------------------------- programs
SAMPLER = "sampler"
ESTIMATOR = "estimator"
EXECUTOR = "executor"
NOISE_LEARNER = "noise-learner"
PRIMITIVE_PROGRAMS = (SAMPLER, ESTIMATOR)
"""The V2 primitives' programs (inputs: ``ibm_quantum_schemas`` sampler/estimator v0.1)."""
PROGRAMS = (SAMPLER, ESTIMATOR, EXECUTOR, NOISE_LEARNER)
"""Program ids of the protocol (D12); a server answers 404 ``program_not_found`` for one it
does not run."""

# ----------------------------------------------------------------------------- defaults
DEFAULT_SHOTS = 4096
"""Sampler shots per PUB when neither the PUB, ``run(shots=...)`` nor ``options.default_shots``
say (the models' ``OptionsModel.default_shots``)."""
DEFAULT_PRECISION = 0.015625
"""Estimator target precision (standard error, 1/64) by default: 4096 shots' worth."""
DEFAULT_RESILIENCE_LEVEL = 1
"""Estimator ``params.resilience_level`` when absent (0: none, 1: readout, 2: + ZNE)."""

# ----------------------------------------------------------------------------- extensions
WAIT_QUERY_PARAM = "wait"
"""Extension (D6): ``GET /jobs/{id}?wait=SECONDS`` long-polls until final or time is up."""
MAX_WAIT_SECONDS = 30.0
"""The longest ``wait`` a server honours (longer values are clipped or refused)."""
RESULTS_WAIT_HEADER = "X-Results-Wait"
"""Extension (D16): a server that answers ``POST /jobs`` with this header (the longest ``wait``
it honours, in seconds) also long-polls ``GET /jobs/{id}/results?wait=SECONDS``: the answer
comes once the job is final (its results, or a failed job's error text) or, when the time is
up, as ``409 job_not_final``. A client that never saw the header never sends that ``wait``."""
JOB_STATUS_HEADER = "X-Job-Status"
"""Extension (D16): the job's ``state.status`` on every ``GET /jobs/{id}/results`` answer of a
server offering D16, so a client that waited there knows without another request whether it
holds results or a failed job's error text."""
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
"""Extension (D7): a repeated ``POST /jobs`` with the same key returns the first job."""
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
"""How long a server remembers an idempotency key (D7: 24 h)."""
LAST_EVENT_ID_HEADER = "Last-Event-ID"
"""Extension (D14): replay events after this id when reconnecting."""
EVENT_STATE = "state"
EVENT_PROGRESS = "progress"
EVENT_FINAL = "final"
"""The ``event:`` names of the job event stream (D14)."""
