"""L2 -> SM read bandwidth when many SMs read the same lines at once, vs distinct lines.

A Triton kernel with one program per SM streams ``PASSES`` times over an L2-resident panel with
L2-only loads (``.cg``), so every byte crosses the L2 -> SM path:

- ``distinct``: each program has its own panel (all panels together fit in L2);
- ``shared``: all programs read the same panel in the same order, starting together (the pattern
  of a skinny-M GEMM, where every CTA of a column reads the same A rows);
- ``shared_staggered``: the same panel, each program starting at its own offset;
- ``groups_of_N``: programs in groups of N share a panel.

Reports bytes moved / kernel time. Writes $OUT/h100_l2_sharing.jsonl.

    OUT=/tmp python benchmarks/measure_h100_l2_sharing.py
"""

import json
import statistics

import torch
import triton
import triton.language as tl

from measure_h100_order import write_rows

PANEL_BYTES = 192 * 1024          # one program's panel (fits the L2 many times over)
CHUNK = 4096                      # fp32 elements per load (16 KiB)
PASSES = 24


@triton.jit
def stream(src, out, panel_elems, group, stagger, passes, CHUNK: tl.constexpr):
    pid = tl.program_id(0)
    base = (pid // group) * panel_elems
    chunks = panel_elems // CHUNK
    start = (pid % chunks) * stagger
    offs = tl.arange(0, CHUNK)
    acc = tl.zeros([CHUNK], dtype=tl.float32)
    for it in range(passes * chunks):
        c = (it + start) % chunks
        acc += tl.load(src + base + c * CHUNK + offs, cache_modifier=".cg")
    tl.store(out + pid * CHUNK + offs, acc)


def run(programs, group, stagger):
    panel = PANEL_BYTES // 4
    panels = (programs + group - 1) // group
    src = torch.randn(panels * panel, device="cuda")
    out = torch.empty(programs * CHUNK, device="cuda")
    args = (src, out, panel, group, stagger, PASSES)
    stream[(programs,)](*args, CHUNK=CHUNK)
    torch.cuda.synchronize()
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); stream[(programs,)](*args, CHUNK=CHUNK); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e) * 1e-3)
    t = statistics.median(times)
    moved = programs * PASSES * PANEL_BYTES
    return dict(kind="l2_read", programs=programs, group=group, stagger=bool(stagger), panel_bytes=PANEL_BYTES,
                passes=PASSES, median_s=t, tbps=moved / t / 1e12)


def main():
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    rows = [dict(kind="env", name=torch.cuda.get_device_name(0), sms=sms, torch=torch.__version__,
                 triton=triton.__version__)]
    for programs in (sms, 2 * sms):
        for group, stagger in ((1, 0), (programs, 0), (programs, 1), (2, 0), (8, 0), (32, 0)):
            rows.append(run(programs, group, stagger))
            print(json.dumps(rows[-1]), flush=True)
    write_rows(rows, "h100_l2_sharing.jsonl")


if __name__ == "__main__":
    main()
