"""blackwell-sim: a cycle-approximate, tile-level discrete-event simulator of NVIDIA Blackwell
(and Hopper) GPUs, with bit-exact block-scaled low-precision numerics.

The public API is deliberately small:

- :func:`load_config` -- a hardware description (GPU or multi-GPU system) from a preset or YAML file.
- :mod:`blackwell_sim.numerics` -- element formats, MX / NVFP4 quantization, exact tensor-core MMA.
- :func:`simulate` -- replay a trace (file, mapping or Trace) on a config: ``.ops`` (a pandas
  DataFrame per op), ``.summary``, ``.to_chrome_trace(path)``, ``.write(out_dir)``.
- :class:`BlackwellSimError` / :class:`ConfigError` -- the one exception family for bad input.
"""

from blackwell_sim.errors import BlackwellSimError, ConfigError
from blackwell_sim.config import GPUConfig, SystemConfig, list_presets, load_config
from blackwell_sim.simulate import SimulationResult, simulate

__version__ = "0.1.0"

__all__ = [
    "BlackwellSimError",
    "ConfigError",
    "GPUConfig",
    "SystemConfig",
    "SimulationResult",
    "list_presets",
    "load_config",
    "simulate",
    "__version__",
]
