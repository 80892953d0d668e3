"""Collective kernel models: all-reduce, all-gather, reduce-scatter, all-to-all, broadcast,
send/recv, with NCCL-like algorithms, protocols and an algorithm tuner.

API (for the CLI, ``validate`` and the trace replayer)::

    simulate_collective(system, op, bytes_, ranks=None, algo=None, protocol=None, dtype="bf16")
        -> CollectiveResult(time_s, algbw_gbps, busbw_gbps, algo, protocol, bound,
                            link_bytes {link class: bytes}, sms_used, ...)
    plan_collective(system, op, bytes_, ranks=None, algo=None, protocol=None, dtype="bf16")
        -> (Plan, uncontended time_s)   (what the tuner would run, closed form, no simulation)

``system`` is a :class:`~blackwell_sim.config.SystemConfig` (or a preset name). ``bytes_`` follows
nccl-tests: the buffer each rank holds for all-reduce / broadcast / send-recv / all-to-all, the
gathered output for all-gather and the input for reduce-scatter. Several collectives, copies and
compute ops sharing one fabric run through :class:`blackwell_sim.engine.system_run.System`.

How one collective's time comes about (each term a named mechanism and parameter):

- Host: the call spends ``host_issue_us`` before its kernel is queued and returns
  ``host_return_us`` later; a call timed alone (events around it) lasts
  ``host_issue + max(kernel, host_return)``. CUDA graphs and back-to-back loops hide both
  (``CollectiveResult.kernel_s`` is the GPU time alone).
- Kernel = ``launch_overhead_us`` (the kernel's start on the GPU) + protocol latency + transfer.
- Protocol latency: NCCL's model, ``base + steps x per-step`` for a ring (steps: 2(w-1) for
  all-reduce, w-1 for all-gather / reduce-scatter / broadcast, w-1 rounds for all-to-all, 1 for send/recv) and for the tree
  (inside one NVLink domain NCCL's tree is a chain of 2(w-1) hops), ``nvls_latency_us`` for NVLS
  (values: NCCL src/graph/tuning.cc); plus the Simple protocol's pipeline fill and drain, two
  slices (``slice_bytes``, smaller when a channel's share of a step is) at the channel's rate.
- Transfer, in pipeline events of ``channels x chunk_bytes`` per rank: each event takes the longer
  of (a) its link time at the share of every NVLink port group it gets (:mod:`..fabric`), with
  bytes on the wire = data / ``data_fraction`` of the protocol (LL 1/2, LL128 120/128), and
  (b) its SM time: the bytes the channels' CTAs load and store (counted from NCCL's primitives,
  see :func:`_shape`; ring all-reduce (6w-4)/w x S per rank) over ``channels x
  channel_bandwidth_gbps``; and, for NVLS,
  (c) the switch ALUs' element additions, (w-1) per output element, at ``reduction_gflops``.

NVLS (in-switch reduction) all-reduce: every GPU multimem-loads-reduces 1/w of the buffer (the
switch reads it from all w GPUs) and multicast-stores the result (the switch writes all w GPUs),
so each GPU sends and receives S(1 + 1/w) at ``nvls_link_efficiency`` of the payload rate.

The tuner (:func:`choose`) estimates every available (algorithm, protocol) pair with the same
formulas, uncontended, and picks the fastest, as NCCL's does; ``algo`` / ``protocol`` override it.
Bus bandwidth follows nccl-tests: algbw x 2(w-1)/w for all-reduce, x (w-1)/w for all-gather,
reduce-scatter and all-to-all, x 1 for broadcast and send/recv.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from blackwell_sim.config import SystemConfig, load_config
from blackwell_sim.engine.fabric import Fabric
from blackwell_sim.errors import BlackwellSimError

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv")
ALGOS = {"all_reduce": ("ring", "tree", "nvls"), "all_gather": ("ring",), "reduce_scatter": ("ring",),
         "all_to_all": ("direct",), "broadcast": ("ring",), "send_recv": ("direct",)}
PROTOCOLS = ("ll", "ll128", "simple")
# NCCL's point-to-point path (send/recv, and all-to-all built from it) has no LL128: LL for small
# messages (below NCCL_P2P_LL_THRESHOLD), Simple otherwise (NCCL docs, environment variables).
P2P_PROTOCOLS = ("ll", "simple")
ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp64": 8, "int32": 4, "int8": 1}
BUSBW_FACTOR = {"all_reduce": lambda w: 2 * (w - 1) / w, "all_gather": lambda w: (w - 1) / w,
                "reduce_scatter": lambda w: (w - 1) / w, "all_to_all": lambda w: (w - 1) / w,
                "broadcast": lambda w: 1.0, "send_recv": lambda w: 1.0}
MAX_EVENTS = 512  # pipeline events per collective; beyond it events grow larger, not more numerous


@dataclass(frozen=True)
class Plan:
    """One collective as the engine runs it: per-rank traffic of the whole transfer, the time
    terms that do not depend on contention, and how it splits into pipeline events."""

    op: str
    algo: str
    protocol: str
    ranks: tuple[int, ...]
    nbytes: int
    sent: np.ndarray            # (G,) wire bytes each GPU sends over the whole transfer
    received: np.ndarray        # (G,) wire bytes each GPU receives
    reduce_flop: float          # in-switch element additions (NVLS)
    sm_s: float                 # SM-side time of the whole transfer (uncontended)
    latency_s: float            # kernel launch + protocol latency (pipeline fill, synchronisation)
    host_s: float               # host time before the kernel is queued
    host_return_s: float        # host time after queuing until the call returns
    link_efficiency: float      # scale on the payload rate (NVLS multimem < 1)
    events: int
    sms_used: int

    @property
    def world(self) -> int:
        return len(self.ranks)


@dataclass
class CollectiveResult:
    """One simulated collective. Times in seconds, bandwidths in GB/s (1e9 bytes/s)."""

    op: str
    bytes: int
    world: int
    ranks: list[int]
    algo: str
    protocol: str
    time_s: float
    algbw_gbps: float
    busbw_gbps: float
    bound: str
    kernel_s: float
    host_overhead_s: float
    latency_s: float
    transfer_s: float
    link_bytes: dict = field(default_factory=dict)
    sms_used: int = 0
    events: int = 0
    candidates: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_line(self) -> str:
        return (f"{self.op} {self.bytes} B on {self.world} GPUs: {self.time_s * 1e6:.1f} us, "
                f"algbw {self.algbw_gbps:.1f} GB/s, busbw {self.busbw_gbps:.1f} GB/s, "
                f"{self.algo}/{self.protocol}, bound: {self.bound}, {self.sms_used} SMs per GPU")


def _system(system) -> SystemConfig:
    cfg = load_config(system) if isinstance(system, str) else system
    if not isinstance(cfg, SystemConfig):
        raise BlackwellSimError(f"collectives need a system preset (e.g. hgx-h100-8), got GPU config "
                                f"'{getattr(cfg, 'name', cfg)}'")
    return cfg


def check_ranks(system: SystemConfig, op: str, ranks) -> tuple[int, ...]:
    """Validated rank tuple (default: every GPU; send_recv: (0, 1))."""
    if ranks is None:
        ranks = (0, 1) if op == "send_recv" else tuple(range(system.gpu_count))
    try:
        ranks = tuple(int(r) for r in ranks)
    except (TypeError, ValueError):
        raise BlackwellSimError(f"ranks must be GPU indices, got {ranks!r}") from None
    if len(set(ranks)) != len(ranks) or any(r < 0 or r >= system.gpu_count for r in ranks):
        raise BlackwellSimError(f"ranks {list(ranks)} must be distinct GPU indices in "
                                f"0..{system.gpu_count - 1} of '{system.name}'")
    if len(ranks) < 2:
        raise BlackwellSimError(f"{op} needs at least 2 ranks, got {len(ranks)}")
    if op == "send_recv" and len(ranks) != 2:
        raise BlackwellSimError(f"send_recv takes exactly 2 ranks (source, destination), got {len(ranks)}")
    return ranks


def _chain(w: int, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NCCL's tree inside one NVLink domain is a chain (pos 0 the root): reduce up the chain,
    broadcast down, pipelined. Bytes each position sends, receives, and loads + stores: a middle
    rank forwards S up (load FIFO, load input, store: 3) and S down (load FIFO, store output,
    store: 3); the ends do 4 S."""
    sent = np.full(w, 2 * s)
    sm = np.full(w, 6 * s)
    sent[0] = sent[-1] = s
    sm[0] = sm[-1] = 4 * s
    return sent, sent.copy(), sm


