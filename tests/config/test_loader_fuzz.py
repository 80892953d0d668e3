"""Random YAML documents never make the loader raise anything but ConfigError."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blackwell_sim import ConfigError, load_config
from blackwell_sim.config import field_help
from blackwell_sim.config.gpu import GPUConfig

KEYS = sorted({k.split(".")[0] for k in field_help(GPUConfig)} | {"extends", "kind", "gpu", "fabric"})
LEAVES = sorted({k.split(".")[-1] for k in field_help(GPUConfig)})

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["b200", "h100-sxm", "system", "gpu", "1e9", "-1", "tcgen05"]))
docs = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS + LEAVES), st.text(max_size=8), st.integers()),
                        children, max_size=5)),
    max_leaves=25)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=docs, base=st.sampled_from([None, "b200", "h100-sxm", "hgx-b200-8"]))
def test_random_documents_only_raise_config_error(tmp_path_factory, doc, base):
    if isinstance(doc, dict) and base is not None:
        doc = {"extends": base, **{k: v for k, v in doc.items() if k != "extends"}}
    path = tmp_path_factory.mktemp("fuzz") / "doc.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_only_raises_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "doc.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=20), value=scalars)
def test_random_overrides_only_raise_config_error(key, value):
    try:
        load_config("b200", overrides={key: value})
    except ConfigError as exc:
        assert "\n" not in str(exc)
