"""Random profiler traces and model descriptions: a valid result or one BlackwellSimError line,
never another exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.generators import generate, load_model
from blackwell_sim.trace.io import parse_document
from blackwell_sim.trace.torch_profile import import_torch_profile
from blackwell_sim.trace.torch_profile_ops import ATTENTION_OPS, GEMM_OPS

NAMES = list(GEMM_OPS) + list(ATTENTION_OPS) + ["record_param_comms", "aten::add", "cudaLaunchKernel",
                                                "autograd::engine::evaluate_function: MmBackward0"]
SCALARS = (st.none() | st.booleans() | st.integers(-2, 5000) | st.floats(allow_nan=True, width=32)
           | st.sampled_from(["", "True", "c10::BFloat16", "float", "BFloat16", "allreduce", "[0, 1]", "x"]))
DIMS = st.lists(st.lists(st.integers(-1, 64) | st.booleans(), max_size=4) | SCALARS, max_size=6)
ARGS = st.fixed_dictionaries({}, optional={
    "Input Dims": DIMS, "Input type": st.lists(st.sampled_from(["c10::BFloat16", "float", "c10::Float8_e4m3fn",
                                                                "c10::Float4_e2m1fn_x2", "Scalar", "", "?"]), max_size=6),
    "Concrete Inputs": st.lists(st.sampled_from(["", "True", "False", "0."]), max_size=16),
    "correlation": st.integers(0, 3), "External id": st.integers(0, 3) | SCALARS,
    "Collective name": st.sampled_from(["allreduce", "allgather", "barrier", "all_to_all", "?"]),
    "In msg nelems": SCALARS, "Out msg nelems": SCALARS, "dtype": SCALARS, "Group size": SCALARS,
    "Process Group Ranks": SCALARS | st.lists(st.integers(-1, 3), max_size=3)})
EVENT = st.fixed_dictionaries(
    {"cat": st.sampled_from(["cpu_op", "kernel", "cuda_runtime", "cuda_driver", "ac2g"]) | SCALARS},
    optional={"name": st.sampled_from(NAMES) | SCALARS, "ts": st.integers(0, 100) | SCALARS,
              "dur": st.integers(0, 100) | SCALARS, "pid": st.integers(0, 1), "tid": st.integers(0, 1),
              "args": ARGS | SCALARS})
DOC = st.fixed_dictionaries({"traceEvents": st.lists(EVENT, max_size=8)},
                            optional={"deviceProperties": st.lists(st.fixed_dictionaries(
                                {"name": st.sampled_from(["NVIDIA H100 80GB HBM3", "NVIDIA B200", "?"])}), max_size=1),
                                "distributedInfo": st.fixed_dictionaries({"rank": SCALARS})}) | SCALARS


def _one_line(exc: BlackwellSimError) -> None:
    assert str(exc) and "\n" not in str(exc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(DOC)
def test_random_profiles_import_or_fail_with_one_line(tmp_path, doc):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    try:
        out = import_torch_profile(path)
    except BlackwellSimError as exc:
        _one_line(exc)
        return
    parse_document(out)


MODEL_KEYS = ["hidden", "heads", "kv_heads", "head_dim", "layers", "vocab", "ffn", "gated_mlp", "moe", "hiden"]
SMALL = st.integers(1, 8).map(lambda x: 8 * x)
MODELS = st.builds(lambda base, bad: {**base, **bad},
                   st.fixed_dictionaries({"hidden": SMALL, "heads": st.sampled_from([1, 2, 4, 8]), "layers": st.integers(1, 3),
                                          "vocab": SMALL, "ffn": SMALL},
                                         optional={"kv_heads": st.sampled_from([1, 2, 4]), "gated_mlp": st.booleans(),
                                                   "moe": st.fixed_dictionaries(
                                                       {"experts": st.integers(1, 8), "top_k": st.integers(1, 4),
                                                        "expert_ffn": SMALL},
                                                       optional={"shared_experts": st.integers(0, 2),
                                                                 "first_dense_layers": st.integers(0, 2)})}),
                   st.dictionaries(st.sampled_from(MODEL_KEYS), st.integers(-1, 64) | SCALARS, max_size=2))


@settings(max_examples=150, deadline=None)
@given(MODELS, st.sampled_from(["train", "prefill", "decode"]), st.integers(1, 4), st.integers(1, 2),
       st.integers(1, 2))
def test_random_models_generate_or_fail_with_one_line(raw, mode, tp, dp, pp):
    try:
        spec = load_model(raw)
        doc = generate(spec, mode=mode, batch=4, seq=16, kv_len=8 if mode == "decode" else None, tp=tp, dp=dp, pp=pp,
                       ep=dp if spec.moe is not None and spec.moe.experts % dp == 0 else 1)
    except BlackwellSimError as exc:
        _one_line(exc)
        return
    parse_document(doc)
