"""The reference server's backends: built-in devices plus operator-supplied snapshots.

A backend is two IBM-format JSON documents, served verbatim by
``GET backends/{name}/configuration`` and ``GET backends/{name}/properties`` (protocol §3.3–3.4),
from which the :class:`~qiskit.transpiler.Target` (ISA checks) and the Aer noise model (noisy
simulation) are derived on first use.

Sources, in load order:

1. the built-in devices shipped in ``server/backends/devices/`` (``rest_simulator``,
   ``rest_line_5q``, ``rest_line_5q_ecr`` (its two-qubit gate is ``ecr``), ``rest_hex_27q``,
   ``rest_hex_127q``; see :mod:`.devices.generate`);
2. every ``conf_<X>.json`` found recursively under ``--backends-dir``, paired with
   ``props_<X>.json`` from the same folder when there is one (no properties means an ideal
   backend). The backend's name is the configuration's ``backend_name``. This is the layout of
   qiskit-ibm-runtime's fake provider snapshots, so that directory can be used as is.

Each backend also has a **mock twin** for dry runs, named as qiskit-ibm-runtime derives it
(``dry_run=True`` replaces the name's first ``_``-separated part with ``mock``: ``rest_line_5q`` →
``mock_line_5q``). A twin has its backend's configuration and calibration, is listed only in the
object form of ``GET backends`` with ``"class": "mock"`` (so clients leave it out unless asked to
include mocks), and runs executor jobs without simulating: it validates them in full and answers
with randomized data of the result's exact shape, as IBM documents dry runs.

Name conflicts: a later source replaces an earlier one, with a warning naming both files. Files
under ``--backends-dir`` are read in sorted path order, after the built-ins, so an operator can
replace a built-in device by shipping a snapshot of the same name. A file that cannot be read or
lacks the required fields is skipped with an error in the log (``strict=True`` raises instead).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qiskit.transpiler import Target

from qiskit_rest_provider.exceptions import QiskitRestProviderError
from qiskit_rest_provider.wire.target import target_from_backend_data

if TYPE_CHECKING:  # pragma: no cover
    from qiskit_aer.noise import NoiseModel

__all__ = [
    "MOCK_PREFIX",
    "BUILTIN_BACKENDS",
    "BUILTIN_DEVICES_DIR",
    "BackendCatalog",
    "BackendSpec",
    "CatalogError",
]

logger = logging.getLogger(__name__)

BUILTIN_DEVICES_DIR = Path(__file__).resolve().parent / "devices"
BUILTIN_BACKENDS = (
    "rest_simulator",
    "rest_line_5q",
    "rest_line_5q_ecr",
    "rest_hex_27q",
    "rest_hex_127q",
)

MOCK_PREFIX = "mock_"
"""Names starting with this are dry-run twins (qiskit-ibm-runtime's ``mock_*`` convention)."""

_DEFAULT_ONLINE_DATE = "2025-01-01T00:00:00+00:00"
_REQUIRED_CONFIGURATION = ("backend_name", "n_qubits")

# Per-process caches keyed by the spec's content fingerprint: a spec unpickled in a worker
# process (or re-created by a fresh catalog load) reuses the Target / noise model built earlier.
_CACHE_LOCK = threading.Lock()
_TARGETS: dict[str, Target] = {}
_NOISE_MODELS: dict[str, Any] = {}


class CatalogError(QiskitRestProviderError, ValueError):
    """A backend definition is unusable (a bad file under ``strict=True``, a missing folder)."""


@dataclass(frozen=True)
class BackendSpec:
    """One backend: its configuration, its properties, and what the server derives from them.

    Attributes:
        name: backend name (the configuration's ``backend_name``).
        configuration: IBM-format configuration dict, as served.
        properties: IBM-format properties dict, or ``None`` for an ideal backend.
        source: where the definition came from (a file path, for log messages).
    """

    name: str
    configuration: dict
    properties: dict | None
    source: str = field(default="", compare=False)
    dry_run_of: str | None = None
    """For a mock twin: the name of the backend it mirrors (its jobs are dry runs)."""

    @property
    def simulator(self) -> bool:
        """Whether the configuration says ``simulator: true``."""
        return bool(self.configuration.get("simulator", False))

    @property
    def num_qubits(self) -> int:
        """Number of qubits (``n_qubits``)."""
        return int(self.configuration["n_qubits"])

    @property
    def backend_version(self) -> str:
        """The configuration's ``backend_version`` (``"0.0.0"`` when absent)."""
        return str(self.configuration.get("backend_version") or "0.0.0")

    @property
    def is_noisy(self) -> bool:
        """Whether jobs on this backend simulate noise (it has calibration properties)."""
        return self.properties is not None

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of configuration + properties (keys the per-process caches)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.name.encode())
        digest.update(json.dumps(self.configuration, sort_keys=True, default=str).encode())
        digest.update(json.dumps(self.properties, sort_keys=True, default=str).encode())
        return digest.hexdigest()

    @cached_property
    def target(self) -> Target:
        """The Target built from configuration + properties (built once per process)."""
        key = self.fingerprint
        target = _TARGETS.get(key)
        if target is None:
            target = target_from_backend_data(self.configuration, self.properties)
            with _CACHE_LOCK:
                target = _TARGETS.setdefault(key, target)
        return target

    @cached_property
    def noise_model(self) -> NoiseModel | None:
        """The Aer noise model (``None`` for an ideal backend), built once per process."""
        if self.properties is None:
            return None
        key = self.fingerprint
        model = _NOISE_MODELS.get(key)
        if model is None:
            from qiskit_rest_provider.server.backends.noise import noise_model_from_spec

            model = noise_model_from_spec(self)
            with _CACHE_LOCK:
                model = _NOISE_MODELS.setdefault(key, model)
        return model

    def status(self, *, length_queue: int = 0) -> dict[str, Any]:
        """The ``GET backends/{name}/status`` body (protocol §3.5).

        Args:
            length_queue: number of jobs waiting for this backend (the server knows it).
        """
        return {
            "state": True,
            "status": "active",
            "message": "",
            "length_queue": max(int(length_queue), 0),
            "backend_version": self.backend_version,
        }

    def list_entry(self, *, queue_length: int = 0) -> dict[str, Any]:
        """This backend as an object of the ``GET backends`` V2 list (protocol §3.2, D9)."""
        entry: dict[str, Any] = {
            "name": self.name,
            "status": {"name": "online"},
            "is_simulator": self.simulator,
            "qubits": self.num_qubits,
            "queue_length": max(int(queue_length), 0),
        }
        processor = self.configuration.get("processor_type")
        if isinstance(processor, Mapping):
            entry["processor_type"] = dict(processor)
        return entry

    def __getstate__(self) -> dict[str, Any]:
        # Derived objects are rebuilt (once per process) rather than pickled to workers.
        state = dict(self.__dict__)
        state.pop("target", None)
        state.pop("noise_model", None)
        return state


