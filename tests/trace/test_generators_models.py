"""Model descriptions and format recipes: bundled models, strict validation, parameter counts."""

from __future__ import annotations

import pytest

from blackwell_sim.errors import BlackwellSimError
from blackwell_sim.trace.generators import FORMAT_RECIPES, get_format_recipe, load_model, model_names, parameter_count


def test_bundled_models_are_package_data():
    assert model_names() == ["deepseek-v3-like", "llama3-70b", "llama3-8b"]


@pytest.mark.parametrize("name, published", [
    ("llama3-8b", 8.03e9),          # model card: 8.03B
    ("llama3-70b", 70.6e9),         # model card: 70.6B
    ("deepseek-v3-like", 671e9),    # arXiv 2412.19437: 671B total (without the MTP module)
])
def test_parameter_counts_match_published_totals(name, published):
    assert parameter_count(load_model(name)) == pytest.approx(published, rel=0.003)


def test_deepseek_active_parameters_match_published():
    spec = load_model("deepseek-v3-like")
    moe = spec.moe
    per_expert = 3 * spec.hidden * moe.expert_ffn
    inactive = (spec.layers - moe.first_dense_layers) * (moe.experts - moe.top_k) * per_expert
    assert parameter_count(spec) - inactive == pytest.approx(37e9, rel=0.02)  # "37B activated"


def test_mapping_and_defaults():
    spec = load_model({"hidden": 1024, "heads": 16, "layers": 2, "vocab": 1000, "ffn": 4096})
    assert (spec.name, spec.n_kv_heads, spec.dim_per_head, spec.moe) == ("custom", 16, 64, None)


@pytest.mark.parametrize("raw, message", [
    ({"hidden": 1024, "heads": 16, "layers": 2, "vocab": 1000, "ffn": 4096, "hiden": 3},
     "key 'hiden': unknown key; did you mean 'hidden'?"),
    ({"hidden": 1024, "heads": 16, "layers": 2, "vocab": 1000}, "key 'ffn': missing required key"),
    ({"hidden": 1024, "heads": 16, "layers": -2, "vocab": 1000, "ffn": 1}, "key 'layers': must be > 0 (got -2)"),
    ({"hidden": 1024, "heads": 16, "layers": True, "vocab": 1000, "ffn": 1}, "key 'layers': expected an integer"),
    ({"hidden": 1024, "heads": 16, "kv_heads": 5, "layers": 2, "vocab": 1000, "ffn": 1}, "key 'kv_heads': must divide heads"),
    ({"hidden": 1000, "heads": 16, "layers": 2, "vocab": 1000, "ffn": 1}, "key 'heads': must divide hidden"),
    ({"hidden": 1024, "heads": 16, "layers": 2, "vocab": 1000, "ffn": 1,
      "moe": {"experts": 4, "top_k": 8, "expert_ffn": 64}}, "key 'moe.top_k': must be <= moe.experts"),
    ({"hidden": 1024, "heads": 16, "layers": 2, "vocab": 1000, "ffn": 1,
      "moe": {"experts": 4, "top_k": 2, "expert_ffm": 64}}, "key 'moe.expert_ffm': unknown key; did you mean 'expert_ffn'?"),
])
def test_bad_descriptions_one_line(raw, message):
    with pytest.raises(BlackwellSimError) as err:
        load_model(raw)
    assert str(err.value).startswith("<model>: ") and message in str(err.value)


def test_unknown_model_and_bad_yaml(tmp_path):
    with pytest.raises(BlackwellSimError, match="unknown model 'llama9'; bundled: deepseek-v3-like, llama3-70b"):
        load_model("llama9")
    bad = tmp_path / "m.yaml"
    bad.write_text("hidden: [1, 2\n")
    with pytest.raises(BlackwellSimError, match=f"{bad}: cannot read model description"):
        load_model(bad)
    bad.write_text("hidden: 8\nheads: 2\nlayers: 1\nvocab: 8\nffn: 8\nbogus: 1\n")
    with pytest.raises(BlackwellSimError, match=f"{bad}: key 'bogus': unknown key"):
        load_model(bad)


def test_nvfp4_recipe_keeps_first_and_last_block_bf16():
    r = FORMAT_RECIPES["nvfp4"]
    assert [r.linear_format(i, 4) for i in range(4)] == [
        ("bf16", "bf16"), ("nvfp4", "nvfp4_te"), ("nvfp4", "nvfp4_te"), ("bf16", "bf16")]
    assert (r.lm_head, r.attention) == ("bf16", "bf16")
    assert FORMAT_RECIPES["nvfp4-all"].linear_format(0, 4) == ("nvfp4", "nvfp4_te")


def test_custom_recipe_mapping():
    r = get_format_recipe({"base": "nvfp4", "bf16_last_layers": 2, "lm_head": "fp8"})
    assert [r.linear_format(i, 4)[0] for i in range(4)] == ["bf16", "nvfp4", "bf16", "bf16"]
    assert r.lm_head == "fp8_e4m3"
    assert get_format_recipe({"linear": "mxfp4"}).linear_format(0, 4) == ("mxfp4", None)


@pytest.mark.parametrize("recipe, message", [
    ("nvfp8", "unknown recipe 'nvfp8'"), ({"linaer": "nvfp4"}, "unknown key 'linaer'; did you mean 'linear'?"),
    ({"linear": "fp5"}, "key 'linear': unknown dtype 'fp5'"), ({"bf16_first_layers": -1}, "expected an integer >= 0"),
    ({"numerics": "nope"}, "unknown numerics recipe 'nope'"),
])
def test_bad_recipes(recipe, message):
    with pytest.raises(BlackwellSimError, match=message.replace("(", r"\(").replace("?", r"\?")):
        get_format_recipe(recipe)
