"""Chrome trace event JSON: required fields, pid/tid mapping, exact times, per-thread order, no overlap."""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import blackwell_sim as bs
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report import (
    chrome_trace,
    kernel_tile_events,
    results_frame,
    write_chrome_trace,
)
from blackwell_sim.report.timeline import DETAIL_TID_BASE, stream_tids


def check_chrome_trace(doc: dict) -> list[dict]:
    """The invariants the issue asks for; returns the X events."""
    assert set(doc) >= {"traceEvents"}
    slices = []
    for e in doc["traceEvents"]:
        assert {"name", "ph", "pid", "tid"} <= set(e)
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "M":
            assert e["name"] in {"process_name", "process_sort_index", "thread_name", "thread_sort_index"}
            assert "args" in e
        else:
            assert e["ph"] == "X" and {"ts", "dur"} <= set(e) and e["dur"] >= 0 and e["ts"] >= 0
            slices.append(e)
    by_thread = defaultdict(list)
    for e in slices:
        by_thread[(e["pid"], e["tid"])].append(e)
    for events in by_thread.values():
        ns = [(round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000)) for e in events]
        assert all(a[0] <= b[0] for a, b in pairwise(ns)), "ts not monotonic on a thread"
        assert all(a[1] <= b[0] for a, b in pairwise(ns)), "slices overlap on a thread"
    return slices


def frame():
    return results_frame([
        {"name": "qkv", "op": "gemm", "rank": 0, "start_s": 0.0, "time_s": 1.5e-6, "flops": 3e6,
         "peak_tflops": 9000.0, "dtype": "nvfp4", "bound": "compute", "tile": "256x256", "layer": "L0"},
        {"name": "attn", "op": "attention", "rank": 0, "start_s": 1.5e-6, "time_s": 2.25e-6, "flops": 1e6,
         "dtype": "bf16", "bound": "compute", "sparse": True, "cached": True},
        {"name": "ar", "op": "all_reduce", "rank": 0, "stream": "comm", "start_s": 1e-6, "time_s": 2e-6,
         "bytes_fabric": 4096.0},
        {"name": "ar", "op": "all_reduce", "rank": 1, "stream": "comm", "start_s": 1e-6, "time_s": 2e-6,
         "bytes_fabric": 4096.0},
        {"name": "cp", "op": "memcpy", "rank": 1, "stream": "aux", "start_s": 0.0, "time_s": 1e-6},
    ])


def test_processes_threads_and_slices():
    doc = chrome_trace(frame())
    slices = check_chrome_trace(doc)
    meta = [e for e in doc["traceEvents"] if e["ph"] == "M"]
    names = {(e["pid"], e["name"]): e["args"] for e in meta if e["name"] == "process_name"}
    assert names == {(0, "process_name"): {"name": "GPU 0"}, (1, "process_name"): {"name": "GPU 1"}}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    assert threads == {(0, 0): "compute", (0, 1): "comm", (1, 1): "comm", (1, 2): "aux"}
    assert [(e["name"], e["pid"], e["tid"]) for e in slices] == [
        ("qkv", 0, 0), ("attn", 0, 0), ("ar", 0, 1), ("ar", 1, 1), ("cp", 1, 2)]


def test_times_are_microseconds_and_args_carry_the_op():
    qkv, attn, ar0 = chrome_trace(frame())["traceEvents"][-5:-2]
    assert (qkv["ts"], qkv["dur"]) == (0.0, 1.5) and (attn["ts"], attn["dur"]) == (1.5, 2.25)
    assert (ar0["ts"], ar0["dur"]) == (1.0, 2.0)
    assert qkv["cat"] == "gemm" and qkv["ph"] == "X"
    assert qkv["args"] == {"op": "gemm", "dtype": "nvfp4", "bound": "compute", "tile": "256x256",
                           "layer": "L0", "flops": 3e6, "tflops": pytest.approx(2.0),
                           "pct_of_peak": pytest.approx(2.0 / 9000 * 100)}   # zero bytes left out
    assert ar0["args"] == {"op": "all_reduce", "bytes_fabric": 4096.0}
    assert attn["args"]["sparse"] is True and attn["args"]["cached"] is True


def test_stream_tids_are_stable():
    assert stream_tids(["z", "comm", "a", "compute"]) == {"compute": 0, "comm": 1, "a": 2, "z": 3}
    assert stream_tids(["side"]) == {"side": 0}


