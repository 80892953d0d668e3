"""A contended bandwidth resource shared by concurrent users (processor sharing).

Users ``join`` a link when they start moving data and ``leave`` when done. The rate one user gets
is re-evaluated at each event boundary (a tile in ``fast`` fidelity, a k-block in ``detailed``):
``min(per-user cap, bandwidth / active users)``. This is the fluid processor-sharing model at event
granularity: cheap (O(1) per event) and it makes HBM, L2, the die link and NVLink real contention
points: adding users slows everyone, a lone user is limited by its own cap (Little's law on its
in-flight bytes), never by a formula of the whole kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class SharedLink:
    """Bandwidth ``bytes_per_s`` shared fairly by the users active at any moment."""

    name: str
    bytes_per_s: float
    active: int = 0
    bytes_moved: float = 0.0
    busy_s: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.bytes_per_s > 0 or not math.isfinite(self.bytes_per_s):
            raise ValueError(f"{self.name}: bytes_per_s must be a positive finite number, "
                             f"got {self.bytes_per_s!r}")

    def join(self) -> None:
        self.active += 1

    def leave(self) -> None:
        if self.active <= 0:
            raise RuntimeError(f"{self.name}: leave() without join()")
        self.active -= 1

    def rate(self, cap_bytes_per_s: float = math.inf) -> float:
        """Bytes/s one active user gets now (at least one user is assumed: the caller)."""
        return min(cap_bytes_per_s, self.bytes_per_s / max(self.active, 1))

    def seconds_for(self, nbytes: float, cap_bytes_per_s: float = math.inf) -> float:
        """Time to move ``nbytes`` at the current share, and account the bytes."""
        if nbytes <= 0:
            return 0.0
        self.bytes_moved += nbytes
        return nbytes / self.rate(cap_bytes_per_s)

    def utilization(self, elapsed_s: float) -> float:
        """Fraction of the link's capacity used over ``elapsed_s``."""
        return 0.0 if elapsed_s <= 0 else min(1.0, self.bytes_moved / (self.bytes_per_s * elapsed_s))
