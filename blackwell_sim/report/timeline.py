"""Chrome trace event JSON (opens in ui.perfetto.dev and chrome://tracing) from a results frame.

Format: the Trace Event Format's JSON object form (Google's "Trace Event Format" document of the
catapult project, which Perfetto's JSON importer follows), ``{"traceEvents": [...], "displayTimeUnit":
"ns", "otherData": {...}}``. Each op row is one complete event (``"ph": "X"``) with ``pid`` = rank,
``tid`` = its stream (a small integer; ``thread_name`` metadata names it), ``ts``/``dur`` in
microseconds and ``args`` holding flops, TFLOPS, bound, dtype, tile and bytes (numbers that are
unknown or zero are left out: 7% smaller on a Llama-3-70B step). ``process_name``
metadata names each rank "GPU r". Times are whole nanoseconds (3 decimals of a microsecond), so a
slice ends exactly where the next one on its thread may start. Events are sorted by (pid, tid, ts):
ts is monotonic per thread, and the frame's streams are checked not to overlap
(:func:`~blackwell_sim.report.frame.check_streams`) before anything is written.

Optional detailed events (e.g. the per-SM tile timeline of a detailed-fidelity GEMM, see
:func:`kernel_tile_events`) go on their own threads, so they never overlap the op slices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report.frame import validate_frame
from blackwell_sim.report.output import write_json_atomic

STREAM_ORDER = ("compute", "comm")  #: these streams get tids 0, 1; others follow alphabetically
DETAIL_TID_BASE = 1000               #: tids of detailed (per-SM) threads start here
_ARG_COLUMNS = ("op", "dtype", "bound", "tile", "layer", "phase")
_ARG_FLOATS = ("flops", "tflops", "pct_of_peak", "bytes_hbm", "bytes_l2", "bytes_fabric", "energy_j",
               "measured_s", "sqnr_db")


def _us(ns: int) -> float:
    return ns / 1000.0


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def stream_tids(streams: Iterable[str]) -> dict[str, int]:
    """Stable thread ids: "compute" 0, "comm" 1, then the other stream names in sorted order."""
    names = set(streams)
    ordered = [s for s in STREAM_ORDER if s in names] + sorted(names - set(STREAM_ORDER))
    return {name: i for i, name in enumerate(ordered)}


def chrome_trace(frame: pd.DataFrame, extra_events: Sequence[dict] | None = None,
                 *, title: str | None = None) -> dict:
    """The trace document (a dict) for ``frame`` plus optional ``extra_events``.

    ``extra_events`` are Chrome events with at least ``name``, ``ph``, ``pid``, ``tid``, ``ts``
    (and ``dur`` for ``"X"``); a bad one raises :class:`BlackwellSimError` naming its index.
    """
    validate_frame(frame)
    tids = stream_tids(frame["stream"].astype(str))
    ranks = sorted(int(r) for r in frame["rank"].unique())
    events: list[dict] = []
    lanes = set(zip(frame["rank"].astype(int), frame["stream"].astype(str)))
    for rank in ranks:
        events.append({"name": "process_name", "ph": "M", "pid": rank, "tid": 0,
                       "args": {"name": f"GPU {rank}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": rank, "tid": 0,
                       "args": {"sort_index": rank}})
        for stream in sorted((st for r, st in lanes if r == rank), key=tids.get):
            events.append({"name": "thread_name", "ph": "M", "pid": rank, "tid": tids[stream],
                           "args": {"name": stream}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": rank, "tid": tids[stream],
                           "args": {"sort_index": tids[stream]}})
    extra = _checked_extra(extra_events or [])
    events.extend(e for e in extra if e["ph"] == "M")
    slices = _op_events(frame, tids) + [e for e in extra if e["ph"] != "M"]
    slices.sort(key=lambda e: (e["pid"], e["tid"], e["ts"], e.get("dur", 0.0), e["name"]))
    _check_threads(slices)
    events.extend(slices)
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"generator": "blackwell-sim", "title": title or ""}}


def _op_events(frame: pd.DataFrame, tids: dict[str, int]) -> list[dict]:
    start_ns = np.rint(frame["start_s"].to_numpy(dtype=float) * 1e9).astype(np.int64)
    end_ns = np.rint(frame["end_s"].to_numpy(dtype=float) * 1e9).astype(np.int64)
    ts = (start_ns / 1000.0).tolist()
    dur = ((end_ns - start_ns) / 1000.0).tolist()
    names = frame["name"].astype(str).tolist()
    kinds = frame["op"].astype(str).tolist()
    pids = frame["rank"].astype(int).tolist()
    thread = frame["stream"].astype(str).map(tids).tolist()
    strs = [(c, frame[c].astype(str).tolist()) for c in _ARG_COLUMNS]
    floats = [(c, frame[c].to_numpy(dtype=float).tolist()) for c in _ARG_FLOATS]
    flags = [(c, frame[c].to_numpy(dtype=bool).tolist()) for c in ("sparse", "cached")]
    out = []
    for i in range(len(names)):
        args = {c: v[i] for c, v in strs if v[i] != ""}
        args.update((c, v[i]) for c, v in floats if v[i] and v[i] == v[i])  # drop 0 and NaN
        args.update((c, True) for c, v in flags if v[i])
        out.append({"name": names[i], "cat": kinds[i], "ph": "X", "pid": pids[i], "tid": thread[i],
                    "ts": ts[i], "dur": dur[i], "args": args})
    return out


def _check_threads(slices: list[dict]) -> None:
    """Raise if two sorted slices on one (pid, tid) overlap (compared in whole nanoseconds); the op
    slices cannot (the frame's streams were checked), so this catches extra events put on an op
    thread or overlapping each other."""
    prev_key, prev_end, prev_name = None, 0, ""
    for e in slices:
        key = (e["pid"], e["tid"])
        start = round(e["ts"] * 1000)
        if key == prev_key and start < prev_end:
            raise BlackwellSimError(f"timeline: events {prev_name!r} and {e['name']!r} overlap on "
                                    f"pid {key[0]} tid {key[1]} at {e['ts']} us")
        if key != prev_key or start + round(e.get("dur", 0.0) * 1000) > prev_end:
            prev_end = start + round(e.get("dur", 0.0) * 1000)
            prev_name = e["name"]
        prev_key = key


def _checked_extra(extra: Sequence[dict]) -> list[dict]:
    out = []
    for i, event in enumerate(extra):
        if not isinstance(event, dict):
            raise BlackwellSimError(f"extra timeline event {i}: expected a mapping, got {event!r}")
        required = ("name", "ph", "pid", "tid") + (() if event.get("ph") == "M" else ("ts",)) \
            + (("dur",) if event.get("ph") == "X" else ())
        for key in required:
            if key not in event:
                raise BlackwellSimError(f"extra timeline event {i}: missing field {key!r}")
        for key in ("ts", "dur"):
            if key in event and (not isinstance(event[key], (int, float)) or event[key] < 0
                                 or not math.isfinite(event[key])):
                raise BlackwellSimError(f"extra timeline event {i}: field {key!r} must be a finite "
                                        f"number >= 0 (microseconds), got {event[key]!r}")
        out.append(dict(event))
    return out


def kernel_tile_events(result, *, rank: int, start_s: float, label: str = "",
                       max_workers: int = 16) -> list[dict]:
    """Chrome events for a kernel's per-worker tile timeline (``result.details["timeline"]``).

    The GEMM model records ``(worker, tile, start_s, end_s)`` per tile when run with
    ``record_timeline=True``; times are relative to the kernel's main loop, which starts after the
    launch overhead (``details["launch_s"]``). Worker w (an SM, or an SM pair for 2-SM tiles) goes
    on thread ``DETAIL_TID_BASE + w`` of process ``rank`` with a ``thread_name`` "SM w"; only the
    first ``max_workers`` workers are emitted to keep the file small. Returns [] without a timeline.
    """
    timeline = (result.details or {}).get("timeline") or []
    if not timeline:
        return []
    base_ns = _ns(start_s + float(result.details.get("launch_s", 0.0)))
    events: list[dict] = []
    named: set[int] = set()
    prefix = f"{label} " if label else ""
    for worker, unit, t0, t1 in timeline:
        if worker >= max_workers:
            continue
        tid = DETAIL_TID_BASE + int(worker)
        if tid not in named:
            named.add(tid)
            events.append({"name": "thread_name", "ph": "M", "pid": rank, "tid": tid,
                           "args": {"name": f"SM {worker}" + (f" ({label})" if label else "")}})
        s_ns, e_ns = base_ns + _ns(t0), base_ns + _ns(t1)
        unit_text = ",".join(map(str, unit)) if isinstance(unit, (tuple, list)) else str(unit)
        events.append({"name": f"{prefix}tile {unit_text}", "cat": "tile", "ph": "X", "pid": rank,
                       "tid": tid, "ts": _us(s_ns), "dur": _us(e_ns - s_ns), "args": {"worker": int(worker)}})
    return events


def write_chrome_trace(frame: pd.DataFrame, path, extra_events: Sequence[dict] | None = None,
                       *, title: str | None = None) -> Path:
    """Write :func:`chrome_trace` to ``path`` atomically (temp file + ``os.replace``); returns it."""
    doc = chrome_trace(frame, extra_events, title=title)
    return write_json_atomic(doc, path)
