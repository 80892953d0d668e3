"""Multi-GPU execution: the GPUs of a system, their streams and the fabric in one simpy environment.

API (used by ``simulate_collective`` and the trace replayer)::

    sim = System("hgx-h100-8")                      # or a SystemConfig; host="async" hides host time
    ar = sim.collective("all_reduce", 256 << 20, ranks=range(8))          # stream "comm"
    mm = sim.compute(0, 120e-6, name="gemm")                             # stream "compute"
    cp = sim.copy(0, 1, 64 << 20, after=[ar])                            # send/recv, after ar
    sim.run()                                        # -> simulated seconds
    ar.value                                         # CollectiveResult
    sim.timeline()                                   # pandas DataFrame, one row per op

Every op is a simpy process. It waits for the processes in ``after``, then holds its stream on
each of its ranks (a stream runs one op at a time, in issue order; different streams overlap,
like CUDA streams), runs, and releases. A collective or copy is a host call: it starts its kernel
``host_issue_us`` after it gets its streams and holds them until the later of the kernel's end and
the call's return (``host_issue_us + host_return_us``), as a call timed alone with events does. Collectives and copies move their bytes over the shared
:class:`~blackwell_sim.engine.fabric.Fabric`, so concurrent communication divides link bandwidth.
While a collective kernel runs it occupies ``sms_used`` SMs on each of its GPUs; a compute op that
starts meanwhile runs on the remaining SMs: its duration is scaled by
``sm.count / (sm.count - busy SMs)`` (a kernel that fills the GPU, with work proportional to SMs),
evaluated when it starts, like link shares. Link shares are set once every transfer starting at
the same instant has joined, so two identical collectives issued together each get half.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import simpy

from blackwell_sim.config import SystemConfig
from blackwell_sim.engine.fabric import Fabric
from blackwell_sim.engine.kernels import collectives as coll
from blackwell_sim.errors import BlackwellSimError


class System:
    """One simpy environment holding a system's fabric and per-GPU streams."""

    def __init__(self, config, host: str = "per_call") -> None:
        """``host="per_call"``: every collective pays its host issue and return times, as calls
        timed one at a time do; ``"async"``: the host runs ahead (a training loop without
        synchronisation, CUDA graphs), so streams see only the kernels."""
        if host not in ("per_call", "async"):
            raise BlackwellSimError(f"System: host must be 'per_call' or 'async', got {host!r}")
        self.host = host
        self.config: SystemConfig = coll._system(config)
        self.env = simpy.Environment()
        self.fabric = Fabric(self.config)
        self.sms_busy = np.zeros(self.config.gpu_count, dtype=np.int64)
        self._streams: dict[tuple[int, str], simpy.Resource] = {}
        self._records: list[dict] = []

    # ---- ops -----------------------------------------------------------------------------------
    def collective(self, op: str, bytes_: int, ranks: Iterable[int] | None = None, algo: str | None = None,
                   protocol: str | None = None, dtype: str = "bf16", stream: str = "comm",
                   after: Iterable[simpy.Process] = (), name: str | None = None) -> simpy.Process:
        """Issue a collective over ``ranks`` (default all GPUs); the process's value is its
        :class:`~blackwell_sim.engine.kernels.collectives.CollectiveResult`."""
        nbytes = coll.check_request(op, bytes_, dtype)
        ranks_t = coll.check_ranks(self.config, op, ranks)
        plan, table = coll.choose(self.config, self.fabric, op, nbytes, ranks_t, algo, protocol,
                                  coll.ELEMENT_BYTES[dtype])
        return self.env.process(self._run_collective(plan, table, stream, list(after), name or op))

    def copy(self, src: int, dst: int, bytes_: int, stream: str = "comm",
             after: Iterable[simpy.Process] = (), name: str | None = None) -> simpy.Process:
        """A point-to-point copy (send/recv) from GPU ``src`` to GPU ``dst``."""
        return self.collective("send_recv", bytes_, ranks=(src, dst), stream=stream, after=after,
                               name=name or f"copy {src}->{dst}")

    def compute(self, rank: int, seconds: float | Callable[[], float], stream: str = "compute",
                after: Iterable[simpy.Process] = (), name: str = "compute") -> simpy.Process:
        """Hold ``stream`` on GPU ``rank`` for ``seconds`` (or ``seconds()``, called at start) of
        whole-GPU work, stretched by the SMs a running collective occupies. ``after`` holds
        processes or simpy events to wait for. Value: (start, end)."""
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < self.config.gpu_count:
            raise BlackwellSimError(f"compute: rank must be a GPU index in 0..{self.config.gpu_count - 1}, "
                                    f"got {rank!r}")
        return self.env.process(self._run_compute(int(rank), seconds, stream, list(after), name))

    def run(self, until: float | None = None) -> float:
        """Run until every issued op has finished (or ``until`` seconds); returns the time."""
        self.env.run(until=until)
        return self.env.now

    def timeline(self) -> pd.DataFrame:
        """One row per finished op: name, kind, ranks, stream, start_s, end_s (plus algo for comm)."""
        return pd.DataFrame(self._records, columns=["name", "kind", "ranks", "stream", "start_s",
                                                    "end_s", "algo"])

    # ---- processes ------------------------------------------------------------------------------
    def _stream(self, rank: int, stream: str) -> simpy.Resource:
        key = (rank, stream)
        if key not in self._streams:
            self._streams[key] = simpy.Resource(self.env, capacity=1)
        return self._streams[key]

    def _acquire(self, ranks, stream):
        """Request the stream on every rank in rank order (a fixed order cannot deadlock)."""
        held = []
        for rank in sorted(ranks):
            res = self._stream(rank, stream)
            req = res.request()
            yield req
            held.append((res, req))
        return held

    def _run_compute(self, rank, seconds, stream, after, name):
        if after:
            yield self.env.all_of(after)
        held = yield from self._acquire([rank], stream)
        start = self.env.now
        duration = seconds() if callable(seconds) else seconds
        if not isinstance(duration, (int, float)) or not duration >= 0 or not np.isfinite(duration):
            raise BlackwellSimError(f"compute '{name}': seconds must be a non-negative number, got {duration!r}")
        sms = self.config.gpu.sm.count
        free = max(sms - int(self.sms_busy[rank]), 1)
        yield self.env.timeout(duration * sms / free)
        for res, req in held:
            res.release(req)
        self._records.append({"name": name, "kind": "compute", "ranks": [rank], "stream": stream,
                              "start_s": start, "end_s": self.env.now, "algo": None})
        return start, self.env.now

    def _run_collective(self, plan: coll.Plan, table: dict, stream: str, after, name: str):
        env = self.env
        if after:
            yield env.all_of(after)
        held = yield from self._acquire(plan.ranks, stream)
        start = env.now
        host_s, host_return_s = (plan.host_s, plan.host_return_s) if self.host == "per_call" else (0.0, 0.0)
        yield env.timeout(host_s)
        idx = np.array(plan.ranks)
        self.sms_busy[idx] += plan.sms_used
        yield env.timeout(plan.latency_s)
        events = plan.events
        traffic = self.fabric.route(plan.sent / events, plan.received / events, plan.reduce_flop / events)
        sm_event_s = plan.sm_s / events
        spent: Counter[str] = Counter()
        for _ in range(events):
            self.fabric.join(traffic)
            yield env.timeout(0)  # let transfers starting at this instant join before shares are set
            t, why = self.fabric.seconds_for(traffic, plan.link_efficiency)
            if sm_event_s > t:
                t, why = sm_event_s, "sm"
            yield env.timeout(t)
            self.fabric.leave(traffic)
            spent[why] += t
        self.sms_busy[idx] -= plan.sms_used
        kernel_end = env.now
        if env.now < start + host_s + host_return_s:   # the call has not returned yet
            yield env.timeout(start + host_s + host_return_s - env.now)
        for res, req in held:
            res.release(req)
        end = env.now
        self._records.append({"name": name, "kind": plan.op, "ranks": list(plan.ranks), "stream": stream,
                              "start_s": start, "end_s": end, "algo": plan.algo})
        return _result(plan, table, start, end, kernel_end - start - host_s, spent, self.fabric)


def _result(plan: coll.Plan, table: dict, start: float, end: float, kernel_s: float, spent: Counter,
            fabric: Fabric) -> coll.CollectiveResult:
    time_s = end - start
    transfer_s = sum(spent.values())
    w = plan.world
    algbw = plan.nbytes / time_s / 1e9
    terms = {"host": time_s - kernel_s, "latency": plan.latency_s, **spent}
    up, down = fabric.link_classes
    link_bytes = ({up: float(plan.sent.sum())} if up == down else
                  {up: float(plan.sent.sum()), down: float(plan.received.sum())})
    return coll.CollectiveResult(
        op=plan.op, bytes=plan.nbytes, world=w, ranks=list(plan.ranks), algo=plan.algo,
        protocol=plan.protocol, time_s=time_s, algbw_gbps=algbw,
        busbw_gbps=algbw * coll.BUSBW_FACTOR[plan.op](w), bound=max(terms, key=terms.get),
        kernel_s=kernel_s, host_overhead_s=time_s - kernel_s, latency_s=plan.latency_s, transfer_s=transfer_s,
        link_bytes=link_bytes, sms_used=plan.sms_used, events=plan.events, candidates=table)
