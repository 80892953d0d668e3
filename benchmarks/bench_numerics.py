"""Speed of the numerics package: NVFP4 (and MX) quantization of an N x N fp32 matrix, next to one
``x.astype(ml_dtypes.float4_e2m1fn)`` pass over the same data (target: NVFP4 quantization within
3x of it) and a plain fp32 N x N x N matmul.

Run: ``python benchmarks/bench_numerics.py [--size 4096] [--repeats 5]``. Needs ml_dtypes (test
extra). Times are wall-clock via ``time.perf_counter``: one warm-up call, then the best and the
median of ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

TARGET_RATIO = 3.0


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(best, median) seconds over ``repeats`` calls after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples), statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    import ml_dtypes

    from blackwell_sim.numerics import quantize

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="matrix side N (default 4096)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per case (default 5)")
    args = parser.parse_args(argv)
    n = args.size
    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("ml_dtypes astype(float4_e2m1fn)", lambda: x.astype(ml_dtypes.float4_e2m1fn)),
        ("quantize nvfp4 (te, 1x16)", lambda: quantize(x, "nvfp4")),
        ("quantize nvfp4 + packed bytes", lambda: quantize(x, "nvfp4").packed),
        ("quantize nvfp4 16x16 tiles", lambda: quantize(x, "nvfp4", block_shape=(16, 16))),
        ("quantize nvfp4 axis=0", lambda: quantize(x, "nvfp4", axis=0)),
        ("quantize mxfp4 (floor)", lambda: quantize(x, "mxfp4")),
        ("quantize mxfp8_e4m3 (rceil)", lambda: quantize(x, "mxfp8_e4m3", scale_rule="rceil")),
        ("quantize nvfp4 stochastic", lambda: quantize(x, "nvfp4", rounding="sr", rng=0)),
        (f"fp32 matmul {n}^3", lambda: x @ x),
    ]
    results = {name: timed(fn, args.repeats) for name, fn in cases}
    baseline = results[cases[0][0]][0]

    print(f"numerics benchmark: {n}x{n} fp32, best/median of {args.repeats} "
          f"(numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}, {platform.processor() or platform.machine()})")
    print(f"{'case':<36} {'best ms':>10} {'median ms':>10} {'x cast':>8}")
    for name, (best, median) in results.items():
        print(f"{name:<36} {best * 1e3:>10.1f} {median * 1e3:>10.1f} {best / baseline:>8.2f}")
    ratio = results["quantize nvfp4 (te, 1x16)"][0] / baseline
    verdict = "within" if ratio <= TARGET_RATIO else "OUTSIDE"
    print(f"NVFP4 quantization / one ml_dtypes FP4 cast = {ratio:.2f} ({verdict} the {TARGET_RATIO:.0f}x target)")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
