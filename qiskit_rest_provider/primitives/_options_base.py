"""The machinery under the option classes: the *unset* marker, value checkers, group base.

Kept apart from :mod:`.options` (which only declares the option tree) so the tree reads like
the protocol's table (§4.4).
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

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


def _float(minimum: float | None = None, strict: bool = False, auto: bool = False) -> Checker:
    def check(name: str, value: Any) -> Any:
        if auto and value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"option {name} must be a number, got {value!r}")
        value = float(value)
        if value != value:  # NaN
            raise ValueError(f"option {name} must not be NaN")
        if minimum is not None and (value <= minimum if strict else value < minimum):
            raise ValueError(
                f"option {name} must be {'>' if strict else '>='} {minimum}, got {value}"
            )
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


def _num_list(name: str, value: Any) -> list:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"option {name} must be a list of numbers, got {value!r}")
    return list(value)


def _str_or_str_list(name: str, value: Any) -> Any:
    return value if isinstance(value, str) else _str_list(name, value)


def _coupling_map(name: str, value: Any) -> list[list[int]]:
    if hasattr(value, "get_edges"):  # qiskit CouplingMap
        value = value.get_edges()
    try:
        edges = [[int(a), int(b)] for a, b in value]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"option {name} must be a list of [control, target] pairs") from exc
    return edges


def _dict(name: str, value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ValueError(f"option {name} must be a dict, got {value!r}")
    return dict(value)


def _any(name: str, value: Any) -> Any:
    return value


def _opt(check: Checker = _any) -> Any:
    """A leaf option: starts unset, validated by ``check`` when set."""
    return dataclasses.field(default=UNSET, metadata={"check": check})


def _group(cls: type) -> Any:
    return dataclasses.field(default_factory=cls, metadata={"group": cls})


# --------------------------------------------------------------------------- base class
class OptionsGroup:
    """Base of every options group: attribute checks, ``update``, dict conversion."""

    _path: ClassVar[str] = ""

    def __setattr__(self, name: str, value: Any) -> None:
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        full = f"{self._path}{name}"
        if name not in fields:
            raise AttributeError(f"unknown option {full!r}; valid options here: {sorted(fields)}")
        meta = fields[name].metadata
        if "group" in meta:
            group_cls = meta["group"]
            if isinstance(value, group_cls):
                pass
            elif isinstance(value, Mapping):
                group = group_cls()
                group.update(**value)
                value = group
            elif value is UNSET or value is None:
                value = group_cls()
            else:
                raise ValueError(
                    f"option {full} must be a dict or {group_cls.__name__}, got {value!r}"
                )
        elif value is not UNSET and value is not None:
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
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, OptionsGroup):
                sub = value.to_dict()
                if sub:
                    out[f.name] = sub
            elif value is not UNSET:
                out[f.name] = _jsonable(value)
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
