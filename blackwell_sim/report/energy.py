"""Energy of one simulated kernel from the GPU power model (:mod:`blackwell_sim.engine.power`).

energy_j = power_w(activity, clock) x time_s, where the activity is what the kernel result says it
did: its tensor FLOP (at its math class), its SM occupancy, its HBM and L2 bytes, over its
duration at its (power-limited) clock. The replayer calls this to fill the ``energy_j`` column.
"""

from __future__ import annotations

import math

from blackwell_sim.config.dtypes import get_dtype
from blackwell_sim.engine.power import Activity, power_w
from blackwell_sim.engine.result import KernelResult


def kernel_energy_j(config, result: KernelResult, dtype: str | None = None) -> float:
    """Board energy in joules of one kernel on one GPU of ``config`` (GPU or system).

    ``dtype`` (the op's format) picks the tensor energy per FLOP; without it, or with a name the
    dtype table does not know, the kernel is treated as having no tensor math. SM occupancy is
    ``result.utilization["sms"]`` when the model reports it, else 1 (grid-stride kernels such as
    copies keep every SM resident). Returns NaN for a non-positive or non-finite duration.
    """
    gpu = config.gpu if hasattr(config, "gpu_count") else config
    time_s = float(result.time_s)
    if not math.isfinite(time_s) or time_s <= 0:
        return math.nan
    math_class = "bf16"
    tensor_flops = 0.0
    if dtype:
        try:
            math_class = get_dtype(dtype).math_class
            tensor_flops = float(result.flops)
        except KeyError:
            tensor_flops = 0.0
    act = Activity(clock_mhz=float(result.clock_mhz), elapsed_s=time_s, tensor_flops=tensor_flops,
                   math_class=math_class, sm_busy=float(result.utilization.get("sms", 1.0)),
                   hbm_bytes=float(result.bytes.get("hbm", 0.0)),
                   l2_bytes=float(result.bytes.get("l2", 0.0)))
    return power_w(gpu, act, float(result.clock_mhz)) * time_s
