"""What a simulated kernel reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class KernelResult:
    """One kernel's simulated outcome. Times in seconds, bandwidths in GB/s, rates in TFLOPS.

    ``efficiency`` factors multiply to ``percent_of_peak / 100`` (approximately): each names a
    mechanism (clock under the power limit, wave quantization, main-loop stalls, epilogue,
    launch) so the result says *why* it is below peak.
    """

    kernel: str
    time_s: float
    cycles: float
    clock_mhz: float
    flops: float
    tflops: float
    peak_tflops: float
    percent_of_peak: float
    bound: str
    tile: str
    bytes: dict = field(default_factory=dict)
    bandwidth_gbps: dict = field(default_factory=dict)
    utilization: dict = field(default_factory=dict)
    efficiency: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    functional: object = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("functional", None)
        return out

    def summary_line(self) -> str:
        return (f"{self.kernel}: {self.time_s * 1e6:.1f} us, {self.tflops:.1f} TFLOPS "
                f"({self.percent_of_peak:.1f}% of {self.peak_tflops:.0f}), bound: {self.bound}, "
                f"tile {self.tile}, clock {self.clock_mhz:.0f} MHz")
