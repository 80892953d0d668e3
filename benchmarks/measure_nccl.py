"""Measure NCCL collectives across the GPUs of one host (torchrun, one process a GPU).

Extends shared/tools/measure_nccl.py: also reduce-scatter and all-to-all, and for every row the
time of the same call replayed from a CUDA graph (``graph_s``: ten calls captured back to back,
replay time / 10), which removes the host dispatch that the per-call ``median_s`` includes.
NVLink multicast stays off (NCCL_NVLS_ENABLE=0), as the lent machines require.

Run: NCCL_NVLS_ENABLE=0 torchrun --nproc_per_node=2 benchmarks/measure_nccl.py  (writes
$OUT/nccl_world2.jsonl; rows in the format of shared/data/hopper/, read by `blackwell-sim validate`).
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

dist.init_process_group("nccl")
rank, world = dist.get_rank(), dist.get_world_size()
torch.cuda.set_device(rank)
dev = torch.device("cuda", rank)
GRAPH_CALLS = 10


def per_call(fn, reps):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    dist.barrier()
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


def graphed(fn, reps):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(GRAPH_CALLS):
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
        ts.append(s.elapsed_time(e) * 1e-3 / GRAPH_CALLS)
    del g
    return statistics.median(ts)


def agreed(t):
    v = torch.tensor([t], device=dev)
    dist.all_reduce(v, op=dist.ReduceOp.MAX)
    return v.item()


def collectives(x, shard, full, y):
    return {"all_reduce": lambda: dist.all_reduce(x),
            "all_gather": lambda: dist.all_gather_into_tensor(full, shard),
            "reduce_scatter": lambda: dist.reduce_scatter_tensor(shard, x),
            "all_to_all": lambda: dist.all_to_all_single(y, x)}


rows = []
if rank == 0:
    topo = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True).stdout
    rows.append({"kind": "env", "name": torch.cuda.get_device_name(0), "world": world,
                 "nccl": ".".join(map(str, torch.cuda.nccl.version())), "torch": torch.__version__,
                 "topo": topo.strip().splitlines()[:world + 1]})

graph_ok = True
for log2 in range(10, 31):
    nbytes = 2 ** log2
    n = nbytes // 2  # bf16 elements
    x = torch.randn(n, device=dev, dtype=torch.bfloat16)
    shard = torch.randn(n // world, device=dev, dtype=torch.bfloat16)
    full = torch.empty(n, device=dev, dtype=torch.bfloat16)
    y = torch.empty_like(x)
    ops = collectives(x, shard, full, y)
    factor = {"all_reduce": 2 * (world - 1) / world}
    reps = 50 if nbytes < 2**26 else 20
    for kind, fn in ops.items():
        t = agreed(per_call(fn, reps))
        row = {"kind": kind, "bytes": nbytes, "world": world, "dtype": "bf16", "median_s": t,
               "algbw_gbps": nbytes / t / 1e9,
               "busbw_gbps": nbytes / t / 1e9 * factor.get(kind, (world - 1) / world)}
        if graph_ok:
            try:
                row["graph_s"] = agreed(graphed(fn, max(5, reps // 5)))
            except Exception as exc:  # graph capture unsupported: keep the per-call rows
                graph_ok = False
                if rank == 0:
                    print("graph capture failed:", repr(exc)[:200], flush=True)
        rows.append(row)
        if rank == 0:
            print(json.dumps(row), flush=True)
    del x, shard, full, y, ops
    torch.cuda.empty_cache()

if rank == 0:
    with open(os.path.join(os.environ.get("OUT", "/tmp"), f"nccl_world{world}.jsonl"), "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
dist.barrier()
dist.destroy_process_group()