def _read_json(path: Path) -> Any:
    with path.open("rb") as handle:
        return json.load(handle)


def _spec_from_files(conf_path: Path, props_path: Path | None) -> BackendSpec:
    """Read one backend; raises :class:`CatalogError` naming the file and the problem."""
    try:
        configuration = _read_json(conf_path)
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{conf_path}: cannot read configuration: {exc}") from exc
    if not isinstance(configuration, dict):
        raise CatalogError(f"{conf_path}: configuration is not a JSON object")
    missing = [key for key in _REQUIRED_CONFIGURATION if key not in configuration]
    if missing:
        raise CatalogError(f"{conf_path}: configuration lacks {', '.join(missing)}")
    if not isinstance(configuration["n_qubits"], int) or configuration["n_qubits"] < 1:
        raise CatalogError(f"{conf_path}: n_qubits must be a positive integer")
    # Clients need these to parse the configuration (protocol §3.3); fill harmless defaults.
    configuration.setdefault("online_date", _DEFAULT_ONLINE_DATE)
    configuration.setdefault("backend_version", "0.0.0")
    for key in ("basis_gates", "gates"):
        configuration.setdefault(key, [])
    properties = None
    if props_path is not None:
        try:
            properties = _read_json(props_path)
        except (OSError, ValueError) as exc:
            raise CatalogError(f"{props_path}: cannot read properties: {exc}") from exc
        if not isinstance(properties, dict) or not isinstance(properties.get("qubits"), list):
            raise CatalogError(f"{props_path}: properties must be an object with a qubits list")
    return BackendSpec(
        name=str(configuration["backend_name"]),
        configuration=configuration,
        properties=properties,
        source=str(conf_path),
    )


def _pairs(directory: Path) -> Iterator[tuple[Path, Path | None]]:
    """``(conf_X.json, props_X.json or None)`` for every configuration under ``directory``."""
    for conf_path in sorted(directory.rglob("conf_*.json")):
        suffix = conf_path.name.removeprefix("conf_")
        props_path = conf_path.with_name(f"props_{suffix}")
        yield conf_path, props_path if props_path.is_file() else None


