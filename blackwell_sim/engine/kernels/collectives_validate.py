"""``validate``'s NCCL rows (kinds all_reduce, all_gather, reduce_scatter, all_to_all): nccl-tests
style measurements (``bytes``, ``world``, ``median_s``; optional ``ranks``, ``concurrent`` groups,
forced ``nccl_algo`` / ``nccl_proto``, and ``graph_s``, the GPU-only time of a CUDA-graph replay)
predicted with :func:`blackwell_sim.engine.kernels.collectives.simulate_collective` on a system
preset (docs/fabric.md, docs/validation.md).

Row fields: ``bytes``, ``world``, ``median_s`` (one call timed alone); optional ``graph_s`` (the
call replayed from a CUDA graph, compared with the kernel time alone), ``ranks`` (the GPUs of the
group, default 0..world-1), ``concurrent`` (rank lists of groups running the same call at once; the
slowest group's time is compared), ``nccl_algo`` / ``nccl_proto`` (the NCCL_ALGO / NCCL_PROTO the
row was forced to, which the prediction then uses too).
"""

from __future__ import annotations

import math

from blackwell_sim.config import SystemConfig
from blackwell_sim.engine.kernels.collectives import check_ranks, simulate_collective
from blackwell_sim.errors import BlackwellSimError

NCCL_ALGO_NAMES = {"ring": "ring", "tree": "tree", "nvls": "nvls"}
NCCL_PROTO_NAMES = {"ll": "ll", "ll128": "ll128", "simple": "simple"}


def _row_groups(config: SystemConfig, kind: str, row: dict, world: int) -> list[tuple[int, ...]]:
    where = f"line {row['_line']}"
    groups = row.get("concurrent")
    if groups is None:
        groups = [row.get("ranks", list(range(world)))]
    if not isinstance(groups, list) or not groups:
        raise BlackwellSimError(f"{where}: field 'concurrent' must be a list of rank lists, got {groups!r}")
    out = []
    for g in groups:
        if not isinstance(g, list) or len(g) != world:
            raise BlackwellSimError(f"{where}: each group of ranks must be a list of {world} (world) GPU "
                                    f"indices, got {g!r}")
        try:
            out.append(check_ranks(config, kind, g))
        except BlackwellSimError as exc:
            raise BlackwellSimError(f"{where}: {exc}") from None
    used = [r for g in out for r in g]
    if len(set(used)) != len(used):
        raise BlackwellSimError(f"{where}: concurrent groups {groups!r} share GPUs")
    return out


def _row_choice(row: dict, field: str, names: dict) -> str | None:
    value = row.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in names:
        raise BlackwellSimError(f"line {row['_line']}: field '{field}' must be one of "
                                f"{', '.join(sorted(names))} (any case), got {value!r}")
    return names[value.lower()]


def _validator(kind: str):
    def predict(config, row: dict):
        if not isinstance(config, SystemConfig):
            raise BlackwellSimError(f"line {row['_line']}: {kind} rows need a system preset "
                                    f"(e.g. --config h200x2-nvlink)")
        fields = {}
        for name in ("bytes", "world", "median_s"):
            value = row.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                    or not math.isfinite(value):
                raise BlackwellSimError(f"line {row['_line']}: field '{name}' must be a positive "
                                        f"number, got {value!r}")
            fields[name] = value
        world = int(fields["world"])
        if world != fields["world"] or world > config.gpu_count:
            raise BlackwellSimError(f"line {row['_line']}: world {fields['world']!r} must be a whole "
                                    f"number <= {config.gpu_count} GPUs of '{config.name}'")
        groups = _row_groups(config, kind, row, world)
        algo = _row_choice(row, "nccl_algo", NCCL_ALGO_NAMES)
        protocol = _row_choice(row, "nccl_proto", NCCL_PROTO_NAMES)
        try:
            if len(groups) == 1:
                r = simulate_collective(config, kind, int(fields["bytes"]), ranks=groups[0], algo=algo,
                                        protocol=protocol, dtype=row.get("dtype", "bf16"))
                time_s, kernel_s = r.time_s, r.kernel_s
            else:  # groups at once on the shared fabric: the slowest group, as the rows record it
                from blackwell_sim.engine.system_run import System

                sim = System(config)
                procs = [sim.collective(kind, int(fields["bytes"]), ranks=g, algo=algo, protocol=protocol,
                                        dtype=row.get("dtype", "bf16")) for g in groups]
                sim.run()
                results = [p.value for p in procs]
                r = max(results, key=lambda x: x.time_s)
                time_s, kernel_s = r.time_s, max(x.kernel_s for x in results)
        except BlackwellSimError as exc:
            raise BlackwellSimError(f"line {row['_line']}: {exc}") from None
        out = [("median_s", fields["median_s"], time_s, r)]
        graph = row.get("graph_s")
        if graph is not None:  # the same call replayed from a CUDA graph: GPU time only
            if isinstance(graph, bool) or not isinstance(graph, (int, float)) or not graph > 0 \
                    or not math.isfinite(graph):
                raise BlackwellSimError(f"line {row['_line']}: field 'graph_s' must be a positive "
                                        f"number, got {graph!r}")
            out.append(("graph_s", graph, kernel_s, r))
        return out
    return predict


VALIDATORS = {kind: _validator(kind) for kind in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")}
