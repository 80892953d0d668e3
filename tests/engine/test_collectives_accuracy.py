"""Accuracy against real measurements (2x H200, ours) and public nccl-tests results (8-GPU HGX H100,
GB200 NVL72); sources in docs/validation.md "Collectives"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from blackwell_sim import load_config
from blackwell_sim.engine.kernels.collectives import simulate_collective
from blackwell_sim.validate import validate

from conftest import hopper_file

NCCL_FILE = hopper_file("h200x2_nvlink_nccl.jsonl")
GIB = 2**30


def _rows():
    return [json.loads(line) for line in NCCL_FILE.read_text().splitlines() if line.strip()]


def test_h200x2_nccl_mape_per_collective_and_size_class():
    cfg = load_config("h200x2-nvlink")
    errors: dict[tuple[str, bool], list[float]] = {}
    for row in _rows():
        r = simulate_collective(cfg, row["kind"], row["bytes"], ranks=range(row["world"]))
        errors.setdefault((row["kind"], row["bytes"] >= 2**20), []).append(abs(r.time_s / row["median_s"] - 1))
    assert {kind for kind, _ in errors} == {"all_reduce", "all_gather"}
    for (kind, large), errs in errors.items():
        limit = 0.10 if large else 0.25
        assert np.mean(errs) <= limit, (kind, large, np.mean(errs))


def test_h200x2_floor_and_plateau_match():
    """The small-message floor (the fastest time below 1 MiB: host + protocol latency) and the
    2 GiB plateau, each within 10%. (Rows of 8-64 KiB sit ~15 us above the floor in both kinds;
    the model has no mechanism for that bump: see docs/validation.md.)"""
    cfg = load_config("h200x2-nvlink")
    rows = {(r["kind"], r["bytes"]): r for r in _rows()}
    for kind in ("all_reduce", "all_gather"):
        floor = min(rows[(kind, 2**k)]["median_s"] for k in range(10, 20))
        predicted_floor = simulate_collective(cfg, kind, 4096).time_s
        assert predicted_floor == pytest.approx(floor, rel=0.10)
        big = rows[(kind, 2 * GIB)]
        predicted = simulate_collective(cfg, kind, 2 * GIB)
        assert predicted.busbw_gbps == pytest.approx(big["busbw_gbps"], rel=0.10)


def test_validate_predicts_every_nccl_row_on_the_system_preset():
    _rows()
    report = validate(NCCL_FILE, load_config("h200x2-nvlink"))
    assert not report["skipped"] and len(report["rows"]) == len(_rows())
    gpu_only = validate(NCCL_FILE, load_config("h200"))
    assert not gpu_only["rows"] and "need a system preset" in gpu_only["skipped"][0]["reason"]


@pytest.mark.parametrize("nbytes", [GIB, 2 * GIB, 4 * GIB, 8 * GIB])
def test_hgx_h100_all_reduce_busbw_classes(nbytes):
    """Public: NVLS ~480 GB/s busbw on 8 H100 (NVIDIA/nccl 1455, nccl-tests 212); ring 365-370."""
    hgx = load_config("hgx-h100-8")
    nvls = simulate_collective(hgx, "all_reduce", nbytes)
    ring = simulate_collective(hgx, "all_reduce", nbytes, algo="ring")
    assert nvls.algo == "nvls" and 450 <= nvls.busbw_gbps <= 485
    assert 330 <= ring.busbw_gbps <= 370


def test_gb200_nvl72_all_reduce_busbw_in_the_public_range_and_rising():
    """Public 72-GPU nccl-tests (fp32, coreweave/nccl-tests PR 43): busbw 681, 758, 839, 835 GB/s at
    1, 2, 4, 8 GiB; link limit 900 GB/s per direction."""
    nvl = load_config("gb200-nvl72")
    busbw = [simulate_collective(nvl, "all_reduce", n * GIB, dtype="fp32").busbw_gbps for n in (1, 2, 4, 8)]
    assert all(600 <= b <= 850 for b in busbw), busbw
    assert busbw == sorted(busbw)


HELD_OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "h200x2_nccl_2026-11-26.jsonl"


def _second_session():
    return [json.loads(line) for line in HELD_OUT.read_text().splitlines()
            if line.strip() and json.loads(line)["kind"] != "env"]


def test_gpu_time_of_all_four_collectives_on_the_second_2xh200_session():
    """CUDA-graph times (no host): reduce-scatter and all-to-all were never fitted; LL128's channel
    efficiency came from the 4-64 MiB rows of this file."""
    cfg = load_config("h200x2-nvlink")
    errors: dict[tuple[str, bool], list[float]] = {}
    for row in _second_session():
        r = simulate_collective(cfg, row["kind"], row["bytes"], ranks=range(row["world"]))
        errors.setdefault((row["kind"], row["bytes"] >= 2**20), []).append(abs(r.kernel_s / row["graph_s"] - 1))
    assert len(errors) == 8
    for (kind, large), errs in errors.items():
        assert np.mean(errs) <= (0.12 if large else 0.20), (kind, large, np.mean(errs))


def test_per_call_times_follow_once_the_host_of_that_session_is_set():
    """That session's host took ~60 us per call (the shared file's ~35 us): only the two host
    parameters change."""
    cfg = load_config("h200x2-nvlink", overrides={"fabric.collective.host_issue_us": 45,
                                                  "fabric.collective.host_return_us": 18})
    errors: dict[str, list[float]] = {}
    for row in _second_session():
        r = simulate_collective(cfg, row["kind"], row["bytes"], ranks=range(row["world"]))
        errors.setdefault(row["kind"], []).append(abs(r.time_s / row["median_s"] - 1))
    for kind, errs in errors.items():
        assert np.mean(errs) <= 0.10, (kind, np.mean(errs))
