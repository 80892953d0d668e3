"""Importer mechanisms on hand-built Chrome traces: shape rules, nesting, kernel linking, collectives
and one-line errors."""

from __future__ import annotations

import gzip
import json

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.torch_profile import import_torch_profile

BF16 = "c10::BFloat16"


class Builder:
    """Events of one process: CPU ops on a thread, launches and kernels linked by correlation."""

    def __init__(self):
        self.events = []
        self.corr = 0

    def op(self, name, ts, dur, dims, types=None, concrete=None, tid=1, **args):
        a = {"Input Dims": dims, "Input type": types or [BF16] * len(dims), "External id": len(self.events)}
        if concrete is not None:
            a["Concrete Inputs"] = concrete
        a.update(args)
        self.events.append({"ph": "X", "cat": "cpu_op", "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur,
                            "args": a})
        return self

    def launch(self, ts, kernel_dur_us, tid=1, cat="cuda_runtime"):
        self.corr += 1
        self.events.append({"ph": "X", "cat": cat, "name": "cudaLaunchKernel", "pid": 1, "tid": tid, "ts": ts,
                            "dur": 1, "args": {"correlation": self.corr}})
        self.events.append({"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": ts + 5,
                            "dur": kernel_dur_us, "args": {"correlation": self.corr, "External id": -1}})
        return self

    def write(self, path, gz=False, device="NVIDIA H100 80GB HBM3"):
        doc = {"deviceProperties": [{"id": 0, "name": device}], "traceEvents": self.events}
        data = json.dumps(doc).encode()
        path.write_bytes(gzip.compress(data) if gz else data)
        return path


def _import(tmp_path, builder, **kw):
    return import_torch_profile(builder.write(tmp_path / "p.json"), **kw)["ops"]


def test_linear_nested_ops_give_one_gemm_with_folded_batch_dims(tmp_path):
    b = Builder().op("aten::linear", 0, 100, [[2, 3, 64, 32], [16, 32], []])
    b.op("aten::matmul", 10, 80, [[2, 3, 64, 32], [32, 16]]).op("aten::mm", 20, 60, [[384, 32], [32, 16]])
    b.launch(30, 7.0).launch(40, 5.0)
    (op,) = _import(tmp_path, b)
    assert (op["m"], op["n"], op["k"], op["dtype"], op["name"]) == (2 * 3 * 64, 16, 32, "bf16", "linear_0")
    assert op["measured_s"] == pytest.approx(12e-6)
    assert "batch" not in op


@pytest.mark.parametrize("dims, expected", [
    ([[2, 3, 64, 32], [32, 16]], (384, 16, 32, 1)),        # 2-D right operand: batch folds into M
    ([[2, 1, 64, 32], [5, 32, 16]], (64, 16, 32, 10)),     # broadcast batch dims
    ([[32], [32, 16]], (1, 16, 32, 1)),                     # vector x matrix
    ([[4, 64, 32], [32]], (256, 1, 32, 1)),                 # matrix x vector
])
def test_matmul_broadcasting(tmp_path, dims, expected):
    (op,) = _import(tmp_path, Builder().op("aten::matmul", 0, 10, dims))
    assert (op["m"], op["n"], op["k"], op.get("batch", 1)) == expected


def test_addmm_bmm_baddbmm(tmp_path):
    b = Builder().op("aten::addmm", 0, 10, [[16], [8, 32], [32, 16], [], []], [BF16] * 3 + ["Scalar"] * 2)
    b.op("aten::bmm", 20, 10, [[6, 8, 32], [6, 32, 16]]).op("aten::baddbmm", 40, 10, [[6, 8, 16], [6, 8, 32], [6, 32, 16]])
    ops = _import(tmp_path, b)
    assert [(o["m"], o["n"], o["k"], o.get("batch", 1)) for o in ops] == [(8, 16, 32, 1), (8, 16, 32, 6), (8, 16, 32, 6)]


