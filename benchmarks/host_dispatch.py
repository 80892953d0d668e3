"""Host dispatch latency per PyTorch call, from our H100 rows: median_s - median_s_queued.

``median_s`` starts its event on an idle GPU, so it includes the host's time to dispatch the call;
``median_s_queued`` queues the call behind a sleep kernel, so it does not. Their difference, per
API, is the number blackwell_sim/harness.py uses (rows with a GPU time under 1 ms; longer ones are
dominated by run-to-run noise). Run: python benchmarks/host_dispatch.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

DATA = Path(__file__).parent / "data"


def api_of(row: dict) -> str:
    if row["kind"] != "gemm":
        return row["kind"]
    if row.get("batch", 1) > 1:
        return "bmm"
    return {"tf32": "matmul_tf32", "fp8_e4m3": "scaled_mm"}.get(row["dtype"], "matmul")


def main() -> None:
    groups: dict[str, list[float]] = {}
    for path in sorted(DATA.glob("h100_sxm_extra*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "median_s_queued" in row and row["median_s_queued"] < 1e-3:
                groups.setdefault(api_of(row), []).append((row["median_s"] - row["median_s_queued"]) * 1e6)
    for api, values in sorted(groups.items()):
        print(f"{api:<12} n={len(values):>3}  median {statistics.median(values):5.1f} us")


if __name__ == "__main__":
    main()
