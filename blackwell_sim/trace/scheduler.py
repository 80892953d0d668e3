"""The list scheduler of the replay: start and end times from durations, launch gaps, the
stream order, deps, the per-GPU SM lock and the SMs collectives hold (rules in
:mod:`blackwell_sim.trace.replay`)."""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass

from blackwell_sim.trace.ops import Op


@dataclass
class Instance:
    """One scheduled unit: an op (a collective on all its ranks) or a send/recv pair."""

    ops: tuple[Op, ...]
    ranks: tuple[int, ...]          #: row rank of each op in ``ops`` order (collective: group)
    queues: tuple[tuple[int, str], ...]
    uses_sms: bool
    key: tuple


def graph(instances: list[Instance]) -> tuple[list[list[int]], list[int]]:
    """Successor lists and predecessor counts: stream order plus deps (deduplicated)."""
    owner = {op.name: i for i, inst in enumerate(instances) for op in inst.ops}
    queues: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for i, inst in enumerate(instances):
        for j, q in enumerate(inst.queues):
            queues.setdefault(q, []).append((inst.ops[min(j, len(inst.ops) - 1)].index, i))
    preds: list[set[int]] = [set() for _ in instances]
    for entries in queues.values():
        entries.sort()
        for (_, a), (_, b) in itertools.pairwise(entries):
            preds[b].add(a)
    for i, inst in enumerate(instances):
        for op in inst.ops:
            for dep in op.deps:
                if owner[dep] != i:
                    preds[i].add(owner[dep])
    successors: list[list[int]] = [[] for _ in instances]
    for i, ps in enumerate(preds):
        for p in sorted(ps):
            successors[p].append(i)
    return successors, [len(ps) for ps in preds]


def schedule(instances: list[Instance], durations: list[float], gaps: list[float],
             edges: tuple[list[list[int]], list[int]] | None = None,
             issue: list[float] | None = None, comm_sms: list[int] | None = None,
             sm_count: int = 1, share_links: bool = False) -> tuple[list[float], list[float]]:
    """Start and end time of every instance (list scheduling; see the module docstring).

    ``durations`` are each op's time alone; two mechanisms stretch them while ops overlap:

    - ``comm_sms``: SMs each collective occupies on each of its ranks while it runs; a kernel on
      that rank progresses at (sm_count - SMs held by collectives) / sm_count of its rate.
    - ``share_links``: collectives running at once on one GPU split its NVLink bandwidth fairly;
      each progresses at 1 / (the most collectives running on any of its GPUs) of its rate.

    ``edges``: :func:`graph` of ``instances`` when the caller has it already (no cycles);
    ``issue``: :func:`issue_times` (an op starts no earlier than its launch gap after it)."""
    successors, npred = edges if edges is not None else graph(instances)
    npred = list(npred)
    n = len(instances)
    start = [math.nan] * n
    end = [math.nan] * n
    events: list[tuple[float, int, int, int, int]] = []  # (time, 0 end / 1 start, seq, i, version)
    seq = itertools.count()
    waiting: dict[int, list[int]] = {}
    sms_busy: dict[int, bool] = {}
    running: dict[int, int] = {}       # rank -> kernel whose body is running
    colls: dict[int, set[int]] = {}    # rank -> collectives running on it
    held: dict[int, int] = {}          # rank -> SMs held by running collectives
    remaining = list(durations)        # time left, in seconds at the full rate
    rate = [1.0] * n
    since = [0.0] * n
    version = [0] * n

    def rate_of(i: int) -> float:
        inst = instances[i]
        if inst.uses_sms:
            return max(sm_count - held.get(inst.ranks[0], 0), 1) / sm_count
        if not share_links:
            return 1.0
        return 1.0 / max(len(colls[r]) for r in inst.ranks)

    def retime(k: int, now: float) -> None:
        remaining[k] = max(remaining[k] - (now - since[k]) * rate[k], 0.0)
        since[k], rate[k] = now, rate_of(k)
        version[k] += 1
        heapq.heappush(events, (now + remaining[k] / rate[k], 0, next(seq), k, version[k]))

    def launch(i: int, t: float) -> None:
        start[i] = (t if issue is None or issue[i] <= t else issue[i]) + gaps[i]
        heapq.heappush(events, (start[i], 1, next(seq), i, 0))

    def dispatch(rank: int, t: float) -> None:
        if not sms_busy.get(rank) and waiting.get(rank):
            sms_busy[rank] = True
            launch(heapq.heappop(waiting[rank]), t)

    def ready(i: int, t: float) -> None:
        inst = instances[i]
        if inst.uses_sms:
            rank = inst.ranks[0]
            heapq.heappush(waiting.setdefault(rank, []), i)
            dispatch(rank, t)
        else:
            launch(i, t)

    def collective(i: int, joining: bool, now: float) -> None:
        """A collective starts or ends: update what it holds, retime what shares its GPUs."""
        ranks = set(instances[i].ranks)
        sms = comm_sms[i] if comm_sms else 0
        for r in ranks:
            held[r] = held.get(r, 0) + (sms if joining else -sms)
            if joining:
                colls.setdefault(r, set()).add(i)
            else:
                colls[r].discard(i)
        affected: set[int] = set()
        for r in ranks:
            if sms and r in running:
                affected.add(running[r])
            if share_links:
                affected.update(colls[r])
        affected.discard(i)
        for k in sorted(affected):
            retime(k, now)

    for i in range(n):
        if npred[i] == 0:
            ready(i, 0.0)
    done = 0
    while events:
        t, kind, _, i, ver = heapq.heappop(events)
        inst = instances[i]
        if kind == 1:  # body starts
            if inst.uses_sms:
                running[inst.ranks[0]] = i
            else:
                collective(i, True, t)
            since[i], rate[i] = t, rate_of(i)
            heapq.heappush(events, (t + remaining[i] / rate[i], 0, next(seq), i, version[i]))
            continue
        if ver != version[i]:
            continue  # superseded by a retime
        end[i] = t
        done += 1
        if inst.uses_sms:
            sms_busy[inst.ranks[0]] = False
            del running[inst.ranks[0]]
        else:
            collective(i, False, t)
        for j in successors[i]:
            npred[j] -= 1
            if npred[j] == 0:
                ready(j, t)
        if inst.uses_sms:
            dispatch(inst.ranks[0], t)
    if done != n:  # callers reject cycles first, so this is a bug
        raise RuntimeError(f"replay: scheduled {done} of {n} ops")
    return start, end