@pytest.mark.parametrize("types, scale_dims, expected", [
    (["c10::Float8_e4m3fn"] * 2 + ["float"] * 2, [[], []], ("fp8_e4m3", 64)),
    (["c10::Float8_e4m3fn"] * 2 + ["c10::Float8_e8m0fnu"] * 2, [[128, 2], [2, 256]], ("mxfp8", 64)),
    (["c10::Float4_e2m1fn_x2"] * 2 + ["c10::Float8_e4m3fn"] * 2, [[128, 8], [8, 256]], ("nvfp4", 128)),
    (["c10::Float4_e2m1fn_x2"] * 2 + ["c10::Float8_e8m0fnu"] * 2, [[128, 4], [4, 256]], ("mxfp4", 128)),
])
def test_scaled_mm_formats(tmp_path, types, scale_dims, expected):
    dims = [[128, 64], [64, 256]] + scale_dims
    (op,) = _import(tmp_path, Builder().op("aten::_scaled_mm", 0, 10, dims, types))
    assert (op["dtype"], op["k"], op["m"], op["n"]) == expected + (128, 256)


def test_attention_variants_gqa_and_causal(tmp_path):
    q, kv = [2, 8, 128, 64], [2, 2, 256, 64]
    b = Builder().op("aten::scaled_dot_product_attention", 0, 50, [q, kv, kv, [], [], [], [], []],
                     concrete=["", "", "", "", "0.", "True", "", "True"])
    b.op("aten::_scaled_dot_product_flash_attention", 10, 30, [q, kv, kv])  # nested: ignored
    b.launch(20, 9.0)
    b.op("aten::_scaled_dot_product_flash_attention_backward", 100, 40, [q, q, kv, kv, q, [2, 8, 128]] + [[]] * 8,
         concrete=[""] * 10 + ["0.", "False"], tid=2)
    b.launch(110, 20.0, tid=2)
    fwd, bwd = _import(tmp_path, b)
    assert (fwd["batch"], fwd["heads"], fwd["kv_heads"], fwd["seq_q"], fwd["seq_kv"], fwd["head_dim"]) == \
        (2, 8, 2, 128, 256, 64)
    assert fwd["causal"] is True and fwd["backward"] is False and "kernel" not in fwd
    assert bwd["backward"] is True and bwd["causal"] is False and bwd["kernel"] == "fa2"
    assert (fwd["measured_s"], bwd["measured_s"]) == (pytest.approx(9e-6), pytest.approx(20e-6))


def test_backward_phase_from_autograd_scope(tmp_path):
    b = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    b.events.append({"ph": "X", "cat": "cpu_op", "name": "autograd::engine::evaluate_function: MmBackward0",
                     "pid": 1, "tid": 2, "ts": 100, "dur": 50, "args": {}})
    b.op("aten::mm", 110, 10, [[8, 16], [16, 32]], tid=2)
    assert [o["phase"] for o in _import(tmp_path, b)] == ["fwd", "bwd"]


def test_collectives_bytes_group_and_system(tmp_path):
    b = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    for i, (coll, nin, nout) in enumerate((("allreduce", 1000, 1000), ("_allgather_base", 125, 1000),
                                           ("reduce_scatter_tensor", 1000, 125), ("barrier", 0, 0))):
        b.events.append({"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1,
                         "ts": 100 + 50 * i, "dur": 20, "args": {"Collective name": coll, "In msg nelems": nin,
                                                                 "Out msg nelems": nout, "dtype": "BFloat16",
                                                                 "Group size": 8}})
    b.launch(105, 30.0)
    b.op("aten::mm", 400, 10, [[8, 32], [32, 16]])
    doc = import_torch_profile(b.write(tmp_path / "c.json"))
    ops = doc["ops"]
    assert doc["system"] == "hgx-h100-8" and "config" not in doc
    colls = [o for o in ops if o["op"] != "gemm"]
    assert [(o["op"], o["bytes"], o["group"]) for o in colls] == [
        ("all_reduce", 2000, list(range(8))), ("all_gather", 2000, list(range(8))),
        ("reduce_scatter", 2000, list(range(8)))]
    assert colls[0]["measured_s"] == pytest.approx(30e-6) and colls[0]["stream"] == "comm"
    assert colls[0]["deps"] == ["mm_0"] and ops[-1]["deps"] == ["reduce_scatter_0"]
    assert "1 non-collective comms events skipped" in doc["description"]


