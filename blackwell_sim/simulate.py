"""``blackwell_sim.simulate``: replay a trace on a GPU or system in one call.

    import blackwell_sim as bs
    result = bs.simulate("traces/llama3-8b-train-layer-b200-nvfp4.yaml")   # the trace's config
    result = bs.simulate({"ops": [{"op": "gemm", "m": 8192, "n": 8192, "k": 8192,
                                   "dtype": "nvfp4"}]}, "b200")
    result.ops            # per-op pandas DataFrame (columns: blackwell_sim.report.COLUMNS)
    result.summary        # dict: total_time_s, per-format achieved vs peak, bound shares, bytes, ...
    result.to_chrome_trace("timeline.json")    # open in ui.perfetto.dev
    result.write("out/")  # results.csv, summary.json, timeline.json and the plots, atomically

The config is, in order: the ``config`` argument (preset name, YAML path, mapping, or a loaded
GPUConfig / SystemConfig), else the trace's ``system`` or ``config``, else :data:`DEFAULT_CONFIG`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blackwell_sim.config import GPUConfig, SystemConfig, load_config
from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.io import Trace, load_trace

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CONFIG = "b200"


@dataclass
class SimulationResult:
    """A replayed trace: ``ops`` (the results frame), ``summary`` (dict), the trace and config."""

    ops: pd.DataFrame
    summary: dict
    trace: Trace
    config: GPUConfig | SystemConfig

    def to_chrome_trace(self, path: str | os.PathLike) -> Path:
        """Write the Chrome trace event JSON timeline (one process per GPU, one thread per stream)."""
        from blackwell_sim.report import write_chrome_trace

        return write_chrome_trace(self.ops, path, title=str(self.summary.get("config", "")))

    def write(self, out_dir: str | os.PathLike, *, plots: bool = True) -> list[Path]:
        """Write the report folder atomically: build ``DIR.tmp-<pid>`` and rename it onto ``DIR``
        (an existing ``DIR`` is replaced only once the new one is complete)."""
        from blackwell_sim.report import write_report

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise BlackwellSimError(f"--out: {out} exists and is not a folder")
        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            written = write_report(self.ops, self.config, tmp, sim_wall_s=self.summary.get("sim_wall_s"),
                                   plots=plots)
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
        except OSError as exc:
            raise BlackwellSimError(f"--out: cannot write {out}: {exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
        return [out / Path(p).name for p in written["files"]]


def resolve_config(trace: Trace, config: Any = None, overrides: Mapping | None = None):
    """The config to replay ``trace`` on (see the module docstring for the order)."""
    if isinstance(config, (GPUConfig, SystemConfig)):
        if overrides:
            raise BlackwellSimError("overrides: pass a config name or mapping, not a loaded config, "
                                    "together with overrides")
        return config
    key = None
    if config is None:
        key = "system" if trace.system is not None else "config"
        config = trace.system if trace.system is not None else trace.config
        if isinstance(config, str) and trace.base_dir is not None and config.endswith((".yaml", ".yml")):
            candidate = trace.base_dir / config
            config = str(candidate) if candidate.exists() else config
    if config is None:
        config = DEFAULT_CONFIG
    try:
        return load_config(config, overrides=dict(overrides or {}))
    except BlackwellSimError as exc:
        if key is None:
            raise
        raise BlackwellSimError(f"{trace.source}: {key}: {exc}") from None


def simulate(trace: Any, config: Any = None, fidelity: str = "fast", *, functional: str | None = None,
             seed: int = 0, overrides: Mapping | None = None, memo: dict | None = None,
             host_dispatch: str = "eager",
             progress: Callable[[int], object] | None = None) -> SimulationResult:
    """Replay ``trace`` (a path, a document mapping or a Trace) on ``config``.

    ``fidelity``: ``fast`` or ``detailed`` (kernel models). ``functional``: None, ``"sample"``
    or ``"full"`` to also execute GEMMs / attention numerically (seeded by ``seed``).
    ``host_dispatch``: ``"eager"`` (each rank's host thread dispatches ops at PyTorch's measured
    per-API cost) or ``"none"`` (CUDA graphs). ``overrides``: dotted config keys (``{"sm.count": 160}``). ``memo`` may be shared across
    calls; ``progress(total)`` returns a bar (``update``, ``close``), e.g. tqdm.
    """
    from blackwell_sim.report import summarize
    from blackwell_sim.trace.replay import replay

    tr = load_trace(trace)
    cfg = resolve_config(tr, config, overrides)
    t0 = time.perf_counter()
    frame = replay(tr, cfg, fidelity, functional=functional, seed=seed, memo=memo,
                   host_dispatch=host_dispatch, progress=progress)
    wall_s = time.perf_counter() - t0
    frame.attrs["sim_wall_s"] = wall_s
    summary = summarize(frame, cfg, sim_wall_s=wall_s)
    return SimulationResult(ops=frame, summary=summary, trace=tr, config=cfg)
