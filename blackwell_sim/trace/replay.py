"""Replay a trace on a GPU or a multi-GPU system: kernel times from the kernel models, start and
end times from a list scheduler.

Scheduling model (each rule a named mechanism; docs/architecture.md):

- Streams: every (rank, stream) runs its ops one at a time, in trace order. ``deps`` add
  edges across streams and ranks. A collective occupies its stream on every rank of its
  ``group`` and starts when all of them reach it (NCCL semantics: the slowest rank gates it);
  the k-th ``send`` r->p pairs with the k-th ``recv`` on p from r and the pair runs as one.
- SMs: compute and memory kernels (gemm, attention, memcpy, elementwise) fill the GPU, so the
  ones on different streams of one rank run one at a time, lowest trace index first among the
  ready ones. Collectives and send/recv run alongside them on their own streams, holding the
  SMs the collective model says they use (``sms_used``, NCCL's channel CTAs): while they run,
  the kernel on that rank progresses at the free SMs' share of its rate (its end moves out;
  the row's ``time_s`` is the stretched time). Their HBM traffic is not charged to the kernel.
- NVLink: collectives running at once on one GPU (e.g. a data-parallel gradient all-reduce
  beside a tensor-parallel one) split its NVLink bandwidth fairly, each progressing at
  1 / (the most collectives running on any of its GPUs) of its rate alone. Collectives on
  disjoint GPUs do not slow each other (the NVSwitch fabrics of the presets are non-blocking).
- Launch gaps: a kernel starts ``launch_s`` after it becomes ready, the kernel model's own
  launch cost (``launch.overhead_us`` of the GPU config, the back-to-back launch gap of one
  stream); its row's ``time_s`` is the kernel body without that gap, comparable to a profiler's
  kernel duration. Collective times are the collective model's whole time.
- Memo: identical ops (same timing fields, same config, same fidelity) are simulated once;
  reused rows are marked ``cached``. Collectives of the same size on different groups are
  identical ops (the schema's fabrics are symmetric).
- Collective launch: the collective model's host overhead is the gap before it starts, like a
  kernel's launch gap.
- Host dispatch (``host_dispatch="eager"``, the default): each rank's host thread issues its
  ops in trace order, each costing its PyTorch API's measured dispatch time
  (:data:`blackwell_sim.harness.HOST_DISPATCH_US`); an op starts no earlier than its launch gap
  after it was issued, so short kernels become host-bound. ``"none"`` models CUDA-graph replay.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from blackwell_sim.config import GPUConfig, SystemConfig, to_plain
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.io import Trace, cycle_text, find_cycle
from blackwell_sim.trace.ops import (
    COLLECTIVE_OPS,
    COMPUTE_OPS,
    P2P_OPS,
    Op,
    op_error,
)
from blackwell_sim.trace.scheduler import Instance, graph, schedule
from blackwell_sim.trace.timing import issue_times

FIDELITIES = ("fast", "detailed")
FRAME_COLUMNS = ("name", "op", "rank", "stream", "layer", "phase", "start_s", "end_s", "time_s",
                 "flops", "tflops", "peak_tflops", "pct_of_peak", "dtype", "sparse", "bound", "tile",
                 "bytes_hbm", "bytes_l2", "bytes_fabric", "energy_j", "measured_s", "cached",
                 "sqnr_db", "rel_error", "functional_s")


@dataclass(frozen=True)
class Timing:
    """What the replay needs from one kernel model call (times in s, bytes in B)."""

    time_s: float          #: kernel body (or the whole collective)
    launch_s: float        #: gap before the body starts once the op is ready
    flops: float
    peak_tflops: float
    bound: str
    tile: str
    dtype: str
    sparse: bool
    bytes_hbm: float
    bytes_l2: float
    bytes_fabric: float
    energy_j: float
    sms_used: int = 0      #: SMs a collective occupies on each of its ranks while it runs


def gpu_of(config) -> GPUConfig:
    return config.gpu if isinstance(config, SystemConfig) else config


def gpu_count(config) -> int:
    return config.gpu_count if isinstance(config, SystemConfig) else 1


def config_fingerprint(config) -> str:
    """A stable identity of a config's contents (the memo's config part)."""
    text = json.dumps(to_plain(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_rank(trace: Trace, op: Op, field: str, rank: int, ranks: int, config) -> None:
    if rank >= ranks:
        what = f"system {config.name!r} has {ranks} GPUs (ranks 0..{ranks - 1})" if ranks > 1 else (
            f"config {config.name!r} is one GPU (rank 0); use a system preset such as hgx-b200-8")
        raise op_error(trace.source, op.index, op.name, f"{field}: rank {rank} is outside the "
                                                        f"system: {what}")


def plan(trace: Trace, config, *, check_cycles: bool = True) -> list[Instance]:
    """Check ranks against ``config``, pair send/recv, build the scheduled units, reject cycles
    (``check_cycles=False``: the caller checks, with :func:`check_cycles_of` on its graph)."""
    if not isinstance(config, (GPUConfig, SystemConfig)):
        raise BlackwellSimError(f"config must be a GPUConfig or SystemConfig, got {type(config).__name__}")
    ranks = gpu_count(config)
    instances: list[Instance] = []
    pending_sends: dict[tuple[int, int], list[Op]] = {}
    pending_recvs: dict[tuple[int, int], list[Op]] = {}
    for op in trace.ops:
        if op.op in COLLECTIVE_OPS:
            if not isinstance(config, SystemConfig):
                raise op_error(trace.source, op.index, op.name, f"{op.op} needs a multi-GPU system "
                               f"(config {config.name!r} is one GPU; use e.g. --config hgx-b200-8)")
            group = op.group if op.group is not None else tuple(range(ranks))
            for r in group:
                _check_rank(trace, op, "group", r, ranks, config)
            # The fabrics of the config schema are symmetric (every GPU has the same links to the
            # same switch chips, or two GPUs joined directly): a collective simulated alone takes
            # the same time on any group of the same size, so the memo keys it by size.
            instances.append(Instance((op,), group, tuple((r, op.stream) for r in group), False,
                                      (op.op, op.bytes, len(group), op.dtype, op.algo)))
        elif op.op in P2P_OPS:
            _check_rank(trace, op, "rank", op.rank, ranks, config)
            _check_rank(trace, op, "peer", op.peer, ranks, config)
            src, dst = (op.rank, op.peer) if op.op == "send" else (op.peer, op.rank)
            mine, other = (pending_sends, pending_recvs) if op.op == "send" else (pending_recvs, pending_sends)
            waiting = other.get((src, dst))
            if waiting:
                partner = waiting.pop(0)
                send, recv = (op, partner) if op.op == "send" else (partner, op)
                if send.bytes != recv.bytes:
                    raise op_error(trace.source, op.index, op.name, f"bytes: {op.bytes} does not match "
                                   f"its partner '{partner.name}' ({partner.bytes})")
                instances.append(Instance((partner, op), (partner.rank, op.rank),
                                          ((partner.rank, partner.stream), (op.rank, op.stream)), False,
                                          ("send", send.bytes)))
            else:
                mine.setdefault((src, dst), []).append(op)
        else:
            _check_rank(trace, op, "rank", op.rank, ranks, config)
            instances.append(Instance((op,), (op.rank,), ((op.rank, op.stream),), True,
                                      op.timing_key()))
    for table, partner in ((pending_sends, "recv"), (pending_recvs, "send")):
        for ops in table.values():
            if ops:
                op = ops[0]
                raise op_error(trace.source, op.index, op.name, f"{op.op} to/from rank {op.peer} has "
                               f"no matching {partner} on rank {op.peer}")
    instances.sort(key=lambda inst: max(o.index for o in inst.ops))
    if check_cycles:
        check_cycles_of(trace, instances)
    return instances


def check_cycles_of(trace: Trace, instances: list[Instance],
                    successors: list[list[int]] | None = None) -> None:
    if successors is None:
        successors, _ = graph(instances)
    cycle = find_cycle(successors)
    if cycle:
        names = [instances[i].ops[0] for i in cycle]
        first = names[0]
        raise op_error(trace.source, first.index, first.name,
                       "deps: dependency cycle through stream order and deps "
                       f"{cycle_text(names, list(range(len(names))))}")


def replay(trace: Trace, config, fidelity: str = "fast", *, functional: str | None = None,
           seed: int = 0, memo: dict | None = None, host_dispatch: str = "eager",
           progress: Callable[[int], object] | None = None) -> pd.DataFrame:
    """The per-op results frame of ``trace`` on ``config`` (columns: :data:`FRAME_COLUMNS`).

    ``host_dispatch``: ``"eager"`` (a host thread per rank dispatches each op, see
    :func:`issue_times`) or ``"none"``. ``functional`` (``"sample"`` or ``"full"``) also executes each GEMM / attention numerically
    (:mod:`blackwell_sim.trace.functional`) with operands seeded by ``seed``. ``memo`` may be
    shared across calls (keys include the config's fingerprint). ``progress(total)`` returns a
    bar with ``update(n)`` and ``close()`` (e.g. ``tqdm``), advanced per distinct op simulated.
    """
    from blackwell_sim.trace.timing import evaluate, require_models

    if fidelity not in FIDELITIES:
        raise BlackwellSimError(f"fidelity: expected one of {', '.join(FIDELITIES)}, got {fidelity!r}")
    if functional not in (None, "sample", "full"):
        raise BlackwellSimError(f"functional: expected sample or full, got {functional!r}")
    issue_times([], host_dispatch)  # reject a bad mode before any work
    instances = plan(trace, config, check_cycles=False)
    edges = graph(instances)
    check_cycles_of(trace, instances, edges[0])
    require_models(trace, instances)
    memo = {} if memo is None else memo
    prefix = (config_fingerprint(config), fidelity)
    keys = [prefix + inst.key for inst in instances]
    todo = list(dict.fromkeys(k for k in keys if k not in memo))
    first_of = {k: i for i, k in reversed(list(enumerate(keys)))}
    numeric_ops = [inst.ops[0] for inst in instances if functional and inst.ops[0].op in COMPUTE_OPS]
    numeric_keys = _numeric_keys(numeric_ops, functional, seed, trace)
    bar = progress(len(todo) + len(set(numeric_keys.values()))) if progress else None
    first_use = {first_of[key] for key in todo}
    try:
        for key in todo:
            memo[key] = evaluate(instances[first_of[key]], config, fidelity, trace.source)
            if bar is not None:
                bar.update(1)
        func_of = _run_numerics(numeric_ops, numeric_keys, functional, seed, trace, bar)
    finally:
        if bar is not None:
            bar.close()
    timings = [memo[k] for k in keys]
    start, end = schedule(instances, [t.time_s for t in timings], [t.launch_s for t in timings], edges,
                          issue_times(instances, host_dispatch), [t.sms_used for t in timings],
                          gpu_of(config).sm.count, share_links=True)
    rows = []
    for i, inst in enumerate(instances):
        if inst.ops[0].op in COLLECTIVE_OPS:
            rows.extend((inst.ops[0], r, i) for r in inst.ranks)
        else:
            rows.extend((op, rank, i) for op, rank in zip(inst.ops, inst.ranks, strict=True))
    rows.sort(key=lambda row: (row[0].index, row[1]))
    return _frame(rows, start, end, timings, first_use, func_of)


def _numeric_keys(ops: list[Op], functional: str | None, seed: int, trace: Trace) -> dict[int, tuple]:
    """Functional-execution key per op index (equal keys: same operands, same result)."""
    if not ops:
        return {}
    from blackwell_sim.trace.functional import functional_key

    return {op.index: functional_key(op, functional, seed, trace.base_dir) for op in ops}


def _run_numerics(ops: list[Op], keys: dict[int, tuple], functional: str | None, seed: int,
                  trace: Trace, bar) -> dict[int, tuple[float, float, float]]:
    """(sqnr_db, rel_error, functional_s) per op index, each distinct key executed once."""
    if not ops:
        return {}
    from blackwell_sim.trace.functional import run_functional

    results: dict[tuple, tuple[float, float, float]] = {}
    for op in ops:
        key = keys[op.index]
        if key not in results:
            results[key] = run_functional(op, functional, seed, trace.base_dir, trace.source)
            if bar is not None:
                bar.update(1)
    return {index: results[key] for index, key in keys.items()}


def _frame(rows, start, end, timings: list[Timing], first_use: set[int], func_of: dict) -> pd.DataFrame:
    """The results frame: per-row op fields, per-instance timing fields gathered by index."""
    nan = math.nan
    ops = [row[0] for row in rows]
    idx = np.fromiter((row[2] for row in rows), dtype=np.int64, count=len(rows))
    per_inst = {name: np.array([getattr(t, name) for t in timings], dtype=float)
                for name in ("time_s", "flops", "peak_tflops", "bytes_hbm", "bytes_l2", "bytes_fabric",
                             "energy_j")}
    starts, ends = np.asarray(start, dtype=float)[idx], np.asarray(end, dtype=float)[idx]
    model_s = per_inst["time_s"][idx]
    elapsed = ends - starts  # stretched while collectives held SMs; else the model's time
    time_s = np.where(np.abs(elapsed - model_s) <= 1e-12 * model_s, model_s, elapsed)
    flops = per_inst["flops"][idx]
    peak = per_inst["peak_tflops"][idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        tflops = np.where(time_s > 0, flops / time_s / 1e12, nan)
        pct = np.where(peak > 0, 100 * tflops / peak, nan)
    first = np.zeros(len(timings), dtype=bool)
    first[list(first_use)] = True
    func = [func_of.get(op.index, (nan, nan, nan)) for op in ops]
    text = {name: [getattr(t, name) for t in timings] for name in ("dtype", "bound", "tile")}
    cols = {
        "name": [op.name for op in ops], "op": [op.op for op in ops],
        "rank": np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows)),
        "stream": [op.stream for op in ops], "layer": [op.layer or "" for op in ops],
        "phase": [op.phase or "" for op in ops],
        "start_s": starts, "end_s": ends,
        "time_s": time_s, "flops": flops, "tflops": tflops, "peak_tflops": peak, "pct_of_peak": pct,
        "dtype": [text["dtype"][i] for i in idx], "sparse": np.array([timings[i].sparse for i in idx], dtype=bool),
        "bound": [text["bound"][i] for i in idx], "tile": [text["tile"][i] for i in idx],
        "bytes_hbm": per_inst["bytes_hbm"][idx], "bytes_l2": per_inst["bytes_l2"][idx],
        "bytes_fabric": per_inst["bytes_fabric"][idx], "energy_j": per_inst["energy_j"][idx],
        "measured_s": np.array([nan if op.measured_s is None else op.measured_s for op in ops], dtype=float),
        "cached": ~first[idx],
        "sqnr_db": np.array([f[0] for f in func], dtype=float),
        "rel_error": np.array([f[1] for f in func], dtype=float),
        "functional_s": np.array([f[2] for f in func], dtype=float),
    }
    frame = pd.DataFrame(cols, columns=list(FRAME_COLUMNS))
    for c in ("name", "op", "stream", "layer", "phase", "dtype", "bound", "tile"):
        frame[c] = frame[c].astype(object)
    return frame
