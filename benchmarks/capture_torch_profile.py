"""Capture a real PyTorch profiler trace of a small transformer training step (the importer's fixture).

What it runs (on one CUDA GPU, bf16): a 2-layer pre-norm decoder (hidden 1024, 16 heads, FFN 4096,
vocab 8192, batch 4, sequence 1024) with ``F.scaled_dot_product_attention`` (causal), forward, loss,
backward, a DDP-style ``all_reduce`` of the flattened gradients (NCCL, world size 1) and a fused
AdamW step; plus, outside autograd, one ``torch.bmm`` and one FP8 ``torch._scaled_mm`` so that the
importer sees every GEMM-family op it handles. Two untraced warm-up steps come first.

The step runs under ``torch.profiler.profile(activities=[CPU, CUDA], record_shapes=True)`` and the
Chrome-trace JSON it exports is gzipped to ``$OUT/torch_profile_small_transformer.json.gz``; the model
description, the versions and which optional parts ran go to ``$OUT/capture_meta.json``. The
fixture's test computes the expected GEMM / attention shapes from that description, not from the
importer.

Run: PYTHONUNBUFFERED=1 python3 benchmarks/capture_torch_profile.py   (needs torch with CUDA)
     ... capture_torch_profile.py --world 2   (one trace per rank with real NCCL collectives: a
     1-layer block (hidden 1024, 16 heads, FFN 4096, batch 2 x seq 512) forward/backward, then an
     all-reduce of the gradients, all-gather, reduce-scatter, all-to-all and broadcast of known
     sizes; $OUT/torch_profile_rank<r>.json.gz and $OUT/capture_ranks_meta.json)
Env: OUT (output folder, default /tmp).
"""
import gzip
import json
import os
import platform
import shutil
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

OUT = os.environ.get("OUT", "/tmp")

# ---- multi-rank capture (--world N): one trace per rank with real NCCL collectives ----------------
RANKS_CFG = {"hidden": 1024, "heads": 16, "ffn": 4096, "batch": 2, "seq": 512, "dtype": "bf16",
             "collective_elements": {"all_gather_in": 1 << 20, "reduce_scatter_in": 1 << 21,
                                     "all_to_all": 1 << 21, "broadcast": 1 << 20}}


