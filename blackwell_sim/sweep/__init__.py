"""What-if studies: run a trace over a grid (or zip) of config keys and workload parameters.

    from blackwell_sim.sweep import load_spec, run_sweep
    spec = load_spec("configs/studies/tmem-sms-nvfp4-gemm.yaml")
    outcome = run_sweep(spec, "sweep-out", workers=4)        # or scheduler="tcp://host:8786"
    outcome.rows          # one dict per point: point, params, hash, status, metrics (error)

:mod:`.spec` parses and checks a spec (every point is checked before any runs), :mod:`.workload`
turns ``--trace`` into a trace (file, generated model step, single op), :mod:`.runner` runs the
points on local processes or a Dask cluster through one ``concurrent.futures`` path, :mod:`.results`
writes ``results.jsonl`` a whole line at a time, :mod:`.plot` draws a line (one key) or heatmap (two).
docs/sweep.md has the spec format and the guarantees.
"""

from blackwell_sim.sweep.plot import plot_sweep, write_sweep_plot
from blackwell_sim.sweep.results import read_rows
from blackwell_sim.sweep.runner import SweepOutcome, run_sweep
from blackwell_sim.sweep.spec import Point, SweepSpec, combinations, load_spec, plan
from blackwell_sim.sweep.workload import Workload, parse_workload

__all__ = [
    "Point",
    "SweepOutcome",
    "SweepSpec",
    "Workload",
    "combinations",
    "load_spec",
    "parse_workload",
    "plan",
    "plot_sweep",
    "read_rows",
    "run_sweep",
    "write_sweep_plot",
]
