"""The NVLink fabric of a system: per-GPU port groups, switch chips, contended links.

Each GPU's NVLink links are grouped by where they go: one *port group* per NVSwitch chip (the
links from that GPU to that chip) or, for a ``direct`` fabric, one group holding every link to the
peer. A port group has two directions, GPU -> fabric (``up``) and fabric -> GPU (``down``), each a
contended resource of ``links x bandwidth_per_link x link_efficiency`` payload bytes/s
(``fabric.link_efficiency``: packet headers, flow control and CRC; NVLink 4 reaches 370 of
450 GB/s per direction, nccl-tests issue 212). Traffic from one GPU to another is sprayed over
all of its port groups in proportion to their links (NVLink address-based spraying), so a transfer
is fully described by the bytes each GPU sends and receives: routing is exact without a
destination matrix. The switch crossbar is non-blocking (NVSwitch datasheets: full bandwidth on
every port at once) and is not a contention point; the in-switch reduction ALU (NVLS / NVLink
SHARP) is, with ``switch.reduction_gflops`` element additions per second per chip.

Contention is processor sharing at event granularity, as in :mod:`blackwell_sim.engine.bandwidth`:
a transfer joins every link it uses, its duration is set by the slowest of them at the share it
gets when it starts (``capacity / active users``), and it leaves when done. Arrays are (GPU, port
group) so a 72-GPU ring round is one numpy expression, not 72 x 18 Python events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blackwell_sim.config.system import SystemConfig


@dataclass(frozen=True)
class Traffic:
    """What one transfer puts on the fabric: bytes per (GPU, port group) and direction, plus
    in-switch reduction work (element additions) per switch chip."""

    up: np.ndarray          # (G, P) bytes GPU -> fabric
    down: np.ndarray        # (G, P) bytes fabric -> GPU
    reduce_flop: np.ndarray  # (P,) element additions in switch chip p


class Fabric:
    """The links and switch chips of one :class:`SystemConfig`, with their current users."""

    def __init__(self, system: SystemConfig) -> None:
        fab = system.fabric
        nvlink = system.gpu.nvlink
        self.system = system
        self.gpus = system.gpu_count
        if fab.topology == "direct":
            links = np.array([nvlink.links], dtype=float)
            self.kind = "direct"
            reduce_flops = np.zeros(1)
        else:
            links = np.array(fab.gpu_links_per_switch, dtype=float)
            self.kind = "nvswitch"
            reduce_flops = np.full(len(links), fab.switch.reduction_gflops * 1e9)
        self.port_links = links
        self.link_payload_bytes_per_s = nvlink.bandwidth_per_link_gbps * 1e9 * fab.link_efficiency
        self.port_bytes_per_s = links * self.link_payload_bytes_per_s          # (P,)
        self.gpu_bytes_per_s = float(self.port_bytes_per_s.sum())               # per direction
        self.spray = links / links.sum() if links.sum() > 0 else np.zeros_like(links)
        self.reduce_flops = reduce_flops                                        # (P,)
        self.nvls = bool(fab.topology == "nvswitch" and fab.switch.nvls and fab.switch.reduction_gflops > 0)
        shape = (self.gpus, len(links))
        self.active_up = np.zeros(shape, dtype=np.int64)
        self.active_down = np.zeros(shape, dtype=np.int64)
        self.active_reduce = np.zeros(len(links), dtype=np.int64)
        self.bytes_up = np.zeros(shape)
        self.bytes_down = np.zeros(shape)
        self.flop_reduce = np.zeros(len(links))

    @property
    def link_classes(self) -> tuple[str, str]:
        """Names of the two link directions, for reports."""
        return ("gpu_to_switch", "switch_to_gpu") if self.kind == "nvswitch" else ("direct", "direct")

    def route(self, sent: np.ndarray, received: np.ndarray, reduce_flop: float = 0.0) -> Traffic:
        """Traffic of a transfer in which GPU g sends ``sent[g]`` and receives ``received[g]`` bytes
        (to and from any peers) and the switches perform ``reduce_flop`` additions in total."""
        sent = np.asarray(sent, dtype=float)
        received = np.asarray(received, dtype=float)
        if sent.shape != (self.gpus,) or received.shape != (self.gpus,):
            raise ValueError(f"sent/received need shape ({self.gpus},), got {sent.shape}, {received.shape}")
        return Traffic(np.outer(sent, self.spray), np.outer(received, self.spray),
                       reduce_flop * self.spray)

    def join(self, traffic: Traffic) -> None:
        self.active_up += traffic.up > 0
        self.active_down += traffic.down > 0
        self.active_reduce += traffic.reduce_flop > 0

    def leave(self, traffic: Traffic) -> None:
        self.active_up -= traffic.up > 0
        self.active_down -= traffic.down > 0
        self.active_reduce -= traffic.reduce_flop > 0
        if (self.active_up < 0).any() or (self.active_down < 0).any() or (self.active_reduce < 0).any():
            raise RuntimeError("fabric: leave() without join()")

    def seconds_for(self, traffic: Traffic, link_efficiency: float = 1.0) -> tuple[float, str]:
        """Time for ``traffic`` at the shares it gets now (call after :meth:`join`), and which
        resource set it: ``"link"`` or ``"switch_reduce"``. Accounts the bytes moved.

        ``link_efficiency`` scales the payload rate for traffic that uses the links less well
        (NVLS multimem operations)."""
        cap = self.port_bytes_per_s * link_efficiency
        link_s = 0.0
        for nbytes, active in ((traffic.up, self.active_up), (traffic.down, self.active_down)):
            used = nbytes > 0
            if used.any():
                share = cap[np.newaxis, :] / np.maximum(active, 1)
                link_s = max(link_s, float((nbytes[used] / np.broadcast_to(share, nbytes.shape)[used]).max()))
        reduce_s = 0.0
        used = traffic.reduce_flop > 0
        if used.any():
            share = self.reduce_flops[used] / np.maximum(self.active_reduce[used], 1)
            reduce_s = float((traffic.reduce_flop[used] / share).max())
        self.bytes_up += traffic.up
        self.bytes_down += traffic.down
        self.flop_reduce += traffic.reduce_flop
        return (reduce_s, "switch_reduce") if reduce_s > link_s else (link_s, "link")

    def bytes_by_class(self) -> dict[str, float]:
        """Payload bytes moved so far per link class (both directions of a direct link add up)."""
        up, down = self.link_classes
        if up == down:
            return {up: float(self.bytes_up.sum() + self.bytes_down.sum()) / 2}
        return {up: float(self.bytes_up.sum()), down: float(self.bytes_down.sum())}
