"""The same sweep on a real Dask LocalCluster (2 worker processes) through --scheduler."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

ARGS = ["sweep", "--trace", "gemm:m=1024,n=1024,k=512,dtype=nvfp4", "--vary", "sm.count=64,148",
        "--vary", "tmem.size_bytes=65536,262144", "--no-progress", "--json"]


def test_dask_cluster_gives_the_local_results_byte_for_byte(tmp_path, cli):
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None, silence_logs=50) as cluster:
        remote = cli(*ARGS, "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "dask"))
        with distributed.Client(cluster) as client:
            workers = client.run(lambda: __import__("os").getpid())
    assert remote.returncode == 0, remote.stderr
    local = cli(*ARGS, "--workers", "2", "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    assert remote.json()["ok"] == 4 and len(workers) == 2
    assert remote.json()["rows"] == local.json()["rows"]
    assert (tmp_path / "dask" / "results.jsonl").read_bytes() == (tmp_path / "local" / "results.jsonl").read_bytes()


def test_unreachable_scheduler_is_one_line(tmp_path, cli):
    result = cli(*ARGS, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1", "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.startswith("blackwell-sim: error: --scheduler tcp://127.0.0.1:9: cannot connect")
    assert result.stderr.count("\n") == 1