class RankBlock(nn.Module):
    def __init__(self, h, heads, ffn):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(h, 3 * h, bias=False)
        self.proj = nn.Linear(h, h, bias=False)
        self.fc1 = nn.Linear(h, ffn, bias=False)
        self.fc2 = nn.Linear(ffn, h, bias=False)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = (t.view(b, s, self.heads, h // self.heads).transpose(1, 2) for t in self.qkv(x).split(h, -1))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, s, h)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(x)))


def rank_worker(rank, world, out):
    os.environ.update(NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29533", rank=rank, world_size=world)
    dev = torch.device("cuda", rank)
    torch.manual_seed(0)
    model = RankBlock(RANKS_CFG["hidden"], RANKS_CFG["heads"], RANKS_CFG["ffn"]).to(dev, torch.bfloat16)
    x = torch.randn(RANKS_CFG["batch"], RANKS_CFG["seq"], RANKS_CFG["hidden"], device=dev, dtype=torch.bfloat16)
    n = RANKS_CFG["collective_elements"]
    ag_in = torch.ones(n["all_gather_in"], device=dev, dtype=torch.bfloat16)
    ag_out = torch.empty(n["all_gather_in"] * world, device=dev, dtype=torch.bfloat16)
    rs_in = torch.ones(n["reduce_scatter_in"], device=dev, dtype=torch.bfloat16)
    rs_out = torch.empty(n["reduce_scatter_in"] // world, device=dev, dtype=torch.bfloat16)
    a2a_in = torch.ones(n["all_to_all"], device=dev, dtype=torch.bfloat16)
    a2a_out = torch.empty_like(a2a_in)
    bc = torch.ones(n["broadcast"], device=dev, dtype=torch.bfloat16)

    def step():
        model(x).float().square().mean().backward()
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        dist.all_reduce(flat)
        dist.all_gather_into_tensor(ag_out, ag_in)
        dist.reduce_scatter_tensor(rs_out, rs_in)
        dist.all_to_all_single(a2a_out, a2a_in)
        dist.broadcast(bc, src=0)
        model.zero_grad(set_to_none=True)
        return flat.numel()

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    dist.barrier()
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts, record_shapes=True) as prof:
        grads = step()
        torch.cuda.synchronize()
    raw = f"/tmp/torch_profile_rank{rank}.json"
    prof.export_chrome_trace(raw)
    with open(raw, "rb") as fin, gzip.GzipFile(os.path.join(out, f"torch_profile_rank{rank}.json.gz"), "wb",
                                               mtime=0) as fout:
        shutil.copyfileobj(fin, fout)
    if rank == 0:
        names = sorted({e.key for e in prof.key_averages() if e.key.startswith(("c10d::", "nccl:", "record_param"))})
        meta = {"config": RANKS_CFG, "world": world, "grad_elements": grads, "torch": torch.__version__,
                "nccl": ".".join(map(str, torch.cuda.nccl.version())), "device": torch.cuda.get_device_name(0),
                "comm_op_names": names}
        with open(os.path.join(out, "capture_ranks_meta.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        print(json.dumps(meta, indent=1, sort_keys=True), flush=True)
    dist.barrier()
    dist.destroy_process_group()


def capture_ranks(world: int) -> None:
    out = os.environ.get("OUT", "/tmp")
    os.makedirs(out, exist_ok=True)
    # fork (CUDA is not initialised in the parent yet): the children do not re-run this script
    mp.start_processes(rank_worker, args=(world, out), nprocs=world, join=True, start_method="fork")


if "--world" in sys.argv:
    capture_ranks(int(sys.argv[sys.argv.index("--world") + 1]))
    sys.exit(0)

# ---- single-GPU capture ----------------------------------------------------------------------------
os.makedirs(OUT, exist_ok=True)
CFG = {"layers": 2, "hidden": 1024, "heads": 16, "ffn": 4096, "vocab": 8192, "batch": 4, "seq": 1024,
       "dtype": "bf16", "causal": True,
       "linear_layers": {"qkv": [1024, 3072, False], "proj": [1024, 1024, True],
                         "fc1": [1024, 4096, True], "fc2": [4096, 1024, False]},
       "head": "torch.matmul(x[b,s,h], W[h,vocab]) (no bias)",
       "extras": {"bmm": [64, 1024, 64, 1024], "scaled_mm": [4096, 1024, 1024]}}
meta = {"config": CFG, "parts": {}}
t0 = time.perf_counter()


class Block(nn.Module):
    def __init__(self, h, heads, ffn):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(h)
        self.qkv = nn.Linear(h, 3 * h, bias=False)
        self.proj = nn.Linear(h, h, bias=True)
        self.norm2 = nn.LayerNorm(h)
        self.fc1 = nn.Linear(h, ffn, bias=True)
        self.fc2 = nn.Linear(ffn, h, bias=False)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(h, dim=-1)
        q, k, v = (t.view(b, s, self.heads, h // self.heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, h))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.emb = nn.Embedding(c["vocab"], c["hidden"])
        self.blocks = nn.ModuleList(Block(c["hidden"], c["heads"], c["ffn"]) for _ in range(c["layers"]))
        self.norm = nn.LayerNorm(c["hidden"])
        self.head_w = nn.Parameter(torch.randn(c["hidden"], c["vocab"]) * c["hidden"] ** -0.5)

    def forward(self, tokens):
        x = self.emb(tokens)
        for blk in self.blocks:
            x = blk(x)
        return torch.matmul(self.norm(x), self.head_w)


dev = torch.device("cuda")
torch.manual_seed(0)
model = Model(CFG).to(dev, torch.bfloat16)
params = [p for p in model.parameters()]
opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
tokens = torch.randint(0, CFG["vocab"], (CFG["batch"], CFG["seq"]), device=dev)
targets = torch.randint(0, CFG["vocab"], (CFG["batch"], CFG["seq"]), device=dev)

dist_ok = False
try:
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29517", rank=0, world_size=1)
    dist_ok = True
except Exception as exc:  # noqa: BLE001 (the rest of the capture does not depend on it)
    meta["parts"]["all_reduce_error"] = f"{type(exc).__name__}: {exc}"

x_bmm = torch.randn(64, 1024, 64, device=dev, dtype=torch.bfloat16)
y_bmm = torch.randn(64, 64, 1024, device=dev, dtype=torch.bfloat16)
a8 = torch.randn(4096, 1024, device=dev).to(torch.float8_e4m3fn)
w8 = torch.randn(1024, 1024, device=dev).to(torch.float8_e4m3fn)
one = torch.ones((), device=dev, dtype=torch.float32)


def step(trace_parts: bool):
    logits = model(tokens)
    loss = F.cross_entropy(logits.float().view(-1, CFG["vocab"]), targets.view(-1))
    loss.backward()
    if dist_ok:
        flat = torch.cat([p.grad.flatten() for p in params])
        dist.all_reduce(flat)
        meta["parts"]["all_reduce_elements"] = flat.numel()
    opt.step()
    opt.zero_grad(set_to_none=True)
    with torch.no_grad():
        torch.bmm(x_bmm, y_bmm)
        try:
            torch._scaled_mm(a8, w8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            if trace_parts:
                meta["parts"]["scaled_mm"] = True
        except Exception as exc:  # noqa: BLE001 (recorded in the meta file; the capture goes on)
            meta["parts"]["scaled_mm_error"] = f"{type(exc).__name__}: {exc}"


for _ in range(2):
    step(False)
torch.cuda.synchronize()

acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
with torch.profiler.profile(activities=acts, record_shapes=True) as prof:
    step(True)
    torch.cuda.synchronize()
raw = os.path.join("/tmp", "torch_profile_small_transformer.json")
prof.export_chrome_trace(raw)
dst = os.path.join(OUT, "torch_profile_small_transformer.json.gz")
with open(raw, "rb") as fin, gzip.GzipFile(dst, "wb", mtime=0) as fout:
    shutil.copyfileobj(fin, fout)

names = {}
for e in prof.key_averages():
    if e.key.startswith(("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear",
                         "aten::_scaled", "aten::scaled_dot", "c10d::", "nccl:")):
        names[e.key] = e.count
meta.update({"torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0),
             "python": platform.python_version(), "op_counts": names,
             "raw_bytes": os.path.getsize(raw), "gz_bytes": os.path.getsize(dst),
             "wall_s": round(time.perf_counter() - t0, 2)})
with open(os.path.join(OUT, "capture_meta.json"), "w") as f:
    json.dump(meta, f, indent=1, sort_keys=True)
print(json.dumps(meta, indent=1, sort_keys=True))
if dist_ok:
    dist.destroy_process_group()
