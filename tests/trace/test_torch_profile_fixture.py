"""The committed real torch.profiler capture (H100, 2-layer transformer training step) imports with
the right shapes. Expected shapes come from the captured model's description (capture_meta.json,
written by benchmarks/capture_torch_profile.py), not from the importer."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from blackwell_sim.trace.io import load_trace, parse_document
from blackwell_sim.trace.torch_profile import import_torch_profile


@pytest.fixture(scope="module")
def fixture_dir(request):
    return request.config.rootpath / "tests" / "fixtures" / "torch_profile"


@pytest.fixture(scope="module")
def meta(fixture_dir):
    return json.loads((fixture_dir / "capture_meta.json").read_text())


@pytest.fixture(scope="module")
def imported(fixture_dir):
    return import_torch_profile(fixture_dir / "torch_profile_small_transformer.json.gz")


def _linears(cfg):
    """(in, out) of every linear layer in forward order, then the LM head."""
    per_layer = [tuple(cfg["linear_layers"][n][:2]) for n in ("qkv", "proj", "fc1", "fc2")]
    return per_layer * cfg["layers"], (cfg["hidden"], cfg["vocab"])


def test_forward_gemms_in_order(imported, meta):
    cfg = meta["config"]
    tokens = cfg["batch"] * cfg["seq"]
    blocks, head = _linears(cfg)
    expected = [(tokens, out, inp, 1) for inp, out in blocks] + [(tokens, head[1], head[0], 1)]
    got = [(o["m"], o["n"], o["k"], o.get("batch", 1)) for o in imported["ops"]
           if o["op"] == "gemm" and o["phase"] == "fwd" and o["dtype"] == "bf16"][:len(expected)]
    assert got == expected


def _canon(m, n, k):
    """A GEMM up to transposition (C^T = B^T A^T has the same K and swaps M and N)."""
    return tuple(sorted((m, n))), k


def test_backward_gemms_are_dgrad_and_wgrad_of_every_linear(imported, meta):
    cfg = meta["config"]
    tokens = cfg["batch"] * cfg["seq"]
    blocks, head = _linears(cfg)
    expected = Counter()
    for inp, out in blocks + [head]:
        expected[_canon(tokens, inp, out)] += 1   # dgrad: dX[T, in] = dY[T, out] W[out, in]
        expected[_canon(out, inp, tokens)] += 1   # wgrad: dW[out, in] = dY^T X, K = tokens
    got = Counter(_canon(o["m"], o["n"], o["k"]) for o in imported["ops"]
                  if o["op"] == "gemm" and o["phase"] == "bwd")
    assert all(o.get("batch", 1) == 1 for o in imported["ops"] if o["op"] == "gemm" and o["phase"] == "bwd")
    assert got == expected


def test_extra_gemms_and_total_count(imported, meta):
    cfg = meta["config"]
    b, m, k, n = cfg["extras"]["bmm"]
    sm, sn, sk = cfg["extras"]["scaled_mm"]
    gemms = [o for o in imported["ops"] if o["op"] == "gemm"]
    assert {"m": m, "n": n, "k": k, "batch": b, "dtype": "bf16"}.items() <= \
        next(o for o in gemms if o.get("batch", 1) > 1).items()
    fp8 = [o for o in gemms if o["dtype"] == "fp8_e4m3"]
    assert [(o["m"], o["n"], o["k"]) for o in fp8] == [(sm, sn, sk)]
    linear_count = len(_linears(cfg)[0]) + 1
    assert len(gemms) == 3 * linear_count + 2


def test_attention_forward_and_backward(imported, meta):
    cfg = meta["config"]
    heads, head_dim = cfg["heads"], cfg["hidden"] // cfg["heads"]
    attn = [o for o in imported["ops"] if o["op"] == "attention"]
    assert [o["backward"] for o in attn] == [False] * cfg["layers"] + [True] * cfg["layers"]
    for o in attn:
        assert (o["batch"], o["heads"], o["kv_heads"], o["seq_q"], o["seq_kv"], o["head_dim"]) == \
            (cfg["batch"], heads, heads, cfg["seq"], cfg["seq"], head_dim)
        assert o["causal"] is cfg["causal"]
        assert o["phase"] == ("bwd" if o["backward"] else "fwd")


def test_measured_times_come_from_the_kernels(imported, fixture_dir):
    raw = json.loads(gzip.decompress((fixture_dir / "torch_profile_small_transformer.json.gz").read_bytes()))
    kernel_s = sum(e["dur"] for e in raw["traceEvents"] if e.get("cat") == "kernel") * 1e-6
    measured = [o.get("measured_s") for o in imported["ops"]]
    assert all(t is not None and t > 0 for t in measured)
    # GEMMs and attention are most but not all of the step's kernel time (norms, loss, Adam...)
    assert 0.3 * kernel_s < sum(measured) < kernel_s


def test_one_rank_all_reduce_is_dropped_and_config_is_h100(imported, meta):
    assert meta["parts"]["all_reduce_elements"] > 0  # the capture did run a (one-rank) all-reduce
    assert not [o for o in imported["ops"] if o["op"] not in ("gemm", "attention")]
    assert imported["config"] == "h100-sxm" and "one-rank collectives dropped" in imported["description"]
    parse_document(imported)


def test_cli_import_writes_a_runnable_trace(cli, fixture_dir, tmp_path):
    out = tmp_path / "imported.yaml"
    r = cli("import-torch-profile", str(fixture_dir / "torch_profile_small_transformer.json.gz"), "-o", str(out),
            "--json")
    assert r.returncode == 0, r.stderr
    data = r.json()
    assert (data["gemm"], data["attention"], data["collectives"]) == (29, 4, 0)
    trace = load_trace(out)
    assert len(trace.ops) == 33 and trace.config == "h100-sxm"
    assert all(op.measured_s and op.measured_s > 0 for op in trace.ops)
    r = cli("import-torch-profile", str(fixture_dir / "torch_profile_small_transformer.json.gz"), "-o", str(out),
            "--all-kernels", "--json")
    assert r.returncode == 0 and r.json()["elementwise"] == len(load_trace(out).ops) - 33 > 0


def test_all_kernels_accounts_for_every_kernel_once(fixture_dir, imported):
    path = fixture_dir / "torch_profile_small_transformer.json.gz"
    raw = json.loads(gzip.decompress(path.read_bytes()))
    kernel_s = sum(e["dur"] for e in raw["traceEvents"] if e.get("cat") == "kernel") * 1e-6
    everything = import_torch_profile(path, all_kernels=True)
    assert sum(o["measured_s"] for o in everything["ops"]) == pytest.approx(kernel_s, rel=1e-9)
    same = [o for o in everything["ops"] if o["op"] != "elementwise"]
    assert same == imported["ops"]  # GEMMs and attention unchanged, in the same order
    phases = Counter(o["phase"] for o in everything["ops"] if o["op"] == "elementwise")
    assert set(phases) == {"fwd", "bwd", "optim"}
    parse_document(everything)
