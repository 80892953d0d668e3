"""Sweep specs: what to vary, how to combine it, and the checked list of points.

A spec is a YAML file (or mapping) with these keys, or the same from the CLI flags::

    name: tmem-vs-sms                  # optional
    description: ...                   # optional
    config: b200                       # preset / YAML of every point (default: the trace's, else b200)
    set: {hbm.bandwidth_gbps: 8000}    # base overrides of every point (dotted config keys)
    trace: gemm:m=8192,n=8192,k=8192,dtype=nvfp4     # see blackwell_sim.sweep.workload
    vary:                              # key -> values (a list, "v1,v2,..." or {start, stop, step})
      tmem.size_bytes: [65536, 131072, 262144]
      sm.count: {start: 100, stop: 148, step: 16}
    combine: grid                      # grid (every combination, first key slowest) or zip
    plot: achieved_tflops              # metric to plot (dotted path into a row's metrics)
    fidelity: fast                     # kernel model fidelity
    host_dispatch: eager               # eager | none (see blackwell_sim.simulate)

A varied key is ``config`` / ``system`` (the platform preset), a parameter of the workload
(:meth:`Workload.parameters`), or else a dotted config key as given to ``--set``. :func:`plan` checks every
point before any runs: each distinct workload is built and each distinct config loaded, so a bad
key, a value of the wrong type or an impossible combination is one error line up front.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.sweep.workload import Workload, parse_workload

SPEC_KEYS = ("name", "description", "config", "set", "trace", "vary", "combine", "plot", "fidelity",
             "host_dispatch")
PLATFORM_KEYS = ("config", "system")
COMBINE = ("grid", "zip")
MAX_POINTS = 100_000
#: up to this many distinct configs, plan() also loads every combination of config values
FULL_CHECK_POINTS = 256
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*(?::\s*({_NUMBER})\s*)?$")


@dataclass(frozen=True)
class SweepSpec:
    workload: Workload
    vary: tuple[tuple[str, tuple[Any, ...]], ...]
    combine: str = "grid"
    config: Any = None
    base_overrides: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None
    plot: str | None = None
    fidelity: str = "fast"
    host_dispatch: str = "eager"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.vary)

    def to_document(self) -> dict:
        """The spec as a JSON / YAML-safe mapping (written next to the results)."""
        doc = {"name": self.name, "description": self.description, "config": self.config,
               "set": dict(self.base_overrides), "trace": self.workload.describe(),
               "vary": {k: list(v) for k, v in self.vary}, "combine": self.combine, "plot": self.plot,
               "fidelity": self.fidelity, "host_dispatch": self.host_dispatch}
        return {k: v for k, v in doc.items() if v not in (None, {})}


# -- values ---------------------------------------------------------------------------------------

def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if re.fullmatch(r"[-+]?\d+", text.strip()) else value


def value_range(start, stop, step, label: str) -> list:
    """``start, start + step, ...`` up to and including ``stop``; ints stay ints."""
    for name, v in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BlackwellSimError(f"{label}: range {name} must be a number, got {v!r}")
    if step == 0:
        raise BlackwellSimError(f"{label}: range step must not be 0")
    count = int((stop - start) / step + 1e-9) + 1 if (stop - start) * step >= 0 else 0
    if count <= 0:
        raise BlackwellSimError(f"{label}: empty range (start {start}, stop {stop}, step {step})")
    if count > MAX_POINTS:
        raise BlackwellSimError(f"{label}: range of {count} values (limit {MAX_POINTS})")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [start + i * step for i in range(count)]
    return [float(f"{start + i * step:.12g}") for i in range(count)]


def parse_values(raw: Any, label: str) -> tuple:
    """The values of one varied key: a list, ``"v1,v2,..."``, ``"start:stop[:step]"`` (inclusive)
    or ``{start, stop, step}``. Empty or repeated values are errors."""
    if isinstance(raw, str):
        match = _RANGE.match(raw)
        if match:
            start, stop, step = match.groups()
            values = value_range(_number(start), _number(stop), _number(step) if step else 1, label)
        else:
            values = []
            for item in (part.strip() for part in raw.split(",")):
                if not item:
                    continue
                try:
                    values.append(yaml.safe_load(item))
                except yaml.YAMLError:
                    values.append(item)
    elif isinstance(raw, Mapping):
        unknown = set(raw) - {"start", "stop", "step"}
        if unknown or not {"start", "stop"} <= set(raw):
            raise BlackwellSimError(f"{label}: a range needs start and stop (and step), got keys "
                                    f"{sorted(map(str, raw))}")
        values = value_range(raw["start"], raw["stop"], raw.get("step", 1), label)
    elif isinstance(raw, Sequence):
        values = list(raw)
    else:
        values = [raw]
    if not values:
        raise BlackwellSimError(f"{label}: no values (empty list)")
    for v in values:
        if isinstance(v, Mapping) or (isinstance(v, float) and math.isnan(v)):
            raise BlackwellSimError(f"{label}: value {v!r} is not a scalar or a list")
    seen = [json.dumps(v, sort_keys=True) for v in values]
    for i, text in enumerate(seen):
        if text in seen[:i]:
            raise BlackwellSimError(f"{label}: value {values[i]!r} is given twice")
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


# -- building a spec ------------------------------------------------------------------------------

def load_spec(source: str | Path | Mapping | None = None, *, trace: Any = None, config: Any = None,
              overrides: Mapping | None = None, vary: Sequence[str] = (), combine: str | None = None,
              plot: str | None = None, fidelity: str | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from a spec file / mapping, with the CLI's flags on top (``vary``:
    ``"key=values"`` strings added after the file's keys; a key given twice is an error)."""
    doc: dict = {}
    label, base_dir = "sweep spec", None
    if isinstance(source, Mapping):
        doc = dict(source)
    elif source is not None:
        path = Path(source)
        label, base_dir = str(path), path.parent
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BlackwellSimError(f"{path}: cannot read sweep spec: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise BlackwellSimError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, Mapping):
            raise BlackwellSimError(f"{path}: a sweep spec is a mapping, got {type(doc).__name__}")
    for key in doc:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(SPEC_KEYS)}"
            raise BlackwellSimError(f"{label}: unknown key '{key}'{hint}")
    trace_value = trace if trace is not None else doc.get("trace")
    if trace_value is None:
        raise BlackwellSimError(f"{label}: no workload: give --trace (a trace file, gen:MODEL:MODE or "
                                f"KIND:key=value,...) or 'trace:' in the spec")
    workload = parse_workload(trace_value, "--trace" if trace is not None else f"{label}: trace", base_dir)
    base = doc.get("set") or {}
    if not isinstance(base, Mapping):
        raise BlackwellSimError(f"{label}: set: expected a mapping of dotted config keys, got {base!r}")
    base = {**base, **(overrides or {})}
    raw_vary = doc.get("vary") or {}
    if not isinstance(raw_vary, Mapping):
        raise BlackwellSimError(f"{label}: vary: expected a mapping key -> values, got {raw_vary!r}")
    pairs = [(str(k), parse_values(v, f"{label}: vary: {k}")) for k, v in raw_vary.items()]
    for text in vary:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise BlackwellSimError(f"--vary: expected key=v1,v2,... or key=start:stop:step, got {text!r}")
        pairs.append((key.strip(), parse_values(raw, f"--vary {key.strip()}")))
    if not pairs:
        raise BlackwellSimError(f"{label}: nothing to vary: give --vary key=v1,v2,... or 'vary:' in the spec")
    keys = [k for k, _ in pairs]
    for i, key in enumerate(keys):
        canon = workload.canonical(key)
        if any(workload.canonical(other) == canon for other in keys[:i]):
            raise BlackwellSimError(f"vary: key '{key}' is varied twice")
    combine = combine or doc.get("combine", "grid")
    if combine not in COMBINE:
        raise BlackwellSimError(f"{label}: combine: expected grid or zip, got {combine!r}")
    fidelity = fidelity or doc.get("fidelity", "fast")
    if fidelity not in ("fast", "detailed"):
        raise BlackwellSimError(f"{label}: fidelity: expected fast or detailed, got {fidelity!r}")
    host = doc.get("host_dispatch", "eager")
    if host not in ("eager", "none"):
        raise BlackwellSimError(f"{label}: host_dispatch: expected eager or none, got {host!r}")
    cfg = config if config is not None else doc.get("config")
    if isinstance(cfg, str) and base_dir is not None and cfg.endswith((".yaml", ".yml")) \
            and (base_dir / cfg).is_file():
        cfg = str((base_dir / cfg).resolve())
    return SweepSpec(workload=workload, vary=tuple(pairs), combine=combine, config=cfg,
                     base_overrides=dict(base), name=doc.get("name"), description=doc.get("description"),
                     plot=plot or doc.get("plot"), fidelity=fidelity, host_dispatch=host)


def combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    """The points' ``params`` (varied key -> value) in order: grid = itertools.product with the first
    key slowest; zip = the i-th value of every key (all lists equally long)."""
    keys = spec.keys
    lists = [values for _, values in spec.vary]
    if spec.combine == "zip":
        lengths = {k: len(v) for k, v in spec.vary}
        if len(set(lengths.values())) > 1:
            raise BlackwellSimError("--zip: every varied key needs as many values; got "
                                    + ", ".join(f"{k} {n}" for k, n in lengths.items()))
        rows = zip(*lists)
    else:
        total = 1
        for values in lists:
            total *= len(values)
        if total > MAX_POINTS:
            raise BlackwellSimError(f"vary: the grid has {total} points (limit {MAX_POINTS})")
        rows = itertools.product(*lists)
    return [{k: (list(v) if isinstance(v, tuple) else v) for k, v in zip(keys, row)} for row in rows]


# -- planning ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One checked point: what a worker needs to run it, and its identity."""

    index: int
    params: dict
    trace: Any            # a trace file path or a trace document (picklable, unlike a Trace)
    platform: Any         # the config argument of blackwell_sim.simulate (None: the trace's)
    overrides: dict       # dotted config keys
    hash: str
    tokens_per_step: int | None
    fidelity: str
    host_dispatch: str


