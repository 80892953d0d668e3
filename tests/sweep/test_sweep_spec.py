"""Sweep specs: value lists and ranges, grid / zip order, and every bad spec failing up front."""

from __future__ import annotations

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.sweep import combinations, load_spec, parse_workload, plan
from blackwell_sim.sweep.spec import parse_values, value_range

GEMM = "gemm:m=256,n=256,k=256,dtype=bf16"


def test_values_from_text_lists_and_inclusive_ranges():
    assert parse_values("100,148", "k") == (100, 148)
    assert parse_values("a, b", "k") == ("a", "b")
    assert parse_values("100:160:20", "k") == (100, 120, 140, 160)   # stop included when hit
    assert parse_values("1:3", "k") == (1, 2, 3)                     # step 1 by default
    assert parse_values("160:100:-30", "k") == (160, 130, 100)
    assert parse_values({"start": 0.5, "stop": 1.0, "step": 0.25}, "k") == (0.5, 0.75, 1.0)
    assert parse_values([[0, 1], [2]], "k") == ((0, 1), (2,))        # list values (e.g. layers)
    assert value_range(0, 1.0, 0.1, "k")[3] == 0.3                   # no 0.30000000000000004


@pytest.mark.parametrize("raw, message", [
    ("", "no values"), ([], "no values"), ("160:100:20", "empty range"), ("1:5:0", "step must not be 0"),
    ("1,2,1", "value 1 is given twice"), ({"start": 1}, "needs start and stop"),
    ({"start": "a", "stop": 3}, "range start must be a number"), ([{"a": 1}], "not a scalar"),
])
def test_bad_values_are_one_line_naming_the_key(raw, message):
    with pytest.raises(BlackwellSimError, match=message) as info:
        parse_values(raw, "vary: sm.count")
    assert str(info.value).startswith("vary: sm.count: ") and "\n" not in str(info.value)


def test_grid_puts_the_first_key_slowest_and_zip_pairs_values():
    spec = load_spec(trace=GEMM, vary=["sm.count=100,148", "m=256,512,1024"])
    assert [tuple(p.values()) for p in combinations(spec)] == [
        (100, 256), (100, 512), (100, 1024), (148, 256), (148, 512), (148, 1024)]
    spec = load_spec(trace=GEMM, vary=["sm.count=100,120,148", "m=256,512,1024"], combine="zip")
    assert [tuple(p.values()) for p in combinations(spec)] == [(100, 256), (120, 512), (148, 1024)]
    spec = load_spec(trace=GEMM, vary=["sm.count=100,148", "m=256,512,1024"], combine="zip")
    with pytest.raises(BlackwellSimError, match="--zip: every varied key needs as many values; got sm.count 2, m 3"):
        combinations(spec)


def test_plan_splits_keys_into_platform_workload_and_config():
    spec = load_spec(trace=GEMM, config="h100-sxm", overrides={"hbm.bandwidth_gbps": 4000},
                     vary=["config=h100-sxm,b200", "format=bf16,fp8_e4m3", "sm.count=100"])
    points = plan(spec)
    assert len(points) == 4 and [p.index for p in points] == [0, 1, 2, 3]
    p = points[3]
    assert p.params == {"config": "b200", "format": "fp8_e4m3", "sm.count": 100}
    assert p.platform == "b200"
    assert p.overrides == {"hbm.bandwidth_gbps": 4000, "sm.count": 100}
    assert p.trace["ops"][0]["dtype"] == "fp8_e4m3" and p.trace["ops"][0]["m"] == 256
    assert len({q.hash for q in points}) == 4                       # every point is a distinct input


def test_hash_depends_on_what_runs_not_on_how_it_is_written():
    a = plan(load_spec(trace=GEMM, vary=["sm.count=148"]))[0]
    b = plan(load_spec(trace="gemm:m=256,n=256,k=256", config="b200", vary=["sm.count=148"]))[0]
    c = plan(load_spec(trace=GEMM, vary=["sm.count=147"]))[0]
    assert a.hash == b.hash            # dtype bf16 is the default; config b200 is the default
    assert a.hash != c.hash


