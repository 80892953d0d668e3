"""Measure NCCL collectives on every GPU of one NVSwitch host, plus sub-groups (torchrun, one
process a GPU). Extends benchmarks/measure_nccl.py (same row format and timing method).

Per row two times: ``median_s`` (events around one call, synchronize after each: includes the
host's dispatch) and ``graph_s`` (``graph_calls`` calls captured in one CUDA graph, replay time /
graph_calls: GPU time only). Data: bf16 random normal.

MEASURE_MODE (environment):
  main    all_reduce, all_gather, reduce_scatter, all_to_all on all GPUs, 1 KiB..MAX by 2x; then
          all_reduce on sub-groups: pair (0,1) alone, pair (0,2) alone, pairs (0,1) and (2,3) at
          once (``concurrent``), triple (0,1,2) alone; sizes by 4x.
  algo    all_reduce on all GPUs only, 1 KiB..MAX by 2x; rows carry ``nccl_algo`` / ``nccl_proto``
          from the environment (NCCL_ALGO, NCCL_PROTO set by the caller).
  tuning  one untimed call per op and size (all GPUs and pair (0,1)), for NCCL_DEBUG=INFO
          NCCL_DEBUG_SUBSYS=TUNING to log NCCL's algorithm / protocol / channel choice.
Rows are appended to $OUT/nccl_<tag>.jsonl as they are measured (a timeout keeps what was done).
NVLink multicast stays off (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1,
NVSHMEM_DISABLE_NVLS=1), as the lent machines require: every row has ``nvls: false``.

The 2026-11-26 run (benchmarks/data/h200x4_nccl*_2026-11-26.*, one device call, ~110 s):

    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    T="torchrun --standalone --nproc_per_node=4"; S=benchmarks/measure_nccl_x4.py
    timeout 170 $T $S                                   # main -> $OUT/nccl_main.jsonl
    NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,GRAPH,TUNING NCCL_DEBUG_FILE=/tmp/nd/n.%h.%p \
        MEASURE_MODE=tuning timeout 45 $T $S
    for a in Ring Tree; do NCCL_ALGO=$a MEASURE_MODE=algo MEASURE_TAG=algo MEASURE_MAX_LOG2=30 \
        timeout 50 $T $S; done
    for p in LL LL128 Simple; do NCCL_ALGO=Ring NCCL_PROTO=$p MEASURE_MODE=algo MEASURE_TAG=algo \
        MEASURE_MAX_LOG2=30 timeout 50 $T $S; done
"""
import json
import os
import statistics
import subprocess

os.environ["NCCL_NVLS_ENABLE"] = "0"
os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
os.environ["NVSHMEM_DISABLE_NVLS"] = "1"

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

MODE = os.environ.get("MEASURE_MODE", "main")
TAG = os.environ.get("MEASURE_TAG", MODE)
MAX_LOG2 = int(os.environ.get("MEASURE_MAX_LOG2", "32"))
dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
torch.cuda.set_device(rank)
dev = torch.device("cuda", rank)
OUT = os.environ.get("OUT", "/tmp")
PATH = os.path.join(OUT, f"nccl_{TAG}.jsonl")
EXTRA = {"nvls": False}
for var, key in (("NCCL_ALGO", "nccl_algo"), ("NCCL_PROTO", "nccl_proto")):
    if os.environ.get(var):
        EXTRA[key] = os.environ[var]


def emit(row):
    if rank == 0:
        row = {**row, **EXTRA}
        with open(PATH, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def reps_for(nbytes):
    if nbytes < 2**24:
        return 50, 10
    if nbytes < 2**28:
        return 20, 10
    return 10, 3


def per_call(fn, reps, active=True):
    """Median time of one call (events around it, synchronize after each); every rank joins the
    barrier, ranks outside the measured group (``active`` False) only that."""
    for _ in range(5 if active else 0):
        fn()
    torch.cuda.synchronize()
    dist.barrier()
    if not active:
        return 0.0
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e-3)
    return statistics.median(ts)


def graphed(fn, reps, calls):
    """Median time of one call replayed from a CUDA graph of ``calls`` calls (GPU time only)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    g.replay()
    torch.cuda.synchronize()
    dist.barrier()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        g.replay()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e-3 / calls)
    del g
    return statistics.median(ts)


def agreed(t):
    """Slowest rank's time (every rank calls this, also ranks that idled)."""
    v = torch.tensor([t], device=dev)
    dist.all_reduce(v, op=dist.ReduceOp.MAX)
    return v.item()


def busbw(kind, w, algbw):
    return algbw * (2 * (w - 1) / w if kind == "all_reduce" else (w - 1) / w)


graph_ok = True