class BackendCatalog:
    """The backends a server offers, by name.

    Example:
        >>> catalog = BackendCatalog.load()
        >>> catalog.names()[:2]
        ['rest_hex_127q', 'rest_hex_27q']
        >>> catalog.get("rest_line_5q").num_qubits
        5
    """

    def __init__(self, specs: Mapping[str, BackendSpec] | None = None) -> None:
        self._specs: dict[str, BackendSpec] = dict(specs or {})

    @classmethod
    def load(
        cls, backends_dir: str | Path | None = None, *, strict: bool = False
    ) -> BackendCatalog:
        """Built-in devices plus every ``conf_*.json`` (+ ``props_*.json``) under ``backends_dir``.

        Args:
            backends_dir: folder searched recursively for snapshots (``None``: built-ins only).
            strict: raise :class:`CatalogError` on an unusable file instead of skipping it.

        Raises:
            CatalogError: ``backends_dir`` does not exist, or (``strict``) a file is unusable.
        """
        catalog = cls()
        catalog._add_directory(BUILTIN_DEVICES_DIR, strict=True)
        if backends_dir is not None:
            directory = Path(backends_dir).expanduser()
            if not directory.is_dir():
                raise CatalogError(f"backends directory {directory} does not exist")
            catalog._add_directory(directory, strict=strict)
        logger.info("Backend catalog: %d backends", len(catalog))
        return catalog

    def _add_directory(self, directory: Path, *, strict: bool) -> None:
        for conf_path, props_path in _pairs(directory):
            try:
                spec = _spec_from_files(conf_path, props_path)
            except CatalogError as exc:
                if strict:
                    raise
                logger.error("Skipping backend definition: %s", exc)
                continue
            self.add(spec)

    def add(self, spec: BackendSpec) -> None:
        """Add a backend, replacing (with a warning) one of the same name."""
        previous = self._specs.get(spec.name)
        if previous is not None:
            logger.warning(
                "Backend %s from %s replaces the one from %s",
                spec.name,
                spec.source or "<memory>",
                previous.source or "<memory>",
            )
        self._specs[spec.name] = spec

    def names(self) -> list[str]:
        """Sorted backend names (mock twins are not among them: see :meth:`mocks`)."""
        return sorted(self._specs)

    @staticmethod
    def mock_name(name: str) -> str | None:
        """The dry-run twin's name of backend ``name`` (``None`` if it cannot have one)."""
        if name.startswith(MOCK_PREFIX) or "_" not in name:
            return None
        return MOCK_PREFIX + name.split("_", 1)[1]

    def _mock_sources(self) -> dict[str, str]:
        """Mock twin name -> the backend it mirrors (a name already taken has no twin)."""
        out: dict[str, str] = {}
        for name in sorted(self._specs):
            twin = self.mock_name(name)
            if twin is not None and twin not in self._specs and twin not in out:
                out[twin] = name
        return out

    def mocks(self) -> list[BackendSpec]:
        """The mock twins, sorted by name (for the ``GET backends`` object list)."""
        return [self.get(twin) for twin in sorted(self._mock_sources())]

    def get(self, name: str) -> BackendSpec:
        """The backend (or mock twin) called ``name``; raises ``KeyError`` if there is none."""
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        source = self._mock_sources().get(name) if name.startswith(MOCK_PREFIX) else None
        if source is None:
            raise KeyError(name)
        real = self._specs[source]
        return BackendSpec(
            name=name,
            configuration={**real.configuration, "backend_name": name},
            properties=real.properties,
            source=real.source,
            dry_run_of=source,
        )

    def __contains__(self, name: object) -> bool:
        if name in self._specs:
            return True
        return isinstance(name, str) and name in self._mock_sources()

    def __iter__(self) -> Iterator[BackendSpec]:
        return (self._specs[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._specs)


def current_calibration_id(spec: Any) -> str:
    """The id of a backend's current calibration (what ``calibration_id=`` must name).

    The catalog's documents carry no calibration id, so it is derived from what identifies a
    calibration: the backend name and the properties' ``last_update_date`` (the configuration's
    ``online_date`` for an ideal simulator, which has no properties). Stable across restarts and
    replicas; a new calibration (new ``last_update_date``) gets a new id.
    """
    props = spec.properties or {}
    stamp = props.get("last_update_date") or spec.configuration.get("online_date") or ""
    digest = hashlib.blake2b(f"{spec.name}\n{stamp}".encode(), digest_size=10)
    return f"cal-{digest.hexdigest()}"