@pytest.mark.parametrize("kwargs, message", [
    ({"vary": ["sm.cout=100"]}, "vary sm.cout=100: override: key 'sm.cout': unknown key (did you mean 'sm.count'?)"),
    ({"vary": ["sm.count=abc"]}, "vary sm.count='abc': override: key 'sm.count': expected an integer, got str 'abc'"),
    ({"vary": ["m=256,x"]}, "vary m='x': <document>: op 0 ('gemm'): m: expected an integer"),
    ({"vary": ["config=b200,nope"]}, "vary config='nope': preset 'nope': unknown preset"),
    ({"vary": ["sm.count=100,0"]}, "vary sm.count=0: override: key 'sm.count'"),
    ({"vary": ["format=bf16", "dtype=fp8_e4m3"]}, "vary: key 'dtype' is varied twice"),
    ({"vary": []}, "nothing to vary"),
    ({"vary": ["sm.count"]}, "--vary: expected key=v1,v2,..."),
])
def test_bad_specs_fail_in_plan_before_any_point_runs(kwargs, message):
    with pytest.raises(BlackwellSimError) as info:
        plan(load_spec(trace=GEMM, **kwargs))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_generated_workload_parameters_are_checked_by_building_each_trace():
    with pytest.raises(BlackwellSimError, match=r"vary tp=3: generate: argument 'tp': 3 does not divide"):
        plan(load_spec(trace="gen:llama3-8b:decode:kv_len=128,layers=1", vary=["tp=1,3"]))
    with pytest.raises(BlackwellSimError, match=r"--trace: unknown generate argument 'bacth' \(did you mean 'batch'"):
        load_spec(trace="gen:llama3-8b:decode:bacth=2", vary=["tp=1"])
    spec = load_spec(trace="gen:llama3-8b:decode:kv_len=128,layers=1", vary=["sequence=64", "batch=2,4"])
    points = plan(spec)
    assert [p.tokens_per_step for p in points] == [2, 4]            # decode: one token per sequence
    assert parse_workload("gen:llama3-8b:train:seq=64").tokens_per_step({"batch": 3}) == 192


def test_workload_strings_and_mappings():
    w = parse_workload("gemm:m=1,n=2,k=3,format=nvfp4")
    assert w.kind == "op" and dict(w.args) == {"op": "gemm", "m": 1, "n": 2, "k": 3, "dtype": "nvfp4"}
    names = w.parameters()
    assert "format" in names and "m" in names and "name" not in names
    assert parse_workload({"generate": {"model": "llama3-70b", "mode": "decode"}}).parameters()[:2] == ("model", "mode")
    assert parse_workload({"ops": [{"op": "memcpy", "bytes": 4096}]}).kind == "document"
    for bad, message in [("nofile.yaml", "no trace file 'nofile.yaml'"), ("gen:llama3-8b", "expected gen:MODEL:MODE"),
                         ({"file": "a", "op": {}}, "expected one of the keys"),
                         ("gemm:m=1,nk", "expected key=value, got 'nk'")]:
        with pytest.raises(BlackwellSimError, match=message):
            parse_workload(bad)


def test_spec_file_keys_are_strict(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(f"trace: {GEMM}\nvary: {{sm.count: [100]}}\ncombien: zip\n")
    with pytest.raises(BlackwellSimError, match=rf"{path}: unknown key 'combien'; did you mean 'combine'\?"):
        load_spec(path)
    path.write_text(f"trace: {GEMM}\nvary: {{sm.count: {{start: 100, stop: 120, step: 10}}}}\nplot: total_time_s\n")
    spec = load_spec(path, vary=["m=256,512"])
    assert spec.vary == (("sm.count", (100, 110, 120)), ("m", (256, 512))) and spec.plot == "total_time_s"


def test_whole_combinations_are_checked_up_front_and_beyond_the_limit_each_value_once(monkeypatch):
    import blackwell_sim.sweep.spec as spec_module

    # TMEM of 256 columns holds 128 KB: (256, 262144) is impossible, each value alone is fine elsewhere
    vary = ["tmem.columns=512,256", "tmem.size_bytes=131072,262144"]
    with pytest.raises(BlackwellSimError, match=r"vary tmem.columns=256, tmem.size_bytes=262144: .*tmem"):
        plan(load_spec(trace=GEMM, vary=vary))
    monkeypatch.setattr(spec_module, "FULL_CHECK_POINTS", 0)
    points = plan(load_spec(trace=GEMM, vary=vary))       # values first seen in valid combinations
    assert len(points) == 4
    monkeypatch.setattr(spec_module, "FULL_CHECK_POINTS", 256)       # same hashes either way
    valid = [plan(load_spec(trace=GEMM, vary=[f"tmem.columns={c}", f"tmem.size_bytes={b}"]))[0]
             for c, b in ((512, 131072), (512, 262144), (256, 131072))]
    assert [p.hash for p in points[:3]] == [p.hash for p in valid]
    monkeypatch.setattr(spec_module, "FULL_CHECK_POINTS", 0)
    with pytest.raises(BlackwellSimError, match=r"vary tmem.size_bytes=262144, tmem.columns=256: .*tmem"):
        plan(load_spec(trace=GEMM, vary=["tmem.size_bytes=262144,131072", "tmem.columns=256,512"]))


def test_paths_in_a_spec_file_are_relative_to_it(tmp_path, monkeypatch):
    study = tmp_path / "study"
    study.mkdir()
    (study / "t.yaml").write_text("ops:\n- {op: gemm, m: 256, n: 256, k: 256}\n")
    (study / "gpu.yaml").write_text("extends: b200\nname: my-b200\n")
    (study / "s.yaml").write_text("config: gpu.yaml\ntrace: t.yaml\nvary: {sm.count: [64]}\n")
    monkeypatch.chdir(tmp_path)
    point = plan(load_spec("study/s.yaml"))[0]
    assert point.trace == str(study / "t.yaml") and point.platform == str(study / "gpu.yaml")
