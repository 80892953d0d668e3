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
Env: OUT (output folder, default /tmp).
"""
import gzip
import json
import os
import platform
import shutil
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.environ.get("OUT", "/tmp")
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
    import torch.distributed as dist
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29517", rank=0, world_size=1)
    dist_ok = True
except Exception as exc:  # the rest of the capture does not depend on it
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
        except Exception as exc:
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
