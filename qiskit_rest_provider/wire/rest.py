"""The REST resources' bodies as pydantic models (protocol §3, §8; decision D10).

Requests: what a route accepts (``JobCreate``, ``SessionCreate``, ...). Responses: what it sends
(``JobDetails``, ``SessionDetails``, ``InstanceUsage``, ...). The server validates request bodies
with these models and describes both kinds in its OpenAPI document; the models use pydantic only
(no qiskit, no HTTP), so a client may validate against them too.

The server routes read their bodies themselves (after authenticating, with orjson), so FastAPI
does not see the request models: :func:`request_body` declares one as a route's body
(``openapi_extra``) and :func:`add_request_schemas` puts the schemas into the document.

Example:
    >>> from qiskit_rest_provider.wire.rest import JobCreate
    >>> JobCreate.model_validate(
    ...     {"program_id": "sampler", "backend": "b", "params": {}, "private": "true"}
    ... ).private
    True
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

JSON = "application/json"


def _lenient_bool(value: Any) -> Any:
    """Pre-validator of :data:`LenientBool`: seeds send ``"start_session": "False"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a boolean, got {value!r}")


# ------------------------------------------------------------------------------ OpenAPI bodies
_REQUEST_MODELS: dict[str, type[BaseModel]] = {}


def request_body(
    model: type[BaseModel], *, media_type: str = JSON, required: bool = True
) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as a route's request body.

    The routes read their bodies themselves (after authentication, with orjson), so FastAPI does
    not see the model; this puts it in the document, and :func:`add_request_schemas` adds its
    schema to ``components``.
    """
    _REQUEST_MODELS[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {media_type: {"schema": ref}}}}


def add_request_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Add the JSON schemas of every :func:`request_body` model to an OpenAPI document."""
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema(
        [(model, "validation") for model in _REQUEST_MODELS.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    return document


# ------------------------------------------------------------------------------ request bodies
LenientBool = Annotated[bool, BeforeValidator(_lenient_bool)]
"""A boolean that also accepts ``"true"``/``"false"``/``"1"``/``"0"`` and ``0``/``1``."""
Seconds = Annotated[float, Field(strict=True)]
"""A JSON number of seconds (``true`` and ``"60"`` are refused)."""


class _Request(BaseModel):
    # Unknown keys are ignored: newer official clients add fields (``calibration_id`` came late)
    # and must not be refused by a server that predates them. ``params`` itself is checked
    # strictly against the program's models by the runner (D11).
    model_config = ConfigDict(extra="ignore")


class JobCreate(_Request):
    """``POST /jobs`` (protocol §3.6)."""

    program_id: str = Field(
        min_length=1, description="sampler, estimator, ...", examples=["sampler"]
    )
    backend: str | None = Field(None, description="backend name (required, or backend_name)")
    backend_name: str | None = Field(None, description="alias of backend")
    params: dict[str, Any] = Field(
        description="the program's inputs, validated against its ibm-quantum-schemas model"
    )
    tags: list[str] | None = Field(
        None, json_schema_extra={"maxItems": 50}, description="1-256 characters each"
    )
    session_id: str | None = None
    log_level: str | None = Field(None, description="critical, error, warning, info, debug")
    cost: Seconds | None = Field(None, description="maximum execution time, seconds (> 0)")
    private: LenientBool = Field(False, description="params hidden, results readable once")
    start_session: LenientBool = False
    session_time: float | None = None
    calibration_id: str | None = Field(None, description="the backend's current calibration")
    runtime: str | None = Field(None, description="image (ignored here)")
    hub: str | None = None
    group: str | None = None
    project: str | None = None
    instance: str | None = None
    channel_strategy: str | None = None


class SessionCreate(_Request):
    """``POST /sessions`` (protocol §3.10)."""

    mode: Literal["dedicated", "batch"] = "dedicated"
    backend: str | None = Field(None, description="backend name (required, or backend_name)")
    backend_name: str | None = None
    instance: str | None = None
    max_ttl: Seconds | None = None
    max_session_ttl: Seconds | None = Field(None, description="classic alias of max_ttl")
    interactive_ttl: Seconds | None = None


class SessionUpdate(_Request):
    """``PATCH /sessions/{id}``: ``{"accepting_jobs": false}`` closes it gracefully."""

    accepting_jobs: LenientBool


class TagsUpdate(_Request):
    """``PUT /jobs/{id}/tags``."""

    tags: list[str] | None = Field(None, json_schema_extra={"maxItems": 50})


class ClassicLogin(_Request):
    """``POST /api/users/loginWithToken``."""

    apiToken: str = Field(min_length=1)  # noqa: N815 - the wire name


class IamTokenForm(_Request):
    """``POST /identity/token`` (form-encoded, as IBM Cloud IAM takes it)."""

    grant_type: Literal["urn:ibm:params:oauth:grant-type:apikey"]
    apikey: str
    response_type: str | None = None


class TranspileCreate(_Request):
    """``POST /transpile`` (protocol §8.1); every field may also come as a query parameter."""

    qasm_circuits: str | list[str] | None = None
    qpy_circuits: str | None = Field(None, description="Base64 QPY file")
    backend: str | None = None
    optimization_level: int | str | None = Field(None, description="0-3 (default 3)")
    backend_coupling_map: list[list[int]] | str | None = None
    coupling_map: list[list[int]] | str | None = None
    qiskit_transpile_options: dict[str, Any] | str | list[Any] | None = None
    ai: str | bool | None = None
    use_ai: LenientBool | None = None
    ai_layout_mode: str | None = None
    use_fractional_gates: LenientBool | None = None
    optimization_preferences: str | list[str] | None = None
    max_execution_time: float | str | None = Field(
        None, description="wall-clock limit of the task on a worker, seconds"
    )


# ------------------------------------------------------------------------------ response bodies
class _Shape(BaseModel):
    # Documents what is sent; extra keys are allowed (an answer may carry more).
    model_config = ConfigDict(extra="allow")


class ErrorItem(_Shape):
    """One problem of a D10 error body."""

    code: str
    message: str
    more_info: str = ""


class ErrorBody(_Shape):
    """The D10 error body of every 4xx/5xx answer."""

    errors: list[ErrorItem]
    trace: str
    status_code: int


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "D10 error naming the field or the problem"},
    "5XX": {"model": ErrorBody, "description": "D10 error (no internals)"},
}
"""``responses=`` of every router: errors are D10 bodies (400, never FastAPI's 422)."""


