"""Speed of the functional GEMM: ``qgemm`` fast mode vs plain fp32 matmul, and exact mode.

Run: ``python benchmarks/bench_qgemm.py [--size 2048] [--exact-size 256] [--repeat 3]``.
Prints one line per case (best of ``--repeat`` wall-clock runs).  Quantization time is not
included in the GEMM timings (it is printed separately).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from blackwell_sim.numerics.gemm import qgemm
from blackwell_sim.numerics.quantize import quantize


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="M = N = K of the fast-mode case")
    parser.add_argument("--exact-size", type=int, default=256,
                        help="M = N of the exact-mode cases (K = 4 * this)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.size
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs")

    x = rng.standard_normal((n, n), dtype=np.float32)
    w = rng.standard_normal((n, n), dtype=np.float32)
    t0 = time.perf_counter()
    qa, qb = quantize(x, "mxfp4"), quantize(w, "mxfp4")
    print(f"quantize 2 x {n}x{n} to mxfp4: {time.perf_counter() - t0:.3f} s")
    t_mm = best_time(lambda: np.matmul(x, w.T), args.repeat)
    t_fast = best_time(lambda: qgemm(qa, qb, mode="fast"), args.repeat)
    print(f"np.matmul fp32 {n}^3:            {t_mm:.3f} s")
    print(f"qgemm mxfp4 fast {n}^3:          {t_fast:.3f} s  ({t_fast / t_mm:.2f}x matmul)")

    m, k = args.exact_size, 4 * args.exact_size
    xs = rng.standard_normal((m, k), dtype=np.float32)
    ws = rng.standard_normal((m, k), dtype=np.float32)
    for fmt in ("mxfp4", "nvfp4", "mxfp8_e4m3"):
        qa, qb = quantize(xs, fmt), quantize(ws, fmt)
        t_fast = best_time(lambda: qgemm(qa, qb, mode="fast"), args.repeat)
        t_exact = best_time(lambda: qgemm(qa, qb, mode="exact"), 1)
        rate = m * m * k / t_exact / 1e6
        print(f"qgemm {fmt:11s} {m}x{m}x{k}: fast {t_fast * 1e3:8.1f} ms, exact "
              f"{t_exact:7.3f} s ({rate:.1f} M MAC/s)")


if __name__ == "__main__":
    main()
