"""``blackwell-sim collective`` and the systems in ``blackwell-sim configs``."""

from __future__ import annotations

import pytest


def test_collective_json_has_the_nccl_tests_quantities(cli):
    result = cli("collective", "--config", "hgx-h100-8", "--op", "all_reduce", "--bytes", "1G", "--json")
    assert result.returncode == 0 and result.stdout.count("\n") == 1
    data = result.json()
    assert data["algo"] == "nvls" and data["world"] == 8 and data["bytes"] == 2**30
    assert data["algbw_gbps"] == pytest.approx(2**30 / data["time_s"] / 1e9)
    assert data["busbw_gbps"] == pytest.approx(data["algbw_gbps"] * 2 * 7 / 8)
    assert set(data["link_bytes"]) == {"gpu_to_switch", "switch_to_gpu"} and data["sms_used"] > 0


def test_collective_gpus_algo_protocol_and_set(cli):
    base = cli("collective", "--config", "hgx-h100-8", "--op", "all_gather", "--bytes", "64M",
               "--gpus", "4", "--algo", "ring", "--protocol", "simple", "--json").json()
    assert (base["world"], base["algo"], base["protocol"]) == (4, "ring", "simple")
    no_host = cli("collective", "--config", "hgx-h100-8", "--op", "all_gather", "--bytes", "64M",
                  "--ranks", "1,3,5,7", "--algo", "ring", "--protocol", "simple", "--json",
                  "--set", "fabric.collective.host_issue_us=0").json()
    assert no_host["ranks"] == [1, 3, 5, 7]
    assert base["time_s"] - no_host["time_s"] == pytest.approx(base["host_overhead_s"])
    assert base["host_overhead_s"] == pytest.approx(13.5e-6)   # the kernel outlasts host_return


def test_collective_text_explains_the_time(cli):
    out = cli("collective", "--config", "h200x2-nvlink", "--op", "all_reduce", "--bytes", "1048576").stdout
    assert "busbw" in out and "host" in out and "tuner estimates" in out


@pytest.mark.parametrize("args,needle", [
    (("--config", "h200", "--op", "all_reduce", "--bytes", "1M"), "need a system preset"),
    (("--config", "h200x2-nvlink", "--op", "all_reduce", "--bytes", "1M", "--gpus", "3"), "0..1"),
    (("--config", "h200x2-nvlink", "--op", "all_reduce", "--bytes", "1M", "--algo", "nvls"), "nvls needs"),
    (("--op", "all_reduce", "--bytes", "12Q"), "invalid byte count"),
    (("--op", "all_reduce", "--bytes", "0"), "must be a positive byte count"),
    (("--op", "all_reduce", "--bytes", "1M", "--ranks", "0,x"), "comma-separated GPU indices"),
    (("--op", "all_to_all", "--bytes", "1M", "--algo", "ring"), "does not implement all_to_all"),
    (("--op", "all_reduce", "--bytes", "1M", "--set", "fabric.collective.channels=0"), "must be >= 1"),
])
def test_collective_bad_input_exits_2_with_one_line(cli_subprocess, args, needle):
    result = cli_subprocess("collective", *args)
    assert result.returncode == 2 and needle in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr and result.stdout == ""


def test_configs_lists_systems_with_derived_fabric_bandwidth(cli):
    rows = {r["name"]: r for r in cli("configs", "--json").json()["presets"]}
    nvl = rows["gb200-nvl72"]
    assert nvl["fabric_tbps_bidirectional"] == pytest.approx(72 * 18 * 50 * 2 / 1000, rel=1e-3)
    assert nvl["switches"] == 18 and nvl["nvls"] is True
    assert rows["h200x2-nvlink"]["switches"] == 0 and rows["h200x2-nvlink"]["nvls"] is False
    assert rows["hgx-h100-8"]["fabric_tbps_bidirectional"] == pytest.approx(8 * 18 * 25 * 2 / 1000, rel=1e-3)
    half = cli("configs", "show", "gb200-nvl72", "--json", "--set", "gpu_count=36").json()
    assert half["fabric_tbps_bidirectional"] == pytest.approx(nvl["fabric_tbps_bidirectional"] / 2, rel=1e-2)