def test_external_id_link_when_no_launch_events(tmp_path):
    b = Builder().op("aten::linear", 0, 100, [[64, 32], [16, 32], [16]])
    b.op("aten::addmm", 10, 80, [[16], [64, 32], [32, 16], [], []])
    inner_ext = b.events[-1]["args"]["External id"]
    b.events.append({"ph": "X", "cat": "kernel", "name": "gemm", "pid": 0, "tid": 7, "ts": 50, "dur": 4.0,
                     "args": {"External id": inner_ext}})
    (op,) = _import(tmp_path, b)
    assert op["measured_s"] == pytest.approx(4e-6)


def test_gzip_and_kernel_less_ops(tmp_path):
    path = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]]).write(tmp_path / "p.json.gz", gz=True, device="CPU")
    doc = import_torch_profile(path)
    assert "measured_s" not in doc["ops"][0] and "config" not in doc and "system" not in doc


@pytest.mark.parametrize("events, message", [
    ([{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 5, "dur": 1, "args": {}}],
     "event 0 'aten::mm' (ts 5.000 us): no 'Input Dims' (export the profile with record_shapes=True)"),
    ([{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 5, "dur": 1,
       "args": {"Input Dims": [[8, 32], [31, 16]], "Input type": [BF16, BF16]}}], "inner dimensions differ (32 vs 31)"),
    ([{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 5, "dur": 1,
       "args": {"Input Dims": [[8, 32], [32, 16]], "Input type": ["c10::complex<float>", BF16]}}],
     "input 0: unsupported element type 'c10::complex<float>'"),
    ([{"ph": "X", "cat": "cpu_op", "name": "aten::bmm", "pid": 1, "tid": 1, "ts": 5, "dur": 1,
       "args": {"Input Dims": [[8, 32], [32, 16]], "Input type": [BF16, BF16]}}], "expected [b, m, k] x [b, k, n]"),
    ([{"ph": "X", "cat": "cpu_op", "name": "aten::add", "pid": 1, "tid": 1, "ts": 5, "dur": 1, "args": {}}],
     "no GEMM, attention or NCCL collective ops found"),
    ([{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": "x", "dur": 1, "args": {}}],
     "event 0 'aten::mm': 'ts'/'dur' must be numbers"),
])
def test_malformed_events_name_file_and_event(tmp_path, events, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"traceEvents": events}))
    with pytest.raises(BlackwellSimError) as err:
        import_torch_profile(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "not a Chrome-trace JSON file"), (b'{"foo": 1}', "no 'traceEvents' list"),
    (b"\x1f\x8b\x00garbage", "not a valid gzip file"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(BlackwellSimError, match=message):
        import_torch_profile(path)


def test_cli_errors_are_one_line_exit_2(cli_subprocess, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"traceEvents": [{"cat": "cpu_op", "name": "aten::mm", "ts": 1, "dur": 1,
                                                "args": {"Input Dims": [[4, 4]]}}]}))
    for args in ([str(bad), "-o", str(tmp_path / "o.yaml")], [str(tmp_path / "missing.json"), "-o", "o.yaml"],
                 [str(bad), "-o", str(tmp_path / "o.txt")]):
        r = cli_subprocess("import-torch-profile", *args)
        assert r.returncode == 2 and r.stdout == ""
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("blackwell-sim: error: ")
    assert not (tmp_path / "o.yaml").exists()


def _comms(b, ts, coll, nelems, group, dur=20):
    b.events.append({"ph": "X", "cat": "cpu_op", "name": "record_param_comms", "pid": 1, "tid": 1, "ts": ts,
                     "dur": dur, "args": {"Collective name": coll, "In msg nelems": nelems, "Out msg nelems": nelems,
                                          "dtype": "Float", "Group size": len(group),
                                          "Process Group Ranks": str(group)}})


def _rank_file(tmp_path, rank, kernel_us):
    b = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    _comms(b, 100, "allreduce", 256, [0, 1])
    b.launch(105, kernel_us)
    b.op("aten::mm", 200, 10, [[8, 16], [16, 32]])
    doc = {"distributedInfo": {"rank": rank, "world_size": 2}, "traceEvents": b.events,
           "deviceProperties": [{"name": "NVIDIA H100 80GB HBM3"}]}
    path = tmp_path / f"rank{rank}.json"
    path.write_text(json.dumps(doc))
    return path