def _shape(op: str, algo: str, w: int, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Data bytes each position in the rank list sends, receives, and loads + stores (SM memory
    operations, counted from NCCL's primitives), and the number of latency steps.

    Ring all-reduce per rank: one send (load, remote store), w-2 recv-reduce-send (3), one
    recv-reduce-copy-send (4), w-2 recv-copy-send (3), one recv (2), each on S/w: (6w-4) S/w.
    All-gather: copy-send (3), w-2 recv-copy-send (3), recv (2): (3w-1) S/w; reduce-scatter the
    same by symmetry. Point-to-point (all-to-all, send/recv) over NVLink reads the peer's buffer
    directly (NCCL's P2P read mode): the receiver loads and stores each byte once, the sender
    only posts it; all-to-all adds the local block's copy: (2(w-1) + 2) S/w. All-to-all takes
    w-1 latency steps: NCCL schedules a rank's peers in w-1 rounds (round r: send to rank + r,
    receive from rank - r; NCCL src/enqueue.cc p2p schedule), each round a protocol step.
    """
    ones = np.ones(w)
    if op == "all_reduce" and algo == "ring":
        d = 2 * (w - 1) / w * s
        return d * ones, d * ones, (6 * w - 4) / w * s * ones, 2 * (w - 1)
    if op == "all_reduce" and algo == "tree":
        sent, recv, sm = _chain(w, s)
        return sent, recv, sm, 2 * (w - 1)
    if op in ("all_gather", "reduce_scatter"):
        d = (w - 1) / w * s
        return d * ones, d * ones, (3 * w - 1) / w * s * ones, w - 1
    if op == "all_to_all":
        d = (w - 1) / w * s
        return d * ones, d * ones, 2 * s * ones, w - 1
    if op == "broadcast":
        sent, recv, sm = s * ones, s * ones, 3 * s * ones
        sent[-1] = recv[0] = 0.0
        sm[0] = sm[-1] = 2 * s
        return sent, recv, sm, w - 1
    if op == "send_recv":
        return np.array([s, 0.0]), np.array([0.0, s]), np.array([0.0, 2 * s]), 1
    raise AssertionError((op, algo))


def _available(system: SystemConfig, op: str, fabric_nvls: bool, requested: str | None = None
               ) -> list[tuple[str, str]]:
    coll = system.fabric.collective
    out = []
    for algo in ALGOS[op]:
        if algo == "tree" and requested != "tree":
            continue  # a chain inside one NVLink domain: NCCL uses trees across nodes (not modelled)
        if algo == "nvls":
            if fabric_nvls and coll.nvls_enabled:
                out.append(("nvls", "simple"))
            continue
        out.extend((algo, p) for p in (P2P_PROTOCOLS if algo == "direct" else PROTOCOLS))
    return out


def _plan(system: SystemConfig, fabric: Fabric, op: str, nbytes: int, ranks: tuple[int, ...],
          algo: str, protocol: str, elem_bytes: int) -> Plan:
    coll = system.fabric.collective
    w = len(ranks)
    s = float(nbytes)
    sent = np.zeros(system.gpu_count)
    received = np.zeros(system.gpu_count)
    idx = np.array(ranks)
    if algo == "nvls":
        per_rank = s * (1 + 1 / w)
        sent[idx] = per_rank
        received[idx] = per_rank
        channels = coll.nvls_channels
        return Plan(op, algo, protocol, ranks, nbytes, sent, received,
                    reduce_flop=(w - 1) * s / elem_bytes, sm_s=0.0,
                    latency_s=(coll.launch_overhead_us + coll.nvls_latency_us) * 1e-6,
                    host_s=coll.host_issue_us * 1e-6, host_return_s=coll.host_return_us * 1e-6,
                    link_efficiency=coll.nvls_link_efficiency,
                    events=_events(per_rank, channels, coll.chunk_bytes), sms_used=channels)
    proto = getattr(coll, protocol)
    data_sent, data_recv, sm_bytes, steps = _shape(op, algo, w, s)
    sent[idx] = data_sent / proto.data_fraction
    received[idx] = data_recv / proto.data_fraction
    busiest = float(max(sent.max(), received.max()))
    channel_bytes_per_s = coll.channel_bandwidth_gbps * 1e9 * proto.data_fraction * proto.channel_efficiency
    sm_s = float(sm_bytes.max()) / (coll.channels * channel_bytes_per_s)
    if algo == "tree":
        latency_us = proto.tree_base_latency_us + steps * proto.tree_step_latency_us
    else:
        latency_us = proto.ring_base_latency_us + steps * proto.ring_step_latency_us
    # Pipeline fill and drain: every rank starts on its own data at once, the second step waits
    # for the first slice of the first (fill) and the last slice is consumed after it is sent
    # (drain): min(steps, 2) slice times. NCCL cuts a channel's chunk of a step into 2 slices,
    # so a slice is smaller when the chunk is.
    data_per_channel_step = max(float(data_sent.max()), float(data_recv.max())) / (coll.channels * steps)
    slice_ = min(proto.slice_bytes, data_per_channel_step / 2)
    ops_per_byte = float(sm_bytes.max()) / max(float(data_sent.max()), float(data_recv.max()))
    fill_s = min(steps, 2) * slice_ * ops_per_byte / channel_bytes_per_s
    return Plan(op, algo, protocol, ranks, nbytes, sent, received, reduce_flop=0.0, sm_s=sm_s,
                latency_s=(coll.launch_overhead_us + latency_us) * 1e-6 + fill_s, host_s=coll.host_issue_us * 1e-6,
                host_return_s=coll.host_return_us * 1e-6, link_efficiency=1.0,
                events=_events(busiest, coll.channels, coll.chunk_bytes), sms_used=coll.channels)


def _events(per_rank_bytes: float, channels: int, chunk_bytes: int) -> int:
    return int(min(MAX_EVENTS, max(1, math.ceil(per_rank_bytes / (channels * chunk_bytes)))))


def estimate_s(plan: Plan, fabric: Fabric) -> tuple[float, float, str]:
    """Uncontended (total time, transfer time, transfer bound) of a plan: the tuner's estimate and
    exactly what a lone collective simulates to."""
    link_s = float(max(plan.sent.max(), plan.received.max())) / (fabric.gpu_bytes_per_s * plan.link_efficiency)
    reduce_s = 0.0
    if plan.reduce_flop > 0:
        used = fabric.spray > 0
        reduce_s = float((plan.reduce_flop * fabric.spray[used] / fabric.reduce_flops[used]).max())
    terms = {"link": link_s, "sm": plan.sm_s, "switch_reduce": reduce_s}
    bound = max(terms, key=terms.get)
    transfer = terms[bound]
    return plan.host_s + max(plan.latency_s + transfer, plan.host_return_s), transfer, bound


def choose(system: SystemConfig, fabric: Fabric, op: str, nbytes: int, ranks: tuple[int, ...],
           algo: str | None = None, protocol: str | None = None, elem_bytes: int = 2
           ) -> tuple[Plan, dict[str, float]]:
    """The plan the tuner picks (fastest uncontended estimate) and every candidate's estimate."""
    if op not in OPS:
        raise BlackwellSimError(f"unknown collective op '{op}'; ops: {', '.join(OPS)}")
    if algo is not None and algo not in ALGOS[op]:
        raise BlackwellSimError(f"algorithm '{algo}' does not implement {op}; choose from "
                                f"{', '.join(ALGOS[op])}")
    if protocol is not None and protocol not in PROTOCOLS:
        raise BlackwellSimError(f"unknown protocol '{protocol}'; protocols: {', '.join(PROTOCOLS)}")
    pairs = _available(system, op, fabric.nvls, algo)
    if algo == "nvls" and ("nvls", "simple") not in pairs:
        raise BlackwellSimError(f"nvls needs NVLink SHARP: '{system.name}' has "
                                f"{'no switch' if fabric.kind == 'direct' else 'it disabled'}")
    pairs = [(a, p) for a, p in pairs if (algo is None or a == algo) and (protocol is None or p == protocol)]
    if not pairs:
        raise BlackwellSimError(f"no {op} algorithm with protocol '{protocol}' on '{system.name}'")
    best, table = None, {}
    for a, p in pairs:
        plan = _plan(system, fabric, op, nbytes, ranks, a, p, elem_bytes)
        t = estimate_s(plan, fabric)[0]
        table[f"{a}/{p}"] = t
        if best is None or t < best[0]:
            best = (t, plan)
    return best[1], table


def check_request(op: str, nbytes, dtype: str) -> int:
    if op not in OPS:
        raise BlackwellSimError(f"unknown collective op '{op}'; ops: {', '.join(OPS)}")
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float, np.integer)) or \
            not math.isfinite(nbytes) or nbytes <= 0 or int(nbytes) != nbytes:
        raise BlackwellSimError(f"{op}: bytes must be a positive whole number, got {nbytes!r}")
    if dtype not in ELEMENT_BYTES:
        raise BlackwellSimError(f"unknown dtype '{dtype}' for {op}; dtypes: {', '.join(ELEMENT_BYTES)}")
    return int(nbytes)


def plan_collective(system, op: str, bytes_: int, ranks=None, algo: str | None = None,
                    protocol: str | None = None, dtype: str = "bf16") -> tuple[Plan, float]:
    """What the tuner would run for this collective and its uncontended time, without simulating
    (the time a lone :func:`simulate_collective` returns)."""
    cfg = _system(system)
    nbytes = check_request(op, bytes_, dtype)
    fabric = Fabric(cfg)
    plan, _ = choose(cfg, fabric, op, nbytes, check_ranks(cfg, op, ranks), algo, protocol,
                     ELEMENT_BYTES[dtype])
    return plan, estimate_s(plan, fabric)[0]


def simulate_collective(system, op: str, bytes_: int, ranks=None, algo: str | None = None,
                        protocol: str | None = None, dtype: str = "bf16") -> CollectiveResult:
    """Simulate one collective alone on ``system`` (see the module docstring)."""
    from blackwell_sim.engine.system_run import System

    sim = System(system)
    proc = sim.collective(op, bytes_, ranks=ranks, algo=algo, protocol=protocol, dtype=dtype)
    sim.run()
    return proc.value
