"""``OUT/results.jsonl``: one JSON object a line per point, written so that nothing is half-written.

A row: ``point`` (index in the spec's order), ``params`` (each varied key as written and its value),
``hash`` (sha256 of the config's contents, the trace, the simulation options and the code version:
:func:`blackwell_sim.sweep.spec.point_hash`), ``status`` (``ok`` or ``error``), ``metrics`` (the
replay's summary without its wall-clock fields, plus ``derived``; None on error) and, on error,
``error`` (the message).

Appending: each row is one ``os.write`` of a complete line to a file opened with ``O_APPEND``, then
``fsync``; a killed driver leaves whole lines only. Reading skips a last line without its newline
(a write cut by a power loss). ``--resume`` first rewrites the file (temporary file +
``os.replace``) keeping the ``ok`` rows whose params and hash match a point of the current spec, so
each point ends up in it exactly once; failed points run again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.report.output import write_atomic

#: summary fields that measure the host, not the simulated machine (they differ run to run)
WALL_CLOCK_FIELDS = ("sim_wall_s",)


def metrics_of(summary: dict, tokens_per_step: int | None) -> dict:
    """The JSON-safe metrics of one point: the summary without wall-clock fields, plus ``derived``:
    ``tokens_per_step`` and ``tokens_per_s`` = tokens_per_step / total_time_s for generated
    transformer steps (decode: one token per sequence of the global batch)."""
    from blackwell_sim.cli.common import json_safe

    metrics = {k: v for k, v in summary.items() if k not in WALL_CLOCK_FIELDS}
    if isinstance(metrics.get("functional"), dict):
        metrics["functional"] = {k: v for k, v in metrics["functional"].items() if k != "functional_s"}
    derived = {}
    total = summary.get("total_time_s")
    if tokens_per_step is not None:
        derived["tokens_per_step"] = tokens_per_step
        derived["tokens_per_s"] = tokens_per_step / total if total else None
    metrics["derived"] = derived
    return json_safe(metrics)


def row_line(row: dict) -> str:
    return json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n"


def params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


class ResultsFile:
    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, row: dict) -> None:
        data = row_line(row).encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise BlackwellSimError(f"{self.path}: short write ({written} of {len(data)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        """Every complete row (a trailing partial line is ignored; any other bad line is an error)."""
        return read_rows(self.path)

    def compact(self, points) -> dict[int, dict]:
        """Keep only the ok rows matching ``points`` (by params and hash), one per point, in point
        order; returns them by point index."""
        by_key = {params_key(p.params): p for p in points}
        kept: dict[int, dict] = {}
        if self.path.exists():
            for row in self.read():
                point = by_key.get(params_key(row.get("params", {})))
                if point is None or row.get("status") != "ok" or row.get("hash") != point.hash:
                    continue
                kept[point.index] = {**row, "point": point.index}
        self.rewrite([kept[i] for i in sorted(kept)])
        return kept

    def rewrite(self, rows: list[dict]) -> None:
        text = "".join(row_line(r) for r in rows)
        write_atomic(self.path, lambda fh: fh.write(text))

    @staticmethod
    def write_spec(path: Path, spec) -> None:
        text = json.dumps(spec.to_document(), indent=2, default=str) + "\n"
        write_atomic(path, lambda fh: fh.write(text))


def read_rows(path) -> list[dict]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BlackwellSimError(f"{path}: cannot read sweep results: {exc.strerror}") from None
    complete = text.split("\n")[:-1]  # drops what follows the last newline: a cut write
    rows = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BlackwellSimError(f"{path}: line {number}: not a JSON row ({exc.msg})") from None
        if not isinstance(row, dict) or "params" not in row or "status" not in row:
            raise BlackwellSimError(f"{path}: line {number}: not a sweep result row")
        rows.append(row)
    return rows
