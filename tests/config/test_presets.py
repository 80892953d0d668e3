"""Every preset loads, and the derived peaks reproduce the datasheets within 1%."""

from __future__ import annotations

import pytest

from blackwell_sim import ConfigError, GPUConfig, SystemConfig, list_presets, load_config

REQUIRED = {"b200", "gb200", "b300", "h100-sxm", "h200", "hgx-h100-8", "hgx-b200-8", "gb200-nvl72"}


def test_required_presets_exist():
    assert REQUIRED <= set(list_presets())


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_loads(name):
    cfg = load_config(name)
    assert isinstance(cfg, (GPUConfig, SystemConfig))
    gpu = cfg.gpu if isinstance(cfg, SystemConfig) else cfg
    assert gpu.sm.count > 0 and gpu.hbm.bandwidth_gbps > 0


# (preset, format, sparse, datasheet TFLOPS)
DATASHEET = [
    ("h100-sxm", "bf16", False, 989), ("h100-sxm", "fp8", False, 1979), ("h100-sxm", "tf32", False, 495),
    ("h200", "bf16", False, 989), ("h200", "fp8", False, 1979), ("h200", "tf32", False, 495),
    ("h100-sxm", "bf16", True, 1979), ("h100-sxm", "fp8", True, 3958),
    ("b200", "bf16", False, 2250), ("b200", "fp8", False, 4500), ("b200", "nvfp4", False, 9000),
    ("b200", "mxfp4", False, 9000), ("b200", "bf16", True, 4500), ("b200", "nvfp4", True, 18000),
    ("gb200", "bf16", False, 2500), ("gb200", "fp8", False, 5000), ("gb200", "nvfp4", False, 10000),
    ("b300", "nvfp4", False, 13500), ("b300", "nvfp4", True, 18000), ("b300", "bf16", True, 4500),
]


@pytest.mark.parametrize("name,fmt,sparse,tflops", DATASHEET)
def test_peak_matches_datasheet(name, fmt, sparse, tflops):
    assert load_config(name).peak_tflops(fmt, sparse=sparse) == pytest.approx(tflops, rel=0.01)


def test_peak_is_derived_from_sm_count_and_clock():
    base = load_config("b200")
    more = load_config("b200", overrides={"sm.count": 160, "sm.clock_mhz": 2000})
    ratio = more.peak_tflops("bf16") / base.peak_tflops("bf16")
    assert ratio == pytest.approx(160 / 148 * 2000 / 1856)
    assert base.peak_tflops("bf16", clock_mhz=1000) == pytest.approx(148 * 8192 * 1e9 / 1e12)


def test_unscaled_fp4_runs_at_fp8_rate_and_mx_fp6_too():
    b200 = load_config("b200")
    assert b200.peak_tflops("fp4") == b200.peak_tflops("fp8")
    assert b200.peak_tflops("mxfp6_e2m3") == b200.peak_tflops("fp8")


def test_hopper_has_no_fp4_path():
    with pytest.raises(ConfigError, match="no tensor-core path for nvfp4"):
        load_config("h100-sxm").peak_tflops("nvfp4")


def test_unknown_format_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown dtype 'fp5'"):
        load_config("b200").peak_tflops("fp5")


def test_peak_bandwidth_per_level():
    bw = load_config("b200").peak_bandwidth()
    assert bw["hbm"] == 7700 and bw["die_link"] == 10000 and bw["nvlink"] == 900
    assert bw["smem"] == pytest.approx(148 * 128 * 1.856e9 / 1e9)
    assert "tmem_read" in bw and "die_link" not in load_config("h100-sxm").peak_bandwidth()


def test_nvl72_fabric_bandwidth_is_derived():
    nvl72 = load_config("gb200-nvl72")
    assert nvl72.fabric_bandwidth_gbps == pytest.approx(130_000, rel=0.01)
    assert nvl72.gpu_count == 72 and nvl72.fabric.switches == 18
    assert nvl72.peak_tflops("bf16") == pytest.approx(72 * 2500, rel=0.01)


def test_hopper_has_no_tmem_and_blackwell_has_256kb():
    assert load_config("h100-sxm").tmem is None
    tmem = load_config("b200").tmem
    assert tmem.size_bytes == 256 * 1024 == tmem.lanes * tmem.columns * 4


def test_repository_copies_of_the_shared_measurements_are_identical():
    from conftest import HOPPER_COPIES, SHARED_DATA

    for copy in sorted(HOPPER_COPIES.glob("*.jsonl")):
        original = SHARED_DATA / "hopper" / copy.name
        if original.exists():
            assert copy.read_bytes() == original.read_bytes(), copy.name
    assert {p.name for p in HOPPER_COPIES.glob("*.jsonl")} == {"h100_sxm_calibration.jsonl",
                                                                "h200x2_nvlink_nccl.jsonl"}
