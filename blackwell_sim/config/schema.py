"""Typed, strictly validated construction of frozen config dataclasses from plain data.

A config class declares its fields with :func:`spec`, which records the help text, the unit and
the allowed range in the field's metadata. :func:`build` turns a nested mapping (parsed YAML plus
overrides) into instances, rejecting unknown keys (with a "did you mean"), missing keys, wrong
types and out-of-range values with one :class:`~blackwell_sim.errors.ConfigError` that names the
file, the dotted key and the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from blackwell_sim.errors import ConfigError

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
MAX_VALUE_REPR = 60


def spec(help: str, *, unit: str | None = None, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
         default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with help text, unit and range; no ``default`` means the key is required."""
    metadata = {"help": help, "unit": unit, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if isinstance(default, dict):
        frozen = types.MappingProxyType(dict(default))
        return dataclasses.field(default_factory=lambda: frozen, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def show_value(value: object) -> str:
    """A short, single-line representation of a user value for error messages."""
    text = repr(value).replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE_REPR else text[: MAX_VALUE_REPR - 3] + "..."


SourceOf = Callable[[str], str]


def build(cls: type, data: object, *, path: str = "", source_of: SourceOf = lambda key: "config") -> Any:
    """Construct ``cls`` (a frozen dataclass) from ``data``, validating every key and value.

    ``source_of(dotted_key)`` names the file or origin that supplied a key, for error messages.
    """
    where = path or "<top level>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping of keys, got {type(data).__name__} {show_value(data)}",
                          source=source_of(path), key=path or None, value=data)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"key {show_value(key)} under {where} is not a string",
                              source=source_of(path), key=path or None, value=key)
        if key not in fields:
            dotted = _join(path, key)
            hint = difflib.get_close_matches(key, list(fields), n=1)
            did_you_mean = f" (did you mean '{_join(path, hint[0])}'?)" if hint else ""
            raise ConfigError(f"unknown key{did_you_mean}; known keys here: {', '.join(sorted(fields))}",
                              source=source_of(dotted), key=dotted, value=data[key])
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        dotted = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("missing required key", source=source_of(dotted), key=dotted)
            continue
        value = _convert(hints[name], data[name], dotted, source_of)
        _check_range(f.metadata, value, dotted, source_of)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        for key, value, message in check():
            dotted = _join(path, key)
            raise ConfigError(message, source=source_of(dotted), key=dotted, value=value)
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(hint: Any, value: object, key: str, source_of: SourceOf) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if value is None and len(non_none) < len(args):
            return None
        return _convert(non_none[0], value, key, source_of)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, path=key, source_of=source_of)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            _bad_type(key, value, "a mapping", source_of)
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                _bad_type(key, k, "string keys", source_of)
            out[k] = _convert(args[1], v, f"{key}.{k}", source_of)
        return types.MappingProxyType(out)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            _bad_type(key, value, "a list", source_of)
        return tuple(_convert(args[0], v, f"{key}[{i}]", source_of) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            _bad_type(key, value, "true or false", source_of)
        return value
    if hint is int:
        number = _as_number(value, key, "an integer", source_of)
        if isinstance(number, float):
            if not number.is_integer():
                _bad_type(key, value, "an integer", source_of)
            number = int(number)
        return number
    if hint is float:
        return float(_as_number(value, key, "a number", source_of))
    if hint is str:
        if not isinstance(value, str):
            _bad_type(key, value, "a string", source_of)
        return value
    raise TypeError(f"unsupported config field type {hint!r} for {key}")  # a bug in a config class


def _as_number(value: object, key: str, expected: str, source_of: SourceOf) -> int | float:
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        # YAML 1.1 reads 1e9 (no dot) as a string; accept plain numeric literals.
        text = value.strip()
        value = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _bad_type(key, value, expected, source_of)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"value {show_value(value)} is not finite", source=source_of(key), key=key,
                          value=value)
    return value


def _bad_type(key: str, value: object, expected: str, source_of: SourceOf) -> typing.NoReturn:
    raise ConfigError(f"expected {expected}, got {type(value).__name__} {show_value(value)}",
                      source=source_of(key), key=key, value=value)


def _check_range(meta: Mapping[str, Any], value: Any, key: str, source_of: SourceOf) -> None:
    if value is None:
        return
    values = value.values() if isinstance(value, Mapping) else value if isinstance(value, tuple) else [value]
    for v in values:
        problem = None
        if meta.get("choices") is not None and v not in meta["choices"]:
            problem = f"must be one of {', '.join(meta['choices'])}"
        elif meta.get("ge") is not None and v < meta["ge"]:
            problem = f"must be >= {meta['ge']:g}"
        elif meta.get("gt") is not None and v <= meta["gt"]:
            problem = f"must be > {meta['gt']:g}"
        elif meta.get("le") is not None and v > meta["le"]:
            problem = f"must be <= {meta['le']:g}"
        elif meta.get("lt") is not None and v >= meta["lt"]:
            problem = f"must be < {meta['lt']:g}"
        if problem:
            raise ConfigError(f"value {show_value(v)} {problem}", source=source_of(key), key=key, value=v)


def field_help(cls: type) -> dict[str, str]:
    """Dotted key -> help text (with unit) for every leaf field of a config class."""
    out: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        inner = hints[f.name]
        if typing.get_origin(inner) in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(inner) if a is not type(None)][0]
        if dataclasses.is_dataclass(inner):
            out.update({f"{f.name}.{k}": v for k, v in field_help(inner).items()})
        else:
            unit = f.metadata.get("unit")
            out[f.name] = f.metadata.get("help", "") + (f" [{unit}]" if unit else "")
    return out


def to_plain(obj: Any) -> Any:
    """A config instance as plain dicts/lists (JSON- and YAML-serialisable)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_plain(v) for v in obj]
    return obj


def resolve_field_type(cls: type, dotted: str) -> Any:
    """The type hint at a dotted key path, or raise KeyError naming the first unknown part."""
    hint: Any = cls
    for i, part in enumerate(dotted.split(".")):
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            hint = [a for a in typing.get_args(hint) if a is not type(None)][0]
        if typing.get_origin(hint) in (dict, Mapping):
            hint = typing.get_args(hint)[1]
            continue
        if not dataclasses.is_dataclass(hint):
            raise KeyError(".".join(dotted.split(".")[: i + 1]))
        names = {f.name for f in dataclasses.fields(hint)}
        if part not in names:
            raise KeyError(part, sorted(names), ".".join(dotted.split(".")[:i]))
        hint = typing.get_type_hints(hint)[part]
    return hint
