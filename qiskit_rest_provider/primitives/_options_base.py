"""The machinery under the option classes: the *unset* marker, value checkers, group base.

Kept apart from :mod:`.options` (which only declares the option tree) so the tree reads like
the protocol's table (§4.4). Options that travel in ``params.options`` (and the estimator's
``resilience_level``) are checked by the contract's one checker,
:func:`qiskit_rest_provider.wire.options.check_option`, the same one the server uses, so a value
accepted here is accepted by the server; the checkers below serve only the client-side settings
(``environment.*``, ``max_execution_time``) that become job fields.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..wire.options import check_option

__all__ = ["UNSET", "Checker", "OptionsGroup", "options_group"]


class _UnsetType:
    """Marker for an option the user never set (so it is not sent)."""

    _instance: _UnsetType | None = None

    def __new__(cls) -> _UnsetType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Unset"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _UnsetType:
        return self

    def __deepcopy__(self, memo: dict) -> _UnsetType:
        return self


UNSET: Any = _UnsetType()

# --------------------------------------------------------------------------- value checkers
Checker = Callable[[str, Any], Any]


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"option {name} must be a bool, got {value!r}")


def _int(minimum: int | None = None, maximum: int | None = None, auto: bool = False) -> Checker:
    def check(name: str, value: Any) -> Any:
        if auto and value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            kind = 'an integer or "auto"' if auto else "an integer"
            raise ValueError(f"option {name} must be {kind}, got {value!r}")
        value = int(value)
        if minimum is not None and value < minimum:
            raise ValueError(f"option {name} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"option {name} must be <= {maximum}, got {value}")
        return value

    return check


def _choice(*allowed: str, upper: bool = False) -> Checker:
    def check(name: str, value: Any) -> Any:
        if isinstance(value, str):
            key = value.upper() if upper else value
            if key in allowed:
                return key
        raise ValueError(f"option {name} must be one of {list(allowed)}, got {value!r}")

    return check


def _str_list(name: str, value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"option {name} must be a list of strings, got {value!r}")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"option {name} must contain only strings, got {value!r}")
    return list(value)


def _opt(check: Checker) -> Any:
    """A client-side leaf option: starts unset, validated by ``check`` when set."""
    return dataclasses.field(default=UNSET, metadata={"check": check})


def _wire() -> Any:
    """A leaf option of the program's ``options``: starts unset, checked by the contract."""
    return dataclasses.field(default=UNSET, metadata={"wire": True})


def _group(cls: type) -> Any:
    return dataclasses.field(default_factory=cls, metadata={"group": cls})


# --------------------------------------------------------------------------- base class
class OptionsGroup:
    """Base of every options group: attribute checks, ``update``, dict conversion.

    A group knows the program (``"sampler"``/``"estimator"``) whose option model checks its
    values: its class's ``_program`` until a parent binds it (a group shared by both programs,
    such as twirling, is re-checked when it moves under the other program's options).
    """

    _path: ClassVar[str] = ""
    _program: ClassVar[str] = "sampler"

    @property
    def _program_id(self) -> str:
        return self.__dict__.get("_bound_program", type(self)._program)

    def _bind(self, program: str) -> None:
        """Make ``program``'s option model the judge of this group and its subgroups."""
        if self._program_id != program:
            object.__setattr__(self, "_bound_program", program)
            for f in dataclasses.fields(self):  # type: ignore[arg-type]
                value = getattr(self, f.name)
                if f.metadata.get("wire") and value is not UNSET:
                    check_option(program, f"{self._path}{f.name}", value)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = self.__dict__.get(f.name)
            if isinstance(value, OptionsGroup):
                value._bind(program)

    def __setattr__(self, name: str, value: Any) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        full = f"{self._path}{name}"
        if name not in fields:
            raise AttributeError(f"unknown option {full!r}; valid options here: {sorted(fields)}")
        meta = fields[name].metadata
        if "group" in meta:
            group_cls = meta["group"]
            if isinstance(value, group_cls):
                value._bind(self._program_id)
            elif isinstance(value, Mapping):
                group = group_cls()
                group._bind(self._program_id)
                group.update(**value)
                value = group
            elif value is UNSET or value is None:
                value = group_cls()
                value._bind(self._program_id)
            else:
                raise ValueError(
                    f"option {full} must be a dict or {group_cls.__name__}, got {value!r}"
                )
        elif value is not UNSET and value is not None:
            if meta.get("wire"):
                value = check_option(self._program_id, full, value)
            else:
                value = meta["check"](full, value)
        elif value is None:
            value = UNSET
        object.__setattr__(self, name, value)

    def update(self, **kwargs: Any) -> None:
        """Set several options at once; nested groups accept dicts (merged, not replaced).

        Raises:
            AttributeError: an unknown option name.
            ValueError: a value of the wrong type or range.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        for key, value in kwargs.items():
            field = fields.get(key)
            if field is not None and "group" in field.metadata and isinstance(value, Mapping):
                getattr(self, key).update(**value)
            else:
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """The options the user set, as nested dicts (unset options and empty groups left out)."""
        return self._set_values(_jsonable)

    def _set_values(self, convert: Callable[[Any], Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, OptionsGroup):
                sub = value._set_values(convert)
                if sub:
                    out[f.name] = sub
            elif value is not UNSET:
                out[f.name] = convert(value)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()})"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict") and type(value).__name__ == "NoiseModel":
        return {"__type__": "NoiseModel", "__value__": value.to_dict(serializable=True)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def options_group(path: str) -> Callable[[type], type]:
    """Class decorator: a dataclass options group whose option names start with ``path``."""

    def wrap(cls: type) -> type:
        cls._path = path  # type: ignore[attr-defined]
        return dataclasses.dataclass(repr=False)(cls)

    return wrap
