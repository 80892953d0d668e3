"""The committed real 2-rank capture (benchmarks/capture_torch_profile.py --world 2, NCCL on two
H200s): both rank files import into one trace whose collectives carry the sizes the capture used.
Expected values come from capture_ranks_meta.json, not from the importer."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from blackwell_sim.trace.io import parse_document
from blackwell_sim.trace.torch_profile import import_torch_profile


@pytest.fixture(scope="module")
def ranks_dir(request):
    return request.config.rootpath / "tests" / "fixtures" / "torch_profile" / "ranks"


@pytest.fixture(scope="module")
def meta(ranks_dir):
    return json.loads((ranks_dir / "capture_ranks_meta.json").read_text())


@pytest.fixture(scope="module")
def doc(ranks_dir, meta):
    return import_torch_profile([ranks_dir / f"torch_profile_rank{r}.json.gz" for r in range(meta["world"])])


def test_collectives_merge_with_nccl_tests_sizes(doc, meta):
    n, world, bf16 = meta["config"]["collective_elements"], meta["world"], 2
    colls = [(o["op"], o["bytes"], o["group"]) for o in doc["ops"] if "group" in o]
    group = list(range(world))
    assert colls == [("all_reduce", meta["grad_elements"] * bf16, group),
                     ("all_gather", n["all_gather_in"] * world * bf16, group),   # the gathered output
                     ("reduce_scatter", n["reduce_scatter_in"] * bf16, group),   # the input
                     ("all_to_all", n["all_to_all"] * bf16, group),
                     ("broadcast", n["broadcast"] * bf16, group)]
    assert all(o["measured_s"] > 0 for o in doc["ops"] if "group" in o)
    assert doc["system"] == ("h200x2-nvlink" if "H200" in meta["device"] else "hgx-h100-4")  # the machine
    parse_document(doc)


def test_every_rank_has_the_blocks_gemms_and_attention(doc, meta):
    cfg = meta["config"]
    t, h, ffn = cfg["batch"] * cfg["seq"], cfg["hidden"], cfg["ffn"]
    linears = [(h, 3 * h), (h, h), (h, ffn), (ffn, h)]  # qkv, proj, fc1, fc2 (in, out)
    expected = Counter((t, out, inp) for inp, out in linears)                      # forward
    expected += Counter(tuple(sorted((inp, out))) + (t,) for inp, out in linears)  # wgrad, either layout
    # dgrad of every layer but the first: the block's input does not require grad
    expected += Counter(tuple(sorted((t, inp))) + (out,) for inp, out in linears[1:])
    for rank in range(meta["world"]):
        got = Counter()
        for o in doc["ops"]:
            if o["op"] == "gemm" and o["rank"] == rank:
                got[(o["m"], o["n"], o["k"]) if o["phase"] == "fwd" else tuple(sorted((o["m"], o["n"]))) + (o["k"],)] += 1
        assert got == expected
        attn = [o for o in doc["ops"] if o["op"] == "attention" and o["rank"] == rank]
        assert [(o["batch"], o["heads"], o["seq_q"], o["head_dim"], o["causal"], o["backward"]) for o in attn] == [
            (cfg["batch"], cfg["heads"], cfg["seq"], h // cfg["heads"], True, False),
            (cfg["batch"], cfg["heads"], cfg["seq"], h // cfg["heads"], True, True)]