class JobCreated(_Shape):
    """``POST /jobs`` answer."""

    id: str
    backend: str
    session_id: str | None = None


class JobState(_Shape):
    """``state`` of a job."""

    status: str = Field(description="Queued, Running, Completed, Failed, Cancelled")
    reason: str | None = None
    reason_code: int | None = None


class JobProgram(_Shape):
    """``program`` of a job."""

    id: str


class JobUsage(_Shape):
    """``usage`` of a job."""

    seconds: float


class JobDetails(_Shape):
    """``GET /jobs/{id}`` (protocol §3.7); ``params`` only when asked for and not private."""

    id: str
    backend: str
    state: JobState
    status: str
    program: JobProgram
    created: str | None
    session_id: str | None
    tags: list[str]
    private: bool
    cost: int
    user_id: str | None
    usage: JobUsage
    runtime: str | None = None
    log_level: str | None = None
    estimated_running_time_seconds: float | None = None
    instance: str | None = None
    params: dict[str, Any] | None = None


class JobsPage(_Shape):
    """``GET /jobs`` (protocol §3.8): ``count`` is exact, ignoring limit/offset."""

    jobs: list[JobDetails]
    count: int
    offset: int
    limit: int


class JobMetrics(_Shape):
    """``GET /jobs/{id}/metrics`` (protocol §3.9)."""

    timestamps: dict[str, str | None]
    bss: dict[str, float]
    usage: dict[str, float | str]
    executions: int
    num_circuits: int
    num_qubits: list[Any]
    circuit_depths: list[Any]
    qiskit_version: str
    position_in_queue: int | None = None


