"""Scheduler invariants on random traces (hypothesis): stream order, deps, the SM lock,
collectives gating on every rank, and launch gaps, whatever the durations, with and without
the contention mechanisms (SMs held by collectives, shared NVLink)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

import blackwell_sim as bs
from blackwell_sim.trace import parse_document
from blackwell_sim.trace.replay import plan, schedule

HGX = bs.load_config("hgx-b200-8")
EPS = 1e-9


@st.composite
def traces(draw):
    n = draw(st.integers(1, 14))
    ops, durations, gaps = [], {}, {}
    for i in range(n):
        name = f"o{i}"
        if draw(st.integers(0, 3)) == 0:
            group = sorted(draw(st.sets(st.integers(0, 3), min_size=2, max_size=4)))
            op = {"op": "all_gather", "bytes": 8, "group": group}
        else:
            op = {"op": "memcpy", "bytes": 8, "rank": draw(st.integers(0, 3)),
                  "stream": draw(st.sampled_from(["compute", "aux"]))}
        if i:
            op["deps"] = sorted({f"o{j}" for j in draw(st.lists(st.integers(0, i - 1), max_size=2))})
        ops.append({**op, "name": name})
        durations[name] = draw(st.floats(0.0, 5.0))
        gaps[name] = draw(st.sampled_from([0.0, 0.5]))
    return {"ops": ops}, durations, gaps


@settings(max_examples=150, deadline=None)
@given(traces(), st.booleans())
def test_schedule_invariants(case, contention):
    doc, durations, gaps = case
    trace = parse_document(doc)
    instances = plan(trace, HGX)
    names = [inst.ops[0].name for inst in instances]
    sms = [0 if inst.uses_sms else 30 for inst in instances] if contention else None
    start, end = schedule(instances, [durations[n] for n in names], [gaps[n] for n in names],
                          comm_sms=sms, sm_count=100, share_links=contention)
    when = {n: (start[k], end[k]) for k, n in enumerate(names)}
    ops = trace.by_name()
    for name, (s, e) in when.items():
        if contention:  # stretched while sharing, never shortened
            assert e >= s + durations[name] - EPS
        else:
            assert e == s + durations[name]
        for dep in ops[name].deps:
            assert s >= when[dep][1] + gaps[name] - EPS
    slots: dict[tuple[int, str], list[str]] = {}
    sms: dict[int, list[str]] = {}
    for op in trace.ops:
        ranks = op.group if op.op == "all_gather" else (op.rank,)
        for r in ranks:
            slots.setdefault((r, op.stream), []).append(op.name)
        if op.op == "memcpy":
            sms.setdefault(op.rank, []).append(op.name)
    for seq in slots.values():  # one stream: trace order, one at a time, a launch gap apart
        for a, b in itertools.pairwise(seq):
            assert when[b][0] >= when[a][1] + gaps[b] - EPS
    for seq in sms.values():    # kernels of one GPU never overlap (the SM lock)
        spans = sorted(when[n] for n in seq)
        for (_, e1), (s2, _) in itertools.pairwise(spans):
            assert s2 >= e1 - EPS
