"""Import a PyTorch profiler trace (Chrome-trace JSON from ``torch.profiler`` with
``record_shapes=True``) as a blackwell-sim trace document.

What becomes an op (CPU events of category ``cpu_op``, the outermost one on its thread when they
nest, e.g. ``aten::linear`` -> ``aten::matmul`` -> ``aten::mm`` gives one GEMM):

- GEMMs: ``aten::mm``, ``addmm``, ``bmm``, ``baddbmm``, ``matmul``, ``linear``, ``_scaled_mm``,
  ``_grouped_mm`` (a 2-D A split over B's groups by offsets the profile does not record: rows are
  taken as evenly split, m = ceil(rows / groups)).
  Shapes come from the event's ``Input Dims``: ``linear(x[..., in], W[out, in])`` is m = prod of
  x's leading dims, n = out, k = in; ``matmul`` follows numpy broadcasting (a 2-D right operand
  folds the left operand's batch dims into m; two >= 3-D operands give a batched GEMM).
- Attention: ``aten::scaled_dot_product_attention`` and ``_scaled_dot_product_{flash,cudnn,
  efficient}_attention`` (and their ``_backward``), and the flash-attn package's
  ``flash_attn::_flash_attn_{forward,backward}``: q is [batch, heads, seq_q, head_dim] (flash-attn:
  [batch, seq_q, heads, head_dim]), k gives kv_heads and seq_kv; ``is_causal`` is read from the
  event's ``Concrete Inputs`` when present (else false).
- NCCL collectives: ``record_param_comms`` events (emitted by c10d for every collective) with
  ``Collective name``, ``In msg nelems`` / ``Out msg nelems``, ``dtype`` and ``Group size``; bytes
  follow the nccl-tests convention (all_gather: the gathered output; reduce_scatter and the others:
  the input).

With ``all_kernels`` every other outermost ``aten::`` op that ran GPU kernels (norms, activations,
losses, optimizer, copies) becomes an ``elementwise`` op whose bytes are estimated from its input
shapes (see :func:`~blackwell_sim.trace.torch_profile_ops.elementwise_fields`); ops inside
``Optimizer.step`` get ``phase: optim``.

Measured time: each op's GPU kernels (category ``kernel``) are found through the launch events
(``cuda_runtime`` / ``cuda_driver``) that share their ``correlation`` id and lie inside the op's
CPU interval on the op's thread (the ``ac2g`` flow events of the Chrome trace encode the same link);
when a trace has no launch events, through the kernel's ``External id``. Their durations are summed
into ``measured_s`` (kernels only; memsets and copies are not counted). Ops issued from the autograd
engine's thread inside ``autograd::engine::evaluate_function`` get ``phase: bwd``, others ``fwd``.

One profiler file is one process: its ops go on ``rank`` (default: ``distributedInfo.rank`` of the
file, else 0), compute ops in CPU issue order on stream ``compute``; a collective runs on stream ``comm`` after the compute op issued before
it, and the compute op issued after it waits for it (synchronous c10d semantics). Collectives of a
one-rank process group are dropped (nothing moves between GPUs). The document's ``config`` is the
GPU preset matching ``deviceProperties`` (H100 -> h100-sxm, ...), or the smallest bundled system of
that GPU holding every rank (``system``) when the trace spans several ranks; an explicit ``config``
wins.
Several files (one per rank of a distributed run) import into one multi-GPU trace: op names get an
``r<rank>.`` prefix and the k-th collective of a process group on every file becomes one collective
op (its measured time the least of the ranks', the others include waiting for the slowest rank).
Malformed input raises :class:`~blackwell_sim.errors.BlackwellSimError` naming the file and event.
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.torch_profile_merge import merge_ranks
from blackwell_sim.trace.torch_profile_ops import (
    ATTENTION_OPS,
    COMMS_EVENT,
    DEVICE_PRESETS,
    GEMM_OPS,
    Event,
    attention_fields,
    collective_fields,
    elementwise_fields,
    gemm_fields,
)

_BACKWARD_SCOPE = "autograd::engine::evaluate_function"
_OPTIM_SCOPE = "Optimizer.step"


def _read(path: Path) -> Any:
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BlackwellSimError(f"{source}: no such profiler trace file") from None
    except OSError as exc:
        raise BlackwellSimError(f"{source}: cannot read: {exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise BlackwellSimError(f"{source}: not a valid gzip file: {exc}") from None
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BlackwellSimError(f"{source}: not a Chrome-trace JSON file: {exc}") from None


def _system_for(gpu: str, ranks: int, names: str) -> str:
    """The bundled system preset of ``gpu`` GPUs with the fewest GPUs that still holds ``ranks``
    (a 2-rank H200 profile: the 2-GPU NVLink machine; 8 ranks: the HGX board)."""
    from blackwell_sim.config import SystemConfig, list_presets, load_config

    want = load_config(gpu).name
    fits = []
    for preset in list_presets():
        cfg = load_config(preset)
        if isinstance(cfg, SystemConfig) and cfg.gpu.name == want and cfg.gpu_count >= ranks:
            fits.append((cfg.gpu_count, preset))
    if not fits:
        raise BlackwellSimError(f"{names}: {ranks} ranks of {gpu} need a system preset; none bundled holds them, "
                                f"pass one (--config)")
    return min(fits)[1]


def _device_preset(doc: Mapping) -> str | None:
    for prop in doc.get("deviceProperties") or []:
        name = str(prop.get("name", "")) if isinstance(prop, Mapping) else ""
        for fragment, preset in DEVICE_PRESETS:
            if fragment in name:
                return preset
    return None


class _Scan:
    """One validated pass over ``traceEvents``: recognised CPU ops (sorted by start, longest
    first), autograd backward scopes per thread, kernel durations (us) by correlation id and by
    External id, launch events per thread, and the thread and start of each CPU op's External id."""

    KERNEL_LINK_CATS = ("kernel", "cuda_runtime", "cuda_driver")

    def __init__(self, source: str, raw_events: list, others: bool = False):
        wanted = set(GEMM_OPS) | set(ATTENTION_OPS) | {COMMS_EVENT}
        self.cpu: list[Event] = []
        self.others: list[Event] = []  # other aten ops (with ``others``), candidates for elementwise ops
        self.scopes: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
        self.optim: dict[tuple, list[tuple[float, float]]] = defaultdict(list)  # Optimizer.step scopes
        self.kernels_by_corr: dict[Any, float] = defaultdict(float)
        self.kernels_by_ext: dict[Any, float] = defaultdict(float)
        self.launches: dict[tuple, list[tuple[float, Any]]] = defaultdict(list)
        self.ext_to_event: dict[Any, tuple[tuple, float]] = {}
        for i, raw in enumerate(raw_events):
            if not isinstance(raw, Mapping):
                continue
            cat, name = raw.get("cat"), raw.get("name", "")
            if cat == "user_annotation" and isinstance(name, str) and name.startswith(_OPTIM_SCOPE) \
                    and _number(raw.get("ts")) and _number(raw.get("dur", 0)) and _scalar(raw.get("tid")) \
                    and _scalar(raw.get("pid")):
                self.optim[(raw.get("pid"), raw.get("tid"))].append((float(raw["ts"]),
                                                                    float(raw["ts"]) + float(raw.get("dur", 0))))
                continue
            if cat not in ("cpu_op",) + self.KERNEL_LINK_CATS:
                continue
            recognised = cat == "cpu_op" and isinstance(name, str) and (
                name in wanted or name.startswith(_BACKWARD_SCOPE))
            args = raw.get("args", {})
            if not isinstance(args, Mapping) or not all(_scalar(raw.get(k)) for k in ("pid", "tid")) or not all(
                    _scalar(args.get(k)) for k in ("correlation", "External id")):
                raise BlackwellSimError(f"{source}: event {i} '{str(name)[:60]}': 'args' must be a mapping and "
                                        f"'pid'/'tid'/'correlation'/'External id' plain values")
            if not _number(raw.get("ts")) or not _number(raw.get("dur", 0)) or raw.get("dur", 0) < 0:
                if recognised or cat != "cpu_op":
                    raise BlackwellSimError(f"{source}: event {i} '{str(name)[:60]}': 'ts'/'dur' must be numbers "
                                            f"(dur >= 0), got {raw.get('ts')!r}/{raw.get('dur', 0)!r}")
                continue
            thread, ts = (raw.get("pid"), raw.get("tid")), float(raw["ts"])
            if cat == "kernel":
                if "correlation" in args:
                    self.kernels_by_corr[args["correlation"]] += float(raw.get("dur", 0))
                if "External id" in args:
                    self.kernels_by_ext[args["External id"]] += float(raw.get("dur", 0))
            elif cat != "cpu_op":
                if "correlation" in args:
                    self.launches[thread].append((ts, args["correlation"]))
            else:
                if "External id" in args:
                    self.ext_to_event[args["External id"]] = (thread, ts)
                if recognised and name in wanted:
                    self.cpu.append(Event(i, raw))
                elif recognised:
                    self.scopes[thread].append((ts, ts + float(raw.get("dur", 0))))
                elif others and isinstance(name, str) and name.startswith("aten::"):
                    self.others.append(Event(i, raw))
        self.cpu.sort(key=lambda e: (e.ts, -e.end, e.index))
        self.others.sort(key=lambda e: (e.ts, -e.end, e.index))
        for table in (self.scopes, self.optim):
            for lst in table.values():
                lst.sort()

    def phase(self, ev: Event) -> str:
        """``bwd`` inside an autograd engine scope, ``optim`` inside ``Optimizer.step``, else ``fwd``."""
        for table, phase in ((self.scopes, "bwd"), (self.optim, "optim")):
            scopes = table.get(ev.thread, [])
            j = bisect.bisect_right(scopes, (ev.ts, math.inf)) - 1
            if any(s <= ev.ts <= e for s, e in scopes[max(0, j - 8):j + 1]):
                return phase
        return "fwd"

    def measure(self, intervals: dict[tuple, list[tuple[float, float, int]]], n: int) -> list[float | None]:
        """Summed kernel time (s) of each op (None when no kernel is linked to it)."""
        measured: list[float | None] = [None] * n

        def credit(thread, ts, dur_us):
            spans = intervals.get(thread)
            if not spans or dur_us is None:
                return
            j = bisect.bisect_right(spans, (ts, math.inf, math.inf)) - 1
            if j >= 0 and spans[j][0] <= ts <= spans[j][1]:
                i = spans[j][2]
                measured[i] = (measured[i] or 0.0) + dur_us * 1e-6

        if self.launches:
            for thread, lst in self.launches.items():
                for ts, corr in lst:
                    credit(thread, ts, self.kernels_by_corr.get(corr))
        else:
            for ext, dur_us in self.kernels_by_ext.items():
                if ext in self.ext_to_event:
                    credit(*self.ext_to_event[ext], dur_us)
        return measured


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _select(source: str, scan: _Scan) -> tuple[list[tuple[Event, dict, str]], int, int]:
    """The events that become ops, in issue order: the outermost recognised op of each call tree,
    then (when the scan collected them) the outermost other ``aten::`` ops that neither sit inside
    nor contain a recognised one. Returns them with their trace fields and name stem, and the
    counts of skipped non-collective comms events and of dropped one-rank collectives."""
    chosen: list[tuple[Event, dict, str]] = []
    outer_end: dict[tuple, float] = {}
    spans: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    skipped = single = 0
    for ev in scan.cpu:
        if ev.ts < outer_end.get(ev.thread, -math.inf):
            continue  # nested inside a recognised op (linear -> matmul -> mm)
        if ev.name == COMMS_EVENT:
            fields = collective_fields(source, ev)
            if fields is None:
                skipped += 1
                continue
            if len(fields["group"]) == 1:  # a one-rank collective moves nothing between GPUs
                single += 1
                continue
            kind = fields["op"]
        elif ev.name in ATTENTION_OPS:
            fields = {"op": "attention", **attention_fields(source, ev)}
            kind = "sdpa_bwd" if fields["backward"] else "sdpa"
        else:
            fields = gemm_fields(source, ev)
            kind = ev.name.split("::")[-1].lstrip("_")
        outer_end[ev.thread] = ev.end
        spans[ev.thread].append((ev.ts, ev.end))
        chosen.append((ev, fields, kind))
    other_end: dict[tuple, float] = {}
    for ev in scan.others:
        if ev.ts < other_end.get(ev.thread, -math.inf):
            continue
        rec = spans.get(ev.thread, [])
        j = bisect.bisect_right(rec, (ev.ts, math.inf)) - 1
        if (j >= 0 and rec[j][1] >= ev.ts) or (j + 1 < len(rec) and rec[j + 1][0] <= ev.end):
            continue  # inside a recognised op, or holding one (its other children are candidates)
        other_end[ev.thread] = ev.end
        chosen.append((ev, elementwise_fields(ev), ev.name.split("::")[-1].strip("_")))
    chosen.sort(key=lambda c: (c[0].ts, c[0].index))
    return chosen, skipped, single


