"""The GPU: a frozen composition of its units, with derived peaks.

Peaks are derived, never typed in: ``peak_tflops = SMs x FLOP per clock per SM x clock``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from blackwell_sim.config.dtypes import get_dtype
from blackwell_sim.config.schema import spec, to_plain
from blackwell_sim.config.units import (
    DieLinkConfig,
    HBMConfig,
    L2CompressionConfig,
    L2Config,
    LaunchConfig,
    NVLinkConfig,
    PowerConfig,
    Problem,
    SMConfig,
    SMEMConfig,
    TensorCoreConfig,
    TMAConfig,
    TMEMConfig,
)
from blackwell_sim.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class GPUConfig:
    """One GPU. ``tmem`` and ``die_link`` are ``None`` on GPUs without them (Hopper)."""

    name: str = spec("marketing name, e.g. 'NVIDIA B200'")
    arch: str = spec("architecture", choices=("hopper", "blackwell"))
    dies: int = spec("compute dies in the package", ge=1)
    sm: SMConfig = spec("streaming multiprocessors")
    tensor_core: TensorCoreConfig = spec("tensor cores")
    tmem: TMEMConfig | None = spec("tensor memory (Blackwell); null on Hopper")
    smem: SMEMConfig = spec("shared memory")
    tma: TMAConfig = spec("tensor memory accelerator")
    l2: L2Config = spec("L2 cache")
    l2_compression: L2CompressionConfig = spec("L2/DRAM compute data compression (what-if, off)")
    hbm: HBMConfig = spec("HBM device memory")
    die_link: DieLinkConfig | None = spec("die-to-die link; null on single-die GPUs")
    nvlink: NVLinkConfig = spec("NVLink ports")
    power: PowerConfig = spec("board power")
    launch: LaunchConfig = spec("kernel launch")

    def check(self) -> Iterator[Problem]:
        if self.tensor_core.instruction == "tcgen05" and self.tmem is None:
            yield ("tmem", None, "a tcgen05 tensor core needs a tmem section")
        if self.tensor_core.instruction == "wgmma" and self.tmem is not None:
            yield ("tmem", "...", "wgmma keeps accumulators in registers: set tmem to null")
        if self.dies > 1 and self.die_link is None:
            yield ("die_link", None, f"a GPU of {self.dies} dies needs a die_link section")

    # -- derived figures ---------------------------------------------------------------------
    def flops_per_clock_per_sm(self, fmt: str, sparse: bool = False) -> int:
        """Tensor-core FLOP per clock per SM for a dtype name (``bf16``, ``nvfp4``, ...).

        Raises :class:`ConfigError` if the dtype is unknown or this GPU has no path for it.
        """
        try:
            dtype = get_dtype(fmt)
        except KeyError as exc:
            raise ConfigError(exc.args[0], source=self.name, key="fmt", value=fmt) from None
        tc = self.tensor_core
        dense = tc.dense_flops_per_clock.get(dtype.math_class)
        if dtype.math_class == "fp4" and "fp4_k96" in tc.dense_flops_per_clock:
            dense = max(dense or 0, tc.dense_flops_per_clock["fp4_k96"])
        if dense is None:
            raise ConfigError(f"{self.name} has no tensor-core path for {fmt} (math class "
                              f"{dtype.math_class})", source=self.name, key="fmt", value=fmt)
        if not sparse:
            return dense
        return tc.sparse_flops_per_clock.get(dtype.math_class, 2 * tc.dense_flops_per_clock.get(
            dtype.math_class, dense))

    def peak_tflops(self, fmt: str, sparse: bool = False, clock_mhz: float | None = None) -> float:
        """Peak tensor TFLOPS: SMs x FLOP/clock/SM x clock (``sm.clock_mhz`` unless given)."""
        clock = self.sm.clock_mhz if clock_mhz is None else clock_mhz
        return self.sm.count * self.flops_per_clock_per_sm(fmt, sparse) * clock * 1e6 / 1e12

    def peak_bandwidth(self) -> dict[str, float]:
        """Peak bandwidth per level in GB/s (per direction for links), at ``sm.clock_mhz``."""
        clock_hz = self.sm.clock_mhz * 1e6
        out = {
            "smem": self.sm.count * self.smem.bandwidth_bytes_per_clock * clock_hz / 1e9,
            "l2": self.l2.bandwidth_gbps,
            "hbm": self.hbm.bandwidth_gbps,
            "nvlink": self.nvlink.bandwidth_gbps,
        }
        if self.tmem is not None:
            out["tmem_read"] = self.sm.count * self.tmem.read_bytes_per_clock * clock_hz / 1e9
        if self.die_link is not None:
            out["die_link"] = self.die_link.bandwidth_gbps
        return out

    def to_dict(self) -> dict:
        return to_plain(self)
