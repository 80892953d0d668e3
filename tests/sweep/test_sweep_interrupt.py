"""A driver killed by a real signal in mid-sweep loses no finished point; --resume completes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ARGS = ["sweep", "--trace", "gemm:m=4096,n=4096,k=2048,dtype=nvfp4", "--vary", "sm.count=60:148:8",
        "--no-progress", "--json"]
POINTS = 12


def _lines(path):
    return path.read_bytes().split(b"\n") if path.exists() else [b""]


@pytest.mark.parametrize("sig, group, status", [(signal.SIGKILL, True, -signal.SIGKILL), (signal.SIGINT, False, 130)],
                         ids=["sigkill-driver-and-worker", "ctrl-c-driver"])
def test_interrupted_driver_then_resume_matches_an_uninterrupted_run(tmp_path, cli, sig, group, status):
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "blackwell_sim.cli", *ARGS, "--out", str(killed),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    results = killed / "results.jsonl"
    deadline = time.monotonic() + 90
    try:
        while len(_lines(results)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if group:
            os.killpg(proc.pid, sig)                 # the driver and its worker process, mid-sweep
        else:
            os.kill(proc.pid, sig)                   # Ctrl-C reaches the driver (workers ignore SIGINT)
    finally:
        proc.wait(timeout=30)
    stderr = proc.stderr.read().decode()
    assert proc.returncode == status, stderr
    if sig == signal.SIGINT:
        assert "sweep interrupted" in stderr and "--resume" in stderr
    *complete, tail = _lines(results)
    assert tail == b""                               # no half line
    rows = [json.loads(line) for line in complete]
    print(f"{len(rows)} of {POINTS} rows at the signal")
    assert 2 <= len(rows) < POINTS and all(r["status"] == "ok" for r in rows)

    resumed = cli(*ARGS, "--out", str(killed), "--workers", "0", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.json()["resumed"] >= len(rows) and resumed.json()["ok"] == POINTS

    whole = cli(*ARGS, "--out", str(tmp_path / "whole"), "--workers", "0")
    assert whole.returncode == 0, whole.stderr
    final = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["point"] for r in final] == list(range(POINTS))       # every point exactly once
    assert results.read_bytes() == (tmp_path / "whole" / "results.jsonl").read_bytes()
    for before in rows:                                               # kept rows were not rerun differently
        assert final[before["point"]] == before


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc to find the worker")
def test_a_killed_worker_process_loses_nothing_and_the_sweep_completes(tmp_path, cli):
    out = tmp_path / "w"
    proc = subprocess.Popen([sys.executable, "-m", "blackwell_sim.cli", *ARGS, "--out", str(out), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 90
    killed = None
    try:
        while killed is None and proc.poll() is None and time.monotonic() < deadline:
            workers = _children(proc.pid)
            if len(workers) == 2 and len(_lines(out / "results.jsonl")) >= 2:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.01)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed is not None and proc.returncode == 0, stderr.decode()
    assert b"a worker process died; running its" in stderr     # the pool broke ...
    assert json.loads(stdout)["ok"] == POINTS                   # ... and the points it took down ran again
    whole = cli(*ARGS, "--out", str(tmp_path / "whole"), "--workers", "0")
    assert whole.returncode == 0
    assert (out / "results.jsonl").read_bytes() == (tmp_path / "whole" / "results.jsonl").read_bytes()