def test_overlapping_stream_is_reported_not_drawn(tmp_path):
    bad = frame().assign(start_s=[0.0, 1.0e-6, 1e-6, 1e-6, 0.0], end_s=[1.5e-6, 3.25e-6, 3e-6, 3e-6, 1e-6])
    with pytest.raises(BlackwellSimError, match="ops 'qkv' .* and 'attn' .* overlap on rank 0 stream 'compute'"):
        write_chrome_trace(bad, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists()


def test_extra_events_are_checked_and_merged_in_order():
    extra = [{"name": "thread_name", "ph": "M", "pid": 0, "tid": 7, "args": {"name": "detail"}},
             {"name": "late", "ph": "X", "pid": 0, "tid": 7, "ts": 2.0, "dur": 1.0},
             {"name": "early", "ph": "X", "pid": 0, "tid": 7, "ts": 0.0, "dur": 1.0}]
    doc = chrome_trace(frame(), extra)
    slices = check_chrome_trace(doc)
    assert [e["name"] for e in slices if e["tid"] == 7] == ["early", "late"]
    on_op_thread = [{"name": "intruder", "ph": "X", "pid": 0, "tid": 0, "ts": 1.0, "dur": 0.25}]
    with pytest.raises(BlackwellSimError, match=r"events 'qkv' and 'intruder' overlap on pid 0 tid 0 at 1.0 us"):
        chrome_trace(frame(), on_op_thread)
    with pytest.raises(BlackwellSimError, match=r"extra timeline event 0: missing field 'dur'"):
        chrome_trace(frame(), [{"name": "x", "ph": "X", "pid": 0, "tid": 9, "ts": 1.0}])
    with pytest.raises(BlackwellSimError, match=r"extra timeline event 0: field 'ts' must be a finite"):
        chrome_trace(frame(), [{"name": "x", "ph": "i", "pid": 0, "tid": 9, "ts": -1.0}])


def test_written_file_is_strict_json(tmp_path):
    path = write_chrome_trace(frame(), tmp_path / "sub" / "timeline.json", title="t")
    doc = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    check_chrome_trace(doc)
    assert doc["displayTimeUnit"] == "ns" and doc["otherData"]["title"] == "t"
    assert [p.name for p in path.parent.iterdir()] == ["timeline.json"]


def test_gemm_tile_events_sit_inside_the_op_on_their_own_threads():
    from blackwell_sim.engine.kernels.gemm import simulate_gemm

    r = simulate_gemm(bs.load_config("b200"), 2048, 2048, 2048, "bf16", record_timeline=True)
    start_s = 1e-3
    events = kernel_tile_events(r, rank=0, start_s=start_s, label="g", max_workers=4)
    tiles = [e for e in events if e["ph"] == "X"]
    workers = {w for w, *_ in r.details["timeline"] if w < 4}
    assert len(tiles) == sum(1 for w, *_ in r.details["timeline"] if w < 4) > 0
    assert {e["tid"] for e in tiles} == {DETAIL_TID_BASE + w for w in workers}
    lo, hi = (start_s + r.details["launch_s"]) * 1e6, (start_s + r.time_s) * 1e6
    assert all(lo - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= hi + 1e-3 for e in tiles)
    f = results_frame([{"name": "g", "op": "gemm", "start_s": start_s, "time_s": r.time_s}])
    check_chrome_trace(chrome_trace(f, events))
    assert kernel_tile_events(simulate_gemm(bs.load_config("b200"), 256, 256, 256), rank=0, start_s=0) == []


lane = st.lists(st.tuples(st.floats(0, 5e-3), st.floats(0, 5e-3)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.tuples(st.integers(0, 3), st.sampled_from(["compute", "comm", "x"])), lane,
                       min_size=1, max_size=5))
def test_any_sequential_streams_give_a_valid_trace(lanes):
    rows = []
    for (rank, stream), gaps in sorted(lanes.items()):
        t = 0.0
        for i, (gap, dur) in enumerate(gaps):
            t += gap
            rows.append({"name": f"{rank}-{stream}-{i}", "op": "gemm", "rank": rank, "stream": stream,
                         "start_s": t, "time_s": dur})
            t += dur
    slices = check_chrome_trace(chrome_trace(results_frame(rows)))
    assert len(slices) == len(rows)
