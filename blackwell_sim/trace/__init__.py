"""Traces: the op schema, loaders and writers, and the replay scheduler.

Document (YAML or JSON: one mapping; JSON-lines: one op per line, optional first line
``{"document": {...}}``)::

    name: my-trace                # optional
    description: ...              # optional
    system: hgx-b200-8            # optional system preset (name, YAML path or mapping), or
    config: b200                  # optional GPU preset; at most one of system / config
    ops:
      - {op: gemm, m: 8192, n: 8192, k: 8192, dtype: nvfp4}

Op fields (unknown fields are errors, with a did-you-mean):

- every op: ``op`` (gemm | attention | memcpy | elementwise | all_reduce | all_gather |
  reduce_scatter | all_to_all | broadcast | send | recv), ``name`` (default ``<op>_<index>``,
  unique), ``stream`` (default ``compute``; ``comm`` for collectives and send/recv), ``deps``
  (op names), ``measured_s`` (a real measured duration), ``layer`` / ``phase`` (free-text tags).
  Compute, memory and send/recv ops run on ``rank`` (default 0).
- gemm: ``m n k`` (required), ``batch`` (1), ``dtype`` (bf16), ``sparsity`` (null or "2:4"),
  ``recipe`` (a :data:`blackwell_sim.numerics.RECIPES` name), ``operands`` ({a: A.npy, b: B.npy}:
  A is [m, k], B is [k, n], with a leading batch axis when batch > 1; relative to the trace file).
- attention: ``batch heads seq_q head_dim`` (required), ``kv_heads`` (= heads), ``seq_kv``
  (= seq_q), ``causal`` (false), ``backward`` (false), ``dtype`` (bf16), ``kernel`` (fa2|fa3|fa4),
  ``head_dim_v`` (the V/O head dim; = head_dim).
- collectives: ``bytes`` (required, per rank, nccl-tests convention), ``group`` (ranks; default
  all ranks of the system), ``dtype`` (bf16), ``algo``. send/recv: ``bytes``, ``rank``, ``peer``.
- memcpy: ``bytes``. elementwise: ``bytes_read``, ``bytes_written`` (0), ``flops`` (0).

Ops on the same (rank, stream) run in trace order; ``deps`` add edges across streams and ranks.

API: :func:`load_trace` (path, mapping or Trace), :func:`parse_document`, :func:`write_trace`,
:func:`dumps_trace`, :class:`Trace`, :func:`parse_op`; :func:`blackwell_sim.trace.replay.replay`
runs one on a config. ``blackwell_sim.simulate`` is the one-call entry point.
"""

from blackwell_sim.trace.io import (
    Trace,
    dumps_trace,
    load_trace,
    parse_document,
    write_trace,
)
from blackwell_sim.trace.ops import (
    COLLECTIVE_OPS,
    COMPUTE_OPS,
    MEMORY_OPS,
    OP_KINDS,
    P2P_OPS,
    AttentionOp,
    CollectiveOp,
    ElementwiseOp,
    GemmOp,
    MemcpyOp,
    Op,
    P2POp,
    op_fields,
    parse_op,
)

__all__ = [
    "COLLECTIVE_OPS", "COMPUTE_OPS", "MEMORY_OPS", "OP_KINDS", "P2P_OPS", "AttentionOp",
    "CollectiveOp", "ElementwiseOp", "GemmOp", "MemcpyOp", "Op", "P2POp", "Trace", "dumps_trace",
    "load_trace", "op_fields", "parse_document", "parse_op", "write_trace",
]