def test_several_rank_files_merge_collectives(tmp_path):
    paths = [_rank_file(tmp_path, 1, 50.0), _rank_file(tmp_path, 0, 30.0)]
    doc = import_torch_profile(paths)
    assert doc["system"] == "hgx-h100-4"  # the smallest bundled H100 system holding 2 ranks
    by_name = {o["name"]: o for o in doc["ops"]}
    ar = by_name["all_reduce_0.g0"]
    assert (ar["bytes"], ar["group"], ar["measured_s"]) == (1024, [0, 1], pytest.approx(30e-6))
    assert sorted(ar["deps"]) == ["r0.mm_0", "r1.mm_0"]
    assert by_name["r0.mm_1"]["deps"] == by_name["r1.mm_1"]["deps"] == ["all_reduce_0.g0"]
    assert by_name["r1.mm_0"]["rank"] == 1 and len(doc["ops"]) == 5
    from blackwell_sim.trace.io import parse_document
    parse_document(doc)


def test_single_file_rank_from_distributed_info_and_group_ranks(tmp_path):
    doc = import_torch_profile(_rank_file(tmp_path, 1, 5.0))
    assert {o.get("rank") for o in doc["ops"] if o["op"] == "gemm"} == {1}
    assert next(o for o in doc["ops"] if o["op"] == "all_reduce")["group"] == [0, 1]
    assert import_torch_profile(tmp_path / "rank1.json", rank=0)["ops"][0]["rank"] == 0


def test_mismatched_rank_files_fail_one_line(tmp_path):
    good = _rank_file(tmp_path, 0, 5.0)
    b = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    _comms(b, 100, "allreduce", 512, [0, 1])
    other = tmp_path / "r1.json"
    other.write_text(json.dumps({"distributedInfo": {"rank": 1}, "traceEvents": b.events}))
    with pytest.raises(BlackwellSimError, match=r"all_reduce #0 of group \[0, 1\]: bytes differ across files "
                                                r"\(rank 0: 1024, rank 1: 2048\)"):
        import_torch_profile([good, other])
    b2 = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    _comms(b2, 100, "allgather", 256, [0, 1])
    other.write_text(json.dumps({"distributedInfo": {"rank": 1}, "traceEvents": b2.events}))
    with pytest.raises(BlackwellSimError, match="the files' collectives do not match"):
        import_torch_profile([good, other])


def test_cli_several_files(cli, tmp_path):
    paths = [str(_rank_file(tmp_path, r, 5.0)) for r in (0, 1)]
    r = cli("import-torch-profile", *paths, "-o", str(tmp_path / "o.json"), "--json")
    assert r.returncode == 0, r.stderr
    assert (r.json()["collectives"], r.json()["platform"]) == (1, "hgx-h100-4")
    r = cli("import-torch-profile", *paths, "--rank", "1", "-o", str(tmp_path / "o.json"))
    assert r.returncode == 2 and "only with one file" in r.stderr


def test_flash_attn_package_ops_use_batch_seq_heads_layout(tmp_path):
    q, kv = [2, 128, 8, 64], [2, 256, 2, 64]  # [batch, seq, heads, head_dim]
    b = Builder().op("flash_attn::_flash_attn_forward", 0, 50, [q, kv, kv] + [[]] * 8,
                     concrete=["", "", "", "0.", "0.125", "True"])
    b.op("flash_attn::_flash_attn_backward", 100, 50, [q, q, kv, kv, q, [2, 8, 128]] + [[]] * 9,
         concrete=[""] * 9 + ["0.", "0.125", "True"])
    fwd, bwd = _import(tmp_path, b)
    for op in (fwd, bwd):
        assert (op["batch"], op["heads"], op["kv_heads"], op["seq_q"], op["seq_kv"], op["head_dim"], op["causal"],
                op["kernel"]) == (2, 8, 2, 128, 256, 64, True, "fa2")
    assert (fwd["backward"], bwd["backward"]) == (False, True)


def test_grouped_mm_for_moe_experts(tmp_path):
    b = Builder().op("aten::_grouped_mm", 0, 10, [[1000, 64], [8, 64, 32], [8]])
    b.op("aten::_grouped_mm", 20, 10, [[8, 125, 64], [8, 64, 32]])
    ops = _import(tmp_path, b)
    assert [(o["batch"], o["m"], o["n"], o["k"]) for o in ops] == [(8, 125, 32, 64)] * 2


