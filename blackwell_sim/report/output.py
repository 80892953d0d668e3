"""Atomic writers for report files: a temporary file in the target folder, then ``os.replace``,
so a reader never sees a half-written file and an interrupted run leaves the old one intact."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd

from blackwell_sim.report.frame import COLUMN_NAMES, validate_frame


def write_atomic(path, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else
                                                        {"encoding": "utf-8", "newline": ""})) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(doc, path) -> Path:
    """``doc`` as compact JSON (NaN/Inf rejected: make the document JSON-safe first)."""
    def write(fh):
        json.dump(doc, fh, separators=(",", ":"), allow_nan=False)
        fh.write("\n")
    return write_atomic(path, write)


def write_summary_json(summary: dict, path) -> Path:
    """The summary dict, indented and key-ordered as built (it is JSON-safe by construction)."""
    def write(fh):
        json.dump(summary, fh, indent=2, allow_nan=False)
        fh.write("\n")
    return write_atomic(path, write)


def write_results_csv(frame: pd.DataFrame, path) -> Path:
    """The results frame as CSV: the documented columns in order, NaN as an empty field,
    floats with 17 significant digits (round-trips exactly)."""
    validate_frame(frame)
    return write_atomic(path, lambda fh: frame.to_csv(fh, columns=list(COLUMN_NAMES), index=False,
                                                      float_format="%.17g", lineterminator="\n"))


def read_results_csv(path) -> pd.DataFrame:
    """Read a CSV written by :func:`write_results_csv` back into a validated results frame."""
    from blackwell_sim.report.frame import _coerce
    frame = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in _STRING_COLUMNS},
                        na_values={c: [""] for c in COLUMN_NAMES if c not in _STRING_COLUMNS})
    for col in ("sparse", "cached"):
        frame[col] = frame[col].map({"True": True, "False": False, True: True, False: False})
    frame = _coerce(frame)
    validate_frame(frame)
    return frame


_STRING_COLUMNS = ("name", "op", "stream", "layer", "phase", "dtype", "bound", "tile")