@lru_cache(maxsize=1)
def code_version() -> str:
    """``__version__`` plus a digest of the package's Python sources (a code change invalidates
    finished points on ``--resume``)."""
    import blackwell_sim

    root = Path(blackwell_sim.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{blackwell_sim.__version__}+{digest.hexdigest()[:12]}"


def _digest(obj) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def point_hash(config, trace, fidelity: str, host_dispatch: str) -> str:
    """sha256 of the config's contents, the trace document, the simulation options and the code."""
    from blackwell_sim.config.schema import to_plain

    return _combine(_digest(to_plain(config)), _digest(trace.to_document()), fidelity, host_dispatch)


def _combine(config_digest: str, trace_digest: str, fidelity: str, host_dispatch: str) -> str:
    return _digest({"config": config_digest, "trace": trace_digest, "fidelity": fidelity,
                    "host_dispatch": host_dispatch, "code": code_version()})


def _split(spec: SweepSpec, params: Mapping[str, Any]):
    """(platform, workload params, config overrides) of one point's ``params``."""
    platform, work, over = spec.config, {}, dict(spec.base_overrides)
    workload_keys = set(spec.workload.parameters())
    for key, value in params.items():
        if key in PLATFORM_KEYS:
            platform = value
        elif key in workload_keys:
            work[key] = value
        else:
            over[key] = value
    return platform, work, over


def plan(spec: SweepSpec) -> list[Point]:
    """Every point of ``spec``, checked before any runs. Each distinct workload is built; each
    platform is loaded; then, for up to :data:`FULL_CHECK_POINTS` distinct configs, every config
    is loaded whole (so cross-field checks such as TMEM <= lanes x columns x 4 B run too), else
    only the first point with each distinct value of a varied config key is (a combination that
    is impossible only later is then a failed point). Raises one
    :class:`BlackwellSimError` line naming the varied key and value at the first problem.

    A point's hash covers the platform's loaded contents plus its overrides (the config it runs
    is exactly that), the trace document, the simulation options and :func:`code_version`."""
    from blackwell_sim.config.schema import to_plain
    from blackwell_sim.simulate import DEFAULT_CONFIG, resolve_config

    combos = combinations(spec)
    traces: dict[str, tuple] = {}
    checked: dict[str, str] = {}        # json key -> digest of a loaded config
    full = None
    points = []

    def check(key_parts, trace, platform, over, what):
        ckey = json.dumps(key_parts, sort_keys=True, default=str)
        if ckey not in checked:
            try:
                checked[ckey] = _digest(to_plain(resolve_config(trace, platform, over)))
            except BlackwellSimError as exc:
                raise BlackwellSimError(f"{_which(params, what)}: {exc}{_hint(spec, exc)}") from None
        return checked[ckey]

    for index, params in enumerate(combos):
        platform, work, over = _split(spec, params)
        if spec.workload.kind == "generate" and "system" in params:
            work["system"] = params["system"]  # lets generate lay out more ranks than its default platform
        wkey = json.dumps(work, sort_keys=True, default=str)
        if wkey not in traces:
            try:
                trace = spec.workload.build(work)
            except BlackwellSimError as exc:
                raise BlackwellSimError(f"{_which(params, work)}: {exc}") from None
            document = trace.to_document()
            source = spec.workload.args["path"] if spec.workload.kind == "file" else document
            traces[wkey] = (trace, _digest(document), source)
        trace, trace_digest, trace_source = traces[wkey]
        if platform is None and trace.system is None and trace.config is None:
            platform = DEFAULT_CONFIG
        where = [platform, trace.system, trace.config]
        platform_keys = {k: params[k] for k in params if k in PLATFORM_KEYS}
        base = check(["base", where], trace, platform, {}, platform_keys)
        if full is None:
            full = len({json.dumps([_split(spec, c)[0], _split(spec, c)[2]], sort_keys=True, default=str)
                        for c in combos}) <= FULL_CHECK_POINTS
        if full:
            check(["full", where, over], trace, platform, over,
                  {k: params[k] for k in params if k not in work})
        else:  # each distinct value once, in the first point that has it (a real combination)
            for key, value in over.items():
                ckey = json.dumps(["value", where, key, value], sort_keys=True, default=str)
                if key in params and ckey not in checked:
                    checked[ckey] = check(["full", where, over], trace, platform, over,
                                          {k: params[k] for k in params if k not in work})
        config_digest = _digest([base, sorted(over.items(), key=lambda kv: kv[0])])
        points.append(Point(index, params, trace_source, platform, over,
                            _combine(config_digest, trace_digest, spec.fidelity, spec.host_dispatch),
                            spec.workload.tokens_per_step(work), spec.fidelity, spec.host_dispatch))
    return points


def _which(params: Mapping, subset: Mapping) -> str:
    shown = {k: params[k] for k in params if k in subset} or params
    return "vary " + ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _hint(spec: SweepSpec, exc: Exception) -> str:
    keys = spec.workload.parameters()
    if "unknown key" in str(exc) and keys:
        return f" (workload keys of this trace: {', '.join(keys)})"
    if "unknown key" in str(exc):
        return " (a trace file has no workload keys; use gen:... or KIND:... to vary workload parameters)"
    return ""
