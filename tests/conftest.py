"""Shared fixtures: the repository root, the shared data folder, CLI runners and the presets most
tests use (loaded once per test module)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
HOPPER_COPIES = REPO_ROOT / "tests" / "data" / "hopper"


def hopper_file(name: str) -> Path:
    """A shared Hopper measurement file: ../shared/data/hopper/NAME, else the copy in tests/data."""
    shared = SHARED_DATA / "hopper" / name
    return shared if shared.exists() else HOPPER_COPIES / name


@dataclass
class CLIResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def cli():
    """Run ``blackwell-sim ARGS`` in-process (fast); returns a :class:`CLIResult`."""
    from blackwell_sim.cli import main

    def run(*args: str) -> CLIResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse --help / --version / usage errors
                code = exc.code if isinstance(exc.code, int) else 0
        return CLIResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def cli_subprocess():
    """Run the real console entry point in a subprocess (checks exit codes and stderr as a user sees them)."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> CLIResult:
        proc = subprocess.run([sys.executable, "-m", "blackwell_sim.cli", *args], capture_output=True,
                              text=True, cwd=cwd, timeout=timeout)
        return CLIResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="module")
def h100():
    from blackwell_sim import load_config

    return load_config("h100-sxm")


@pytest.fixture(scope="module")
def b200():
    from blackwell_sim import load_config

    return load_config("b200")
