"""extends, overrides, and one clear error per class of bad config."""

from __future__ import annotations

import textwrap

import pytest

from blackwell_sim import ConfigError, load_config


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_extends_inherits_and_overrides(tmp_path):
    path = write(tmp_path, "mine.yaml", """
        extends: b200
        name: my B200
        sm: {count: 100}
        """)
    cfg = load_config(path)
    assert cfg.name == "my B200" and cfg.sm.count == 100
    assert cfg.sm.clock_mhz == load_config("b200").sm.clock_mhz  # inherited sibling key
    assert cfg.tmem == load_config("b200").tmem


def test_extends_chain_and_relative_path(tmp_path):
    write(tmp_path, "a.yaml", "extends: h100-sxm\nsm: {count: 100}\n")
    path = write(tmp_path, "b.yaml", "extends: a.yaml\nhbm: {bandwidth_gbps: 1000}\n")
    cfg = load_config(path)
    assert (cfg.sm.count, cfg.hbm.bandwidth_gbps, cfg.arch) == (100, 1000, "hopper")


def test_extends_cycle_is_reported(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


@pytest.mark.parametrize("key,value,attr", [
    ("sm.count", 160, ("sm", "count")), ("sm.clock_mhz", 2000, ("sm", "clock_mhz")),
    ("smem.size_bytes", 200000, ("smem", "size_bytes")), ("tmem.size_bytes", 131072, ("tmem", "size_bytes")),
    ("l2.size_bytes", 64 << 20, ("l2", "size_bytes")), ("hbm.bandwidth_gbps", 12000, ("hbm", "bandwidth_gbps")),
    ("power.limit_w", 1400, ("power", "limit_w")),
])
def test_documented_override_keys(key, value, attr):
    cfg = load_config("b200", overrides={key: value})
    assert getattr(getattr(cfg, attr[0]), attr[1]) == value


def test_override_values_are_type_checked_and_coerced():
    assert load_config("b200", overrides={"hbm.bandwidth_gbps": "1.2e4"}).hbm.bandwidth_gbps == 12000.0
    assert isinstance(load_config("b200", overrides={"sm.clock_mhz": 2000}).sm.clock_mhz, float)
    with pytest.raises(ConfigError, match="expected an integer, got float 1.5"):
        load_config("b200", overrides={"sm.count": 1.5})
    with pytest.raises(ConfigError, match="expected an integer, got bool"):
        load_config("b200", overrides={"sm.count": True})


def test_system_overrides_route_to_the_gpu():
    cfg = load_config("hgx-b200-8", overrides={"sm.count": 100, "gpu_count": 4})
    assert cfg.gpu.sm.count == 100 and cfg.gpu_count == 4


def test_system_extends_with_another_gpu():
    cfg = load_config("hgx-b300-8")
    assert cfg.gpu.name == "NVIDIA B300" and cfg.fabric.switches == 2


def test_unknown_key_in_file_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "typo.yaml", "extends: b200\nsm: {cuont: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "sm.cuont" in message and "did you mean 'sm.count'" in message


def test_unknown_override_key():
    with pytest.raises(ConfigError, match=r"override: key 'l2.sise_bytes': unknown key \(did you mean 'l2.size_bytes'\?\)"):
        load_config("b200", overrides={"l2.sise_bytes": 1})


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path, "t.yaml", "extends: b200\nhbm: {bandwidth_gbps: fast}\n")
    with pytest.raises(ConfigError, match=r"key 'hbm.bandwidth_gbps': expected a number, got str 'fast'"):
        load_config(path)


@pytest.mark.parametrize("key,value,message", [
    ("sm.count", -4, "value -4 must be >= 1"),
    ("l2.size_bytes", 0, "value 0 must be > 0"),
    ("sm.clock_mhz", 0, r"value 0\.0 must be > 0"),
    ("smem.size_bytes", -1, "value -1 must be > 0"),
])
def test_impossible_values(key, value, message):
    with pytest.raises(ConfigError, match=f"key '{key}': {message}"):
        load_config("b200", overrides={key: value})


def test_tmem_larger_than_lanes_times_columns():
    with pytest.raises(ConfigError, match="larger than lanes x columns"):
        load_config("b200", overrides={"tmem.size_bytes": 512 * 1024})
    cfg = load_config("b200", overrides={"tmem.size_bytes": 512 * 1024, "tmem.columns": 1024})
    assert cfg.tmem.usable_columns == 1024


def test_missing_key_names_file_and_key(tmp_path):
    doc = load_config("b200").to_dict()
    del doc["hbm"]["latency_ns"]
    import yaml
    path = write(tmp_path, "m.yaml", yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=rf"{path.name}: key 'hbm.latency_ns': missing required key"):
        load_config(path)


def test_round_trip_of_a_dumped_config(tmp_path):
    import yaml
    cfg = load_config("gb200-nvl72")
    path = write(tmp_path, "rt.yaml", yaml.safe_dump({"kind": "system", **cfg.to_dict()}))
    assert load_config(path) == cfg


@pytest.mark.parametrize("text,message", [
    ("sm: [1, 2\n", "invalid YAML"),
    ("- just\n- a list\n", "expected a mapping at the top level"),
    ("extends: b200\nsm: {count: 1}\nsm: {count: 2}\n", "duplicate key 'sm'"),
    ("extends: 42\n", "'extends' must name a preset"),
    ("extends: nosuchpreset\n", "unknown preset"),
    ("kind: rack\n", "kind must be 'gpu' or 'system'"),
])
def test_malformed_documents(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, "bad.yaml", text))


def test_unknown_preset_suggests_a_name():
    with pytest.raises(ConfigError, match="did you mean 'b200'"):
        load_config("b20")


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("no/such/file.yaml")


def test_system_link_count_must_match_gpu_links():
    with pytest.raises(ConfigError, match="sums to 19"):
        load_config("hgx-h100-8", overrides={"fabric.gpu_links_per_switch": [5, 5, 4, 5]})
