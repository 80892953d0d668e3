"""Fused attention kernel model (FlashAttention-2/3/4 style), forward and backward.

``simulate_attention(config, batch, heads, seq_q, head_dim, kv_heads=None, seq_kv=None,
causal=False, backward=False, dtype="bf16", kernel=None, fidelity="fast",
power_state="sustained", head_dim_v=None)`` takes Q [batch, heads, seq_q, head_dim] against
K [batch, kv_heads, seq_kv, head_dim] and V [batch, kv_heads, seq_kv, head_dim_v] (MHA, GQA, MQA;
``head_dim_v`` defaults to ``head_dim``; DeepSeek MLA runs 192 / 128), causal (top-left aligned, as
PyTorch ``is_causal``) or not, and one kernel variant (``attention_variants.py``: ``fa2``, ``fa3``,
``fa4``, ``efficient``; default: the fastest for the GPU's architecture). The pieces:

- ``attention_model.py``: the problem, the variant's SMEM / TMEM budget for the head dim (a head
  dim that does not fit is an error, never a silent mis-simulation) and the cost of one block:
  MMAs on the tensor core (or the legacy ``mma.sync`` path), softmax on the MUFU and FP32 pipes
  (``engine/sfu.py``), SMEM reads, overlapped as far as the variant's pipelining allows.
- ``attention_run.py``: the CTAs (Q tiles forward, K/V tiles backward; masked blocks skipped,
  diagonal blocks computed), split-KV for decode, the auxiliary kernels (decode combine; backward
  preprocessing, dQ conversion, GQA dK/dV reduction, fa2's layout copies), the clock solve
  (simulate at boost, solve the clock for the activity, re-simulate) and the result.
- ``attention_sim.py``: the discrete-event simulation of the CTAs on the SMs.
- ``attention_validate.py``: ``validate``'s ``attention`` rows, timed as the calibration harness
  timed them.

FLOPs convention: forward 2*B*H*Sq*Skv*d_qk (S = Q K^T) + 2*B*H*Sq*Skv*d_v (O = P V), which is
4*B*H*Sq*Skv*D when the dims are equal, halved for causal; backward 2.5x that.
"""

from blackwell_sim.engine.kernels.attention_model import AttentionProblem, make_problem  # noqa: F401
from blackwell_sim.engine.kernels.attention_run import simulate_attention  # noqa: F401
from blackwell_sim.engine.kernels.attention_validate import VALIDATORS  # noqa: F401
