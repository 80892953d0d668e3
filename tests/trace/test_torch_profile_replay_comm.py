"""The real 2-rank capture's NCCL collectives replay through the fabric model: one row per rank,
the measured kernel time beside the simulated one."""

from __future__ import annotations

import blackwell_sim as bs
from blackwell_sim.trace.torch_profile import import_torch_profile


def test_captured_collectives_replay_on_their_system(request):
    ranks = request.config.rootpath / "tests" / "fixtures" / "torch_profile" / "ranks"
    doc = import_torch_profile([ranks / f"torch_profile_rank{r}.json.gz" for r in (0, 1)])
    doc["ops"] = [{k: v for k, v in op.items() if k != "deps"} for op in doc["ops"] if "group" in op]
    result = bs.simulate(doc)
    frame = result.ops
    assert result.config.name == bs.load_config("h200x2-nvlink").name
    assert list(frame["name"]) == [op["name"] for op in doc["ops"] for _ in (0, 1)]
    assert list(frame["rank"]) == [0, 1] * len(doc["ops"])
    assert list(frame["measured_s"]) == [op["measured_s"] for op in doc["ops"] for _ in (0, 1)]
    assert (frame["time_s"] > 0).all() and (frame["bytes_fabric"] > 0).all()
