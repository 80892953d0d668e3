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

NAMES = list(GEMM_OPS) + list(ATTENTION_OPS) + ["record_param_comms", "aten::add", "aten::cat", "cudaLaunchKernel",
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
@given(DOC, st.booleans())
def test_random_profiles_import_or_fail_with_one_line(tmp_path, doc, all_kernels):
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    try:
        out = import_torch_profile(path, all_kernels=all_kernels)
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


def _valid_events() -> list[dict]:
    """A small well-formed profile: nested linear, attention, a collective, other kernels."""
    bf16 = "c10::BFloat16"

    def op(name, ts, dur, dims, types, ext, tid=1):
        return {"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur,
                "args": {"Input Dims": dims, "Input type": types, "External id": ext}}

    def launch(ts, corr, dur, tid=1):
        return [{"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": tid, "ts": ts,
                 "dur": 1, "args": {"correlation": corr}},
                {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": ts + 2, "dur": dur,
                 "args": {"correlation": corr, "External id": corr}}]

    q = [2, 4, 64, 32]
    return [op("aten::linear", 0, 50, [[2, 64, 32], [16, 32], []], [bf16, bf16, ""], 1),
            op("aten::mm", 10, 30, [[128, 32], [32, 16]], [bf16, bf16], 2), *launch(15, 1, 5.0),
            op("aten::scaled_dot_product_attention", 60, 40, [q, q, q, [], [], [], [], []], [bf16] * 3 + [""] * 5, 3),
            *launch(70, 2, 7.0),
            {"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1, "ts": 120, "dur": 10,
             "args": {"Collective name": "allreduce", "In msg nelems": 64, "Out msg nelems": 64, "dtype": "BFloat16",
                      "Group size": 2, "Process Group Ranks": "[0, 1]"}}, *launch(122, 3, 9.0),
            op("aten::add", 140, 10, [[4, 8], [4, 8]], [bf16, bf16], 4), *launch(142, 4, 1.0),
            {"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: MmBackward0", "pid": 1,
             "tid": 2, "ts": 200, "dur": 50, "args": {}},
            op("aten::mm", 210, 20, [[128, 16], [16, 32]], [bf16, bf16], 5, tid=2), *launch(212, 5, 3.0, tid=2)]


MUTATION = st.tuples(st.integers(0, 19), st.sampled_from(["name", "ts", "dur", "tid", "cat", "args", "Input Dims",
                                                          "Input type", "correlation", "Group size"]),
                     SCALARS | DIMS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(st.lists(MUTATION, max_size=3), st.booleans())
def test_mutated_valid_profiles_import_or_fail_with_one_line(tmp_path, mutations, all_kernels):
    events = _valid_events()
    for index, key, value in mutations:
        ev = events[index % len(events)]
        if key in ("Input Dims", "Input type", "correlation", "Group size") and isinstance(ev.get("args"), dict):
            ev["args"][key] = value
        else:
            ev[key] = value
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps({"traceEvents": events}))
    try:
        out = import_torch_profile(path, all_kernels=all_kernels)
    except BlackwellSimError as exc:
        _one_line(exc)
        return
    parse_document(out)
    if not mutations:
        assert [o["op"] for o in out["ops"]] == ["gemm", "attention", "all_reduce"] + ["elementwise"] * all_kernels \
            + ["gemm"]
