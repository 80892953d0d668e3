"""Atomic writers for report files: a temporary file in the target folder, then ``os.replace``,
so a reader never sees a half-written file and an interrupted run leaves the old one intact."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pandas as pd

from blackwell_sim.report.frame import COLUMN_NAMES, coerce_frame, validate_frame


def write_atomic(path, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # not tempfile.mkstemp: its 0600 mode would survive os.replace; open(..., "x") honours the umask
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb" if binary else "x", **({} if binary else
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
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False)  # C encoder; json.dump is not
    return write_atomic(path, lambda fh: fh.write(text + "\n"))


def write_summary_json(summary: dict, path) -> Path:
    """The summary dict, indented and key-ordered as built (it is JSON-safe by construction)."""
    def write(fh):
        json.dump(summary, fh, indent=2, allow_nan=False)
        fh.write("\n")
    return write_atomic(path, write)


def write_results_csv(frame: pd.DataFrame, path) -> Path:
    """The results frame as CSV: the documented columns in order, NaN as an empty field,
    floats in Python's shortest round-trip form (read back bit-exactly by :func:`read_results_csv`)."""
    validate_frame(frame)
    return write_atomic(path, lambda fh: frame.to_csv(fh, columns=list(COLUMN_NAMES), index=False,
                                                      lineterminator="\n"))


def read_results_csv(path) -> pd.DataFrame:
    """Read a CSV written by :func:`write_results_csv` back into a validated results frame."""
    # pandas < 3 parses floats with a fast converter that is not always exact; 3.x is exact by default
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    frame = pd.read_csv(path, keep_default_na=False, dtype={c: str for c in _STRING_COLUMNS}, **exact,
                        na_values={c: [""] for c in COLUMN_NAMES if c not in _STRING_COLUMNS})
    for col in ("sparse", "cached"):
        frame[col] = frame[col].map({"True": True, "False": False, True: True, False: False})
    frame = coerce_frame(frame)
    validate_frame(frame)
    return frame


_STRING_COLUMNS = ("name", "op", "stream", "layer", "phase", "dtype", "bound", "tile")