def _import_one(path: Path, rank: int | None, all_kernels: bool = False) -> dict[str, Any]:
    """One file's ops in issue order (names unprefixed; collectives keep their group) and facts."""
    source = str(path)
    doc = _read(path)
    raw_events = doc.get("traceEvents") if isinstance(doc, Mapping) else doc if isinstance(doc, list) else None
    if not isinstance(raw_events, list):
        raise BlackwellSimError(f"{source}: no 'traceEvents' list (not a torch.profiler Chrome trace)")
    if rank is None:
        info = doc.get("distributedInfo") if isinstance(doc, Mapping) else None
        rank = info.get("rank", 0) if isinstance(info, Mapping) else 0
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise BlackwellSimError(f"{source}: distributedInfo.rank: expected an integer >= 0, got {rank!r}")
    scan = _Scan(source, raw_events, others=all_kernels)
    chosen, skipped, single = _select(source, scan)
    intervals: dict[tuple, list[tuple[float, float, int]]] = defaultdict(list)
    for i, (ev, _, _) in enumerate(chosen):
        intervals[ev.thread].append((ev.ts, ev.end, i))
    for spans in intervals.values():
        spans.sort()
    measured = scan.measure(intervals, len(chosen))
    ops: list[dict] = []
    counters: dict[str, int] = defaultdict(int)
    last_compute: str | None = None
    pending: list[str] = []
    no_bytes = [0, 0.0]  # other ops without tensor inputs (zeros, full): count, kernel seconds
    for (ev, fields, kind), seconds in zip(chosen, measured, strict=True):
        if fields["op"] == "elementwise" and seconds is None:
            continue  # an op that ran no GPU kernel (views, host-side work)
        if fields["op"] == "elementwise" and fields["bytes_read"] + fields["bytes_written"] == 0:
            no_bytes[0] += 1
            no_bytes[1] += seconds
            continue
        name = f"{kind}_{counters[kind]}"
        counters[kind] += 1
        phase = scan.phase(ev)
        op = {**fields, "name": name}
        if "group" not in fields:
            op.update(rank=rank, phase=phase, stream="compute")
            if pending:
                op["deps"] = pending
                pending = []
            last_compute = name
        else:
            if phase != "fwd":
                op["phase"] = phase
            op["stream"] = "comm"
            if last_compute:
                op["deps"] = [last_compute]
            pending = [name]
        if seconds is not None:
            op["measured_s"] = round(seconds, 12)
        ops.append(op)
    return {"source": source, "rank": rank, "ops": ops, "skipped": skipped, "single": single,
            "no_bytes": no_bytes, "preset": _device_preset(doc)}