def test_all_kernels_picks_the_outermost_ops_around_recognised_ones(tmp_path):
    b = Builder().op("aten::einsum", 0, 100, [[6, 8, 32], [6, 32, 16]])      # holds a bmm: not an op itself
    b.op("aten::bmm", 10, 30, [[6, 8, 32], [6, 32, 16]]).launch(15, 4.0)
    b.op("aten::copy_", 50, 20, [[6, 8, 16], [6, 8, 16]]).launch(55, 2.0)   # einsum's other child: an op
    b.op("aten::add", 200, 10, [[4, 8], [4, 8], []], [BF16, BF16, "Scalar"]).launch(205, 1.0)
    b.op("aten::view", 300, 1, [[4, 8], []])                                 # no kernel: dropped
    b.events.append({"ph": "X", "cat": "user_annotation", "name": "Optimizer.step#AdamW.step", "pid": 1, "tid": 1,
                     "ts": 400, "dur": 50, "args": {}})
    b.op("aten::_fused_adamw_", 410, 30, [[[4, 8], [8]], [[4, 8], [8]]], ["TensorList", "TensorList"])
    b.launch(415, 3.0)
    default = _import(tmp_path, b)
    assert [o["name"] for o in default] == ["bmm_0"]
    ops = import_torch_profile(tmp_path / "p.json", all_kernels=True)["ops"]
    assert [(o["name"], o["op"], o["phase"], o["measured_s"]) for o in ops] == [
        ("bmm_0", "gemm", "fwd", pytest.approx(4e-6)), ("copy_0", "elementwise", "fwd", pytest.approx(2e-6)),
        ("add_0", "elementwise", "fwd", pytest.approx(1e-6)), ("fused_adamw_0", "elementwise", "optim",
                                                               pytest.approx(3e-6))]
    add, adam = ops[2], ops[3]
    assert (add["bytes_read"], add["bytes_written"], add["flops"]) == (2 * 32 * 2, 32 * 2, 0.0)
    assert (adam["bytes_read"], adam["bytes_written"]) == (2 * 40 * 2, 40 * 2)  # TensorLists at 2 bytes


def test_all_kernels_zero_dim_tensors_count_and_ops_without_tensors_are_left_out(tmp_path):
    b = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    b.op("aten::ones_like", 20, 5, [[], [], []], ["float", "", ""]).launch(21, 1.0)   # a 0-dim fp32 tensor
    b.op("aten::zeros", 40, 5, [[], [], []], ["", "", ""]).launch(41, 2.0)           # sizes are not tensors
    doc = import_torch_profile(b.write(tmp_path / "p.json"), all_kernels=True)
    assert [(o["name"], o.get("bytes_read"), o.get("bytes_written")) for o in doc["ops"]] == [
        ("mm_0", None, None), ("ones_like_0", 4, 4)]
    assert "1 ops without tensor inputs (2.0 us of kernels) left out" in doc["description"]


def test_ranks_beyond_every_bundled_system_need_a_config(tmp_path):
    b = Builder().op("aten::mm", 0, 10, [[8, 32], [32, 16]])
    _comms(b, 100, "allreduce", 256, list(range(100)))
    path = b.write(tmp_path / "p.json")
    with pytest.raises(BlackwellSimError, match="100 ranks of h100-sxm need a system preset; none bundled holds them"):
        import_torch_profile(path)
    assert import_torch_profile(path, config="my-cluster.yaml")["system"] == "my-cluster.yaml"


def test_attention_with_a_narrower_v_imports_head_dim_v(tmp_path):
    q, k, v = [1, 16, 128, 192], [1, 16, 128, 192], [1, 16, 128, 128]   # DeepSeek MLA: Q/K 192, V 128
    b = Builder().op("aten::scaled_dot_product_attention", 0, 50, [q, k, v, [], [], [], [], []],
                     concrete=["", "", "", "", "0.", "True", "", "False"])
    b.launch(20, 9.0)
    (op,) = _import(tmp_path, b)
    assert (op["head_dim"], op["head_dim_v"]) == (192, 128)
