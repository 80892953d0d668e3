"""Running the points: one code path over any ``concurrent.futures.Executor``.

- ``workers=0``: in this process, one point after another (:class:`SerialExecutor`).
- ``workers=N`` (default: the CPU count): a ``ProcessPoolExecutor`` of N local processes, which
  ignore SIGINT so that Ctrl-C reaches only the driver.
- ``scheduler="tcp://host:port"``: a Dask distributed cluster through ``Client.get_executor()``
  (the ``[cluster]`` extra), the same ``concurrent.futures`` interface.

Results (:mod:`blackwell_sim.sweep.results`) are appended to ``OUT/results.jsonl`` as each point
finishes. A point whose simulation raises records ``status: "error"`` and its message; the sweep
goes on. A local worker process that dies breaks the pool: the points it took down are run again in
a fresh pool once, then recorded as errors. Ctrl-C cancels what has not started and keeps every
finished row; ``--resume`` runs what is missing.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.sweep.results import ResultsFile, metrics_of
from blackwell_sim.sweep.spec import Point, SweepSpec, plan

RESULTS = "results.jsonl"
SPEC_RECORD = "spec.json"


def run_point(point: Point) -> dict:
    """Simulate one point and return its result row (never raises for a failing simulation)."""
    from blackwell_sim.simulate import resolve_config, simulate
    from blackwell_sim.trace.io import load_trace

    row = {"point": point.index, "params": point.params, "hash": point.hash}
    try:
        trace = load_trace(point.trace)
        config = resolve_config(trace, point.platform, point.overrides)
        result = simulate(trace, config, point.fidelity, host_dispatch=point.host_dispatch)
        row.update(status="ok", metrics=metrics_of(result.summary, point.tokens_per_step))
    except Exception as exc:  # noqa: BLE001 (any failure of one point is recorded; the sweep goes on)
        row.update(status="error", metrics=None, error=f"{type(exc).__name__}: {exc}"
                   if not isinstance(exc, BlackwellSimError) else str(exc))
    return row


class SerialExecutor(cf.Executor):
    """Runs each submitted call at once in this process (``--workers 0``)."""

    def submit(self, fn, /, *args, **kwargs):
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_scheduler(scheduler: str) -> None:
    if not re.fullmatch(r"(?:[a-z]+://)?[^\s:/]+:\d+", scheduler):
        raise BlackwellSimError(f"--scheduler: expected an address such as tcp://host:8786, got {scheduler!r}")


@contextmanager
def executor(workers: int, scheduler: str | None = None, connect_timeout_s: float = 20.0):
    """The executor for ``workers`` local processes (0: in-process) or a Dask ``scheduler``."""
    if scheduler:
        check_scheduler(scheduler)
        try:
            from distributed import Client
        except ImportError:
            raise BlackwellSimError("--scheduler needs dask.distributed: pip install "
                                    "'blackwell-sim[cluster]'") from None
        try:
            client = Client(scheduler, timeout=connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise BlackwellSimError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
        ex = client.get_executor()
        try:
            yield ex
        finally:
            ex.shutdown(wait=False)
            client.close()
        return
    if workers == 0:
        yield SerialExecutor()
        return
    ex = cf.ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


@dataclass
class Progress:
    """Counts of a sweep (points done / failed / remaining) and an ETA from this run's pace (points
    kept by ``--resume`` do not count towards it). With a ``stream`` (stderr on a terminal), a tqdm
    bar there shows the points finished and the counts as its postfix."""

    total: int
    done: int = 0
    failed: int = 0
    resumed: int = 0
    started_s: float = 0.0
    stream: object = None
    bar: object = None

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed

    def eta_s(self, now_s: float) -> float | None:
        ran = self.done + self.failed - self.resumed
        if ran <= 0:
            return None
        return (now_s - self.started_s) / ran * self.remaining

    def text(self, now_s: float) -> str:
        eta = self.eta_s(now_s)
        return (f"done {self.done}, failed {self.failed}, remaining {self.remaining}, ETA "
                + ("?" if eta is None else f"{eta:.0f} s"))

    def draw(self) -> None:
        if self.stream is None:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.done + self.failed, file=self.stream,
                            desc="sweep", unit="point", dynamic_ncols=True)
        self.bar.n = self.done + self.failed
        self.bar.set_postfix_str(self.text(time.perf_counter()))

    def add(self, status: str) -> None:
        if status == "ok":
            self.done += 1
        else:
            self.failed += 1
        self.draw()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = self.stream = None


@dataclass
class SweepOutcome:
    out: Path
    results: Path
    points: int
    ok: int
    failed: int
    resumed: int
    rows: list


def run_sweep(spec: SweepSpec, out_dir, *, workers: int | None = None, scheduler: str | None = None,
              resume: bool = False, progress: bool = True, connect_timeout_s: float = 20.0) -> SweepOutcome:
    """Check every point, then run the ones not done yet, appending rows to ``out_dir/results.jsonl``;
    at the end the file is rewritten in point order (atomically). See the module docstring."""
    if scheduler:
        check_scheduler(scheduler)
    if workers is not None and workers < 0:
        raise BlackwellSimError(f"--workers: must be >= 0, got {workers}")
    points = plan(spec)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BlackwellSimError(f"--out: {out} exists and is not a folder")
    results = ResultsFile(out / RESULTS)
    if results.path.exists() and not resume:
        raise BlackwellSimError(f"--out: {results.path} exists; pass --resume to continue that sweep "
                                f"or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    results.write_spec(out / SPEC_RECORD, spec)
    kept = results.compact(points) if resume else {}
    todo = [p for p in points if p.index not in kept]
    state = Progress(total=len(points), done=len(kept), resumed=len(kept), started_s=time.perf_counter())
    if workers is None:
        workers = min(os.cpu_count() or 1, max(len(todo), 1))
    if progress and todo and sys.stderr.isatty():
        state.stream = sys.stderr
        state.draw()
    # points in flight: all of them on Dask (its scheduler balances), else enough to keep the local
    # workers busy (in-process: one, so each row is written before the next point starts)
    window = len(todo) if scheduler else max(1, 2 * workers)
    rows = dict(kept)
    try:
        for attempt in range(2):
            if not todo:
                break
            todo = _run(todo, lambda: executor(workers, scheduler, connect_timeout_s), window, results,
                        rows, state, last=attempt == 1)
            if todo:
                print(f"blackwell-sim: a worker process died; running its {len(todo)} unfinished "
                      f"point(s) again in a fresh pool", file=sys.stderr)
    except KeyboardInterrupt:
        state.close()
        print(f"blackwell-sim: sweep interrupted: {len(rows)} of {len(points)} points are in "
              f"{results.path}; rerun with --resume to finish", file=sys.stderr)
        raise
    state.close()
    ordered = [rows[p.index] for p in points]
    results.rewrite(ordered)
    return SweepOutcome(out, results.path, len(points), state.done, state.failed, len(kept), ordered)


def _run(todo, make_executor, window: int, results, rows, state, *, last: bool) -> list[Point]:
    """Keep up to ``window`` points in flight; record each row as it finishes. Returns the points a
    dead local worker took down (to run again once), or records them as errors when ``last``."""
    broken: list[Point] = []
    queue = iter(todo)
    with make_executor() as ex:
        inflight: dict[cf.Future, Point] = {}

        def fill() -> None:
            for point in queue:
                try:
                    inflight[ex.submit(run_point, point)] = point
                except cf.process.BrokenProcessPool:
                    broken.append(point)
                    broken.extend(queue)
                    return
                if len(inflight) >= window:
                    return

        try:
            fill()
            while inflight:
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: inflight[f].index):
                    point = inflight.pop(future)
                    try:
                        row = future.result()
                    except cf.process.BrokenProcessPool:
                        broken.append(point)
                        continue
                    except Exception as exc:  # noqa: BLE001 (a lost Dask worker, a cancelled future)
                        row = _error_row(point, f"{type(exc).__name__}: {exc}")
                    results.append(row)
                    rows[point.index] = row
                    state.add(row["status"])
                fill()
        except KeyboardInterrupt:
            for future in inflight:
                future.cancel()
            raise
    if last:
        for point in sorted(broken, key=lambda p: p.index):
            row = _error_row(point, "a worker process died while running this point")
            results.append(row)
            rows[point.index] = row
            state.add("error")
        return []
    return sorted(broken, key=lambda p: p.index)


def _error_row(point: Point, message: str) -> dict:
    return {"point": point.index, "params": point.params, "hash": point.hash, "status": "error",
            "metrics": None, "error": message}