def import_torch_profile(paths: str | os.PathLike | Sequence[str | os.PathLike], rank: int | None = None,
                         config: str | None = None, all_kernels: bool = False) -> dict:
    """A trace document (``{name, description, config|system, ops}``) from torch.profiler Chrome
    traces: one file (one process) or a list of files (one per rank of a distributed run).

    ``rank`` places a single file's ops (default: the file's ``distributedInfo.rank``, else 0);
    with several files each file's own rank is used (else its position in the list). ``config``
    (a GPU or system preset) defaults to the preset matching the trace's GPU name (H100 ->
    h100-sxm, ...), or, when the trace spans several ranks, the smallest bundled system of that GPU
    that holds them.
    ``all_kernels``: also import every other outermost ``aten::`` op that ran GPU kernels as an
    ``elementwise`` op (bytes estimated from its input shapes, see
    :func:`~blackwell_sim.trace.torch_profile_ops.elementwise_fields`), so the whole step's kernel
    time is measured and simulated.
    Raises :class:`~blackwell_sim.errors.BlackwellSimError` for unreadable or malformed input.
    """
    many = isinstance(paths, Sequence) and not isinstance(paths, (str, bytes))
    path_list = [Path(p) for p in (paths if many else [paths])]
    if not path_list:
        raise BlackwellSimError("import-torch-profile: no profiler trace files given")
    if many and len(path_list) > 1:
        files = [_import_one(p, None, all_kernels) for p in path_list]
        if len({f["rank"] for f in files}) < len(files):  # no distributed info: rank = position
            for i, f in enumerate(files):
                f["rank"] = i
        ops = merge_ranks(files)
    else:
        files = [_import_one(path_list[0], rank, all_kernels)]
        ops = files[0]["ops"]
    if not ops:
        raise BlackwellSimError(f"{', '.join(f['source'] for f in files)}: no GEMM, attention or NCCL collective "
                                f"ops found (was the profile recorded with record_shapes=True?)")
    widest = max([len(op["group"]) for op in ops if "group" in op] + [1])
    top = max([op["rank"] for op in ops if "rank" in op] + [max(op.get("group", [0])) for op in ops])
    n_gemm = sum(op["op"] == "gemm" for op in ops)
    n_attn = sum(op["op"] == "attention" for op in ops)
    n_other = sum(op["op"] == "elementwise" for op in ops)
    single, skipped = sum(f["single"] for f in files), sum(f["skipped"] for f in files)
    no_bytes = [sum(f["no_bytes"][0] for f in files), sum(f["no_bytes"][1] for f in files)]
    names = ", ".join(p.name for p in path_list)
    out: dict[str, Any] = {
        "name": path_list[0].name.split(".")[0],
        "description": (f"imported from {names} (torch.profiler): {n_gemm} GEMMs, {n_attn} attention ops, "
                        f"{len(ops) - n_gemm - n_attn - n_other} collectives"
                        + (f", {n_other} other kernels as elementwise ops (bytes estimated from input shapes)"
                           if all_kernels else "")
                        + "; measured_s = summed GPU kernel time"
                        + (f"; {single} one-rank collectives dropped" if single else "")
                        + (f"; {no_bytes[0]} ops without tensor inputs ({no_bytes[1] * 1e6:.1f} us of kernels) "
                           f"left out" if no_bytes[0] else "")
                        + (f"; {skipped} non-collective comms events skipped" if skipped else ""))}
    gpu = next((f["preset"] for f in files if f["preset"]), None)
    multi = widest > 1 or top > 0
    if config is not None:
        out["system" if multi else "config"] = config
    elif gpu and multi:
        out["system"] = _system_for(gpu, top + 1, names)
    elif gpu:
        out["config"] = gpu
    out["ops"] = ops
    return out
