"""Loading configs: presets and YAML files, ``extends:`` inheritance and dotted-key overrides.

A document is a mapping of config keys. ``kind: system`` marks a multi-GPU system (its ``gpu`` is
a preset name or a mapping that may ``extends:`` one); anything else is a GPU. ``extends: NAME``
(a preset name or a path relative to the file) deep-merges the document over its parent.
Overrides are applied last, by dotted key (``{"sm.count": 160}``); on a system, keys that are not
system keys are routed to its GPU (``sm.count`` means ``gpu.sm.count``).
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from blackwell_sim.config.gpu import GPUConfig
from blackwell_sim.config.schema import build, resolve_field_type, show_value
from blackwell_sim.config.system import SystemConfig
from blackwell_sim.errors import ConfigError

MAX_EXTENDS_DEPTH = 16
_META_KEYS = ("extends", "kind")


def preset_dir() -> Path:
    """The folder holding the YAML presets: ``configs/`` of a source checkout, else the packaged copy."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and any((root / "configs").glob("*.yaml")):
        return root / "configs"
    try:
        path = Path(str(importlib.resources.files("blackwell_sim.presets")))
        if path.is_dir() and any(path.glob("*.yaml")):
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "configs"


def list_presets() -> list[str]:
    """Names of the bundled presets (GPUs and systems)."""
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last silently."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 (PyYAML hook)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: the generic constructor reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, label: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", source=label) from None
    except UnicodeDecodeError:
        raise ConfigError("config file is not UTF-8 text", source=label) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML{where}: {problem}", source=label) from None
    except RecursionError:
        raise ConfigError("YAML document nests too deeply", source=label) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {type(data).__name__} "
                          f"{show_value(data)}", source=label, value=data)
    return data


def _resolve(name_or_path: str | Path, relative_to: Path | None = None) -> tuple[Path, str]:
    """(file, label for messages) of a preset name or a YAML path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if relative_to is not None and not path.is_absolute():
            path = relative_to / path
        if not path.is_file():
            raise ConfigError("config file not found", source=str(path))
        return path, str(path)
    path = preset_dir() / f"{text}.yaml"
    if not path.is_file():
        names = list_presets()
        hint = difflib.get_close_matches(text, names, n=1)
        did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(f"unknown preset{did_you_mean}; presets: {', '.join(names)}",
                          source=f"preset '{text}'", value=text)
    return path, str(path)


def _merge(base: dict, top: dict, prefix: str, origin: dict[str, str], label: str) -> dict:
    out = dict(base)
    for key, value in top.items():
        dotted = f"{prefix}.{key}" if prefix and isinstance(key, str) else str(key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, dotted, origin, label)
        else:
            out[key] = value
            origin[dotted] = label
    return out


def _expand(data: dict, label: str, here: Path | None, origin: dict[str, str], prefix: str,
            chain: tuple[str, ...]) -> dict:
    """Resolve ``extends`` recursively (also inside a system's ``gpu`` mapping)."""
    data = dict(data)
    parent_ref = data.pop("extends", None)
    base: dict = {}
    if parent_ref is not None:
        if not isinstance(parent_ref, str):
            raise ConfigError(f"'extends' must name a preset or file, got {show_value(parent_ref)}",
                              source=label, key=f"{prefix}.extends" if prefix else "extends")
        path, parent_label = _resolve(parent_ref, here)
        if parent_label in chain or len(chain) > MAX_EXTENDS_DEPTH:
            raise ConfigError(f"'extends' cycle: {' -> '.join(chain + (parent_label,))}", source=label,
                              key="extends", value=parent_ref)
        parent = _read_yaml(path, parent_label)
        base = _expand(parent, parent_label, path.parent, origin, prefix, chain + (parent_label,))
    gpu = data.get("gpu")
    if isinstance(gpu, str) and (data.get("kind") or base.get("kind")) == "system":
        gpu_path, gpu_label = _resolve(gpu, here)
        data["gpu"] = _expand(_read_yaml(gpu_path, gpu_label), gpu_label, gpu_path.parent, origin,
                              "gpu", chain + (gpu_label,))
        base.pop("gpu", None)  # a named GPU replaces the parent's GPU wholesale
    elif isinstance(gpu, dict) and "extends" in gpu:
        data["gpu"] = _expand(gpu, label, here, origin, "gpu", chain)
        base.pop("gpu", None)
    return _merge(base, data, prefix, origin, label)


def _apply_override(doc: dict, cls: type, key: str, value: Any, origin: dict[str, str],
                    label: str) -> None:
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        raise ConfigError("override key must be a dotted path such as sm.count", source=label,
                          key=str(key), value=value)
    if cls is SystemConfig and key.split(".")[0] not in {"name", "gpu", "gpu_count", "fabric"}:
        key = f"gpu.{key}"
    try:
        hint = resolve_field_type(cls, key)
    except KeyError as exc:
        bad = exc.args[0]
        known = exc.args[1] if len(exc.args) > 1 else []
        parent = exc.args[2] if len(exc.args) > 2 else ""
        hint_list = difflib.get_close_matches(bad, known, n=1)
        did_you_mean = f" (did you mean '{parent + '.' if parent else ''}{hint_list[0]}'?)" if hint_list else ""
        raise ConfigError(f"unknown key{did_you_mean}", source=label, key=key, value=value) from None
    del hint
    node = doc
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value
    origin[key] = label


def load_config(name_or_path: str | Path | Mapping = "b200",
                overrides: Mapping[str, Any] | None = None) -> GPUConfig | SystemConfig:
    """Load a preset (``"b200"``), a YAML file, or an already-parsed mapping, then apply overrides.

    Returns a :class:`GPUConfig` or, for ``kind: system`` documents, a :class:`SystemConfig`.
    Every problem raises :class:`~blackwell_sim.errors.ConfigError` naming file, key and value.
    """
    origin: dict[str, str] = {}
    if isinstance(name_or_path, Mapping):
        label = "<mapping>"
        raw = copy.deepcopy(dict(name_or_path))
        here = None
    else:
        path, label = _resolve(name_or_path)
        raw = _read_yaml(path, label)
        here = path.parent
    doc = _expand(raw, label, here, origin, "", (label,))
    kind = doc.pop("kind", "gpu")
    if kind not in ("gpu", "system"):
        raise ConfigError(f"kind must be 'gpu' or 'system', got {show_value(kind)}", source=label,
                          key="kind", value=kind)
    cls = SystemConfig if kind == "system" else GPUConfig
    for key, value in (overrides or {}).items():
        _apply_override(doc, cls, key, value, origin, "override")

    def source_of(dotted: str) -> str:
        probe = dotted
        while probe:
            if probe in origin:
                return origin[probe]
            probe = probe.rpartition(".")[0]
        return label

    return build(cls, doc, source_of=source_of)


def parse_set_option(text: str) -> tuple[str, Any]:
    """Parse one CLI ``--set key.path=value``: the value is read as a YAML scalar."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key.path=value, got {show_value(text)}", source="--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return key.strip(), value