def measure(kind, fn, nbytes, w, extra, active=True):
    """Time fn on this rank if active; every rank joins the agreement."""
    global graph_ok
    reps, calls = reps_for(nbytes)
    t = agreed(per_call(fn, reps, active))
    row = {"kind": kind, "bytes": nbytes, "world": w, "dtype": "bf16", "median_s": t,
           "algbw_gbps": nbytes / t / 1e9, "busbw_gbps": busbw(kind, w, nbytes / t / 1e9), **extra}
    ok = torch.tensor([1.0 if graph_ok else 0.0], device=dev)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if ok.item() > 0:
        g, err = 0.0, 0.0
        try:
            g = graphed(fn, max(5, reps // 5), calls) if active else 0.0
        except Exception as exc:  # graph capture unsupported: keep the per-call rows
            err = 1.0
            print("graph capture failed:", repr(exc)[:200], flush=True)
        if not active:
            torch.cuda.synchronize()
            dist.barrier()
        e = torch.tensor([err], device=dev)
        dist.all_reduce(e, op=dist.ReduceOp.MAX)
        if e.item() > 0:
            graph_ok = False
        else:
            row["graph_s"] = agreed(g)
            row["graph_calls"] = calls
    emit(row)


def buffers(nbytes, w):
    n = nbytes // 2
    x = torch.randn(n, device=dev, dtype=torch.bfloat16)
    shard = torch.randn(n // w, device=dev, dtype=torch.bfloat16)
    full = torch.empty(n, device=dev, dtype=torch.bfloat16)
    y = torch.empty_like(x)
    return x, shard, full, y


def full_world(kinds, step):
    for log2 in range(10, MAX_LOG2 + 1, step):
        nbytes = 2 ** log2
        x, shard, full, y = buffers(nbytes, world)
        ops = {"all_reduce": lambda: dist.all_reduce(x),
               "all_gather": lambda: dist.all_gather_into_tensor(full, shard),
               "reduce_scatter": lambda: dist.reduce_scatter_tensor(shard, x),
               "all_to_all": lambda: dist.all_to_all_single(y, x)}
        for kind in kinds:
            if MODE == "tuning":
                ops[kind]()
                torch.cuda.synchronize()
            else:
                measure(kind, ops[kind], nbytes, world, {"ranks": list(range(world))})
        del x, shard, full, y, ops
        torch.cuda.empty_cache()


def sub_groups():
    # every rank must create every group, in the same order
    layouts = [("pair01", [[0, 1]]), ("pair02", [[0, 2]]), ("pairs01_23", [[0, 1], [2, 3]]),
               ("triple012", [[0, 1, 2]])]
    if world < 4:
        layouts = [lay for lay in layouts if max(max(g) for g in lay[1]) < world]
    made = {}
    for _, groups in layouts:
        for g in groups:
            if tuple(g) not in made:
                made[tuple(g)] = dist.new_group(g)
    for name, groups in layouts:
        mine = next((g for g in groups if rank in g), None)
        for log2 in range(10, MAX_LOG2 + 1, 2):
            nbytes = 2 ** log2
            x = torch.randn(nbytes // 2, device=dev, dtype=torch.bfloat16)
            pg = made[tuple(mine)] if mine else None
            extra = {"ranks": groups[0], "layout": name}
            if len(groups) > 1:
                extra["concurrent"] = groups
            measure("all_reduce", lambda: dist.all_reduce(x, group=pg), nbytes, len(groups[0]), extra,
                    active=mine is not None)
            del x
            torch.cuda.empty_cache()


if rank == 0 and MODE == "main":
    smi = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True).stdout
    emit({"kind": "env", "name": torch.cuda.get_device_name(0), "world": world,
          "nccl": ".".join(map(str, torch.cuda.nccl.version())), "torch": torch.__version__,
          "topo": smi.strip().splitlines()[:world + 1],
          "env": {k: os.environ.get(k) for k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST",
                                                 "NVSHMEM_DISABLE_NVLS", "NCCL_ALGO", "NCCL_PROTO")}})

ALL = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
if MODE == "main":
    full_world(ALL, 1)
    sub_groups()
elif MODE == "algo":
    full_world(("all_reduce",), 1)
elif MODE == "tuning":
    full_world(ALL, 1)
    pg = dist.new_group([0, 1])
    for log2 in range(10, MAX_LOG2 + 1, 2):
        x = torch.randn(2 ** log2 // 2, device=dev, dtype=torch.bfloat16)
        if rank < 2:
            dist.all_reduce(x, group=pg)
        torch.cuda.synchronize()
        dist.barrier()
        del x
dist.barrier()
dist.destroy_process_group()