class SessionStamp(_Shape):
    """One entry of a session's ``timestamps``."""

    status: str
    timestamp: str | None


class SessionDetails(_Shape):
    """``GET /sessions/{id}`` and the ``POST /sessions`` answer (protocol §3.10)."""

    id: str
    backend_name: str
    mode: str
    state: str
    state_reason: str | None
    accepting_jobs: bool
    interactive_ttl: int
    max_ttl: int
    active_ttl: int
    started_at: str | None
    activated_at: str | None
    closed_at: str | None
    last_job_started: str | None
    last_job_completed: str | None
    timestamps: list[SessionStamp]
    user_id: str | None
    elapsed_time: float | None
    jobs: dict[str, int] = Field(default_factory=dict, description="job counts by state")


class BackendEntry(_Shape):
    """One backend of the ``GET /backends`` V2 list (D9)."""

    name: str
    status: dict[str, str]
    is_simulator: bool
    qubits: int
    queue_length: int


class BackendsList(_Shape):
    """``GET /backends``: names before ``IBM-API-Version`` 2025-01-01, objects since (D9)."""

    devices: list[str] | list[BackendEntry]


class BackendStatus(_Shape):
    """``GET /backends/{name}/status`` (protocol §3.5)."""

    state: bool
    status: str
    message: str
    length_queue: int
    backend_version: str


class UsagePeriod(_Shape):
    """The period a usage report covers (the calendar month, UTC)."""

    start_time: str | None
    end_time: str | None


class InstanceUsage(_Shape):
    """``GET /instances/usage`` (protocol §3.11); every amount in whole seconds."""

    instance_id: str
    plan_id: str
    usage_period: UsagePeriod
    usage_consumed_seconds: int
    usage_limit_seconds: int
    usage_allocation_seconds: int
    usage_remaining_seconds: int
    usage_limit_reached: bool


class InstanceDetails(_Shape):
    """``GET /instance``."""

    crn: str
    instance: str
    qctrl_enabled: bool


class ServerVersion(_Shape):
    """``GET /version``: what this server runs."""

    version: str = Field(description="qiskit-rest-provider version")
    qiskit: str
    qiskit_aer: str
    api_versions: list[str] = Field(description="IBM-API-Version values understood")


class ApiVersions(_Shape):
    """``GET /versions``."""

    versions: list[str]


class ClassicVersion(_Shape):
    """``GET /api/version`` (classic clients require ``api-auth``)."""

    new_api: bool
    api_auth: str = Field(alias="api-auth")


class Health(_Shape):
    """``GET /health``."""

    status: str
    version: str
    in_flight: int
    time: str | None


class IamToken(_Shape):
    """``POST /identity/token`` answer (a JWT with ``iat``/``exp``)."""

    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int
    expiration: int
    scope: str


class ClassicAccessToken(_Shape):
    """``POST /api/users/loginWithToken`` answer."""

    id: str
    ttl: int
    created: str | None
    userId: str  # noqa: N815 - the wire name


class UserInfo(_Shape):
    """``GET /api/users/me`` (classic)."""

    id: str
    urls: dict[str, Any]
    instance: str
    instance_crn: str


class TranspileTaskCreated(_Shape):
    """``POST /transpile`` answer."""

    task_id: str


class TranspileTaskStatus(_Shape):
    """``GET /transpile/{task_id}``: ``result`` per circuit on SUCCESS, the message on FAILURE."""

    task_id: str
    state: str
    result: list[dict[str, Any]] | str | None = None
    warnings: list[str] | None = None
