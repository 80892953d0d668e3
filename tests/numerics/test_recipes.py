"""Training-recipe pieces: random Hadamard transform, delayed / current scaling, named recipes."""

from __future__ import annotations

import numpy as np
import pytest

from blackwell_sim.numerics import (
    RECIPES,
    DelayedScaling,
    QuantizedTensor,
    cast,
    current_scale,
    get_recipe,
    quantize,
    random_hadamard_transform,
    rht_matrix,
)
from blackwell_sim.numerics.recipes import WGRAD_SIGN_VECTOR, hadamard_matrix

TE_SIGNS = [1, 1, 1, -1, 1, -1, -1, -1, -1, -1, -1, 1, -1, 1, -1, -1]
FLT_MAX = np.float32(np.finfo(np.float32).max)


def test_rht_matrix_definition():
    assert list(WGRAD_SIGN_VECTOR) == TE_SIGNS
    h = hadamard_matrix(16)
    assert np.array_equal(h @ h.T, 16 * np.eye(16)) and np.array_equal(h, h.T)
    m = rht_matrix()
    np.testing.assert_array_equal(m, np.diag(TE_SIGNS) @ h / 4)   # diag(S) * H16 / 4
    assert set(np.unique(np.abs(m))) == {0.25}
    np.testing.assert_allclose(m @ m.T, np.eye(16), atol=0)
    # the signs flip the *input*: transforming unit vector e_i gives row i = S_i * H[i, :] / 4
    for i in range(16):
        e = np.zeros(16, np.float32)
        e[i] = 1.0
        np.testing.assert_array_equal(random_hadamard_transform(e), (TE_SIGNS[i] * h[i] / 4).astype(np.float32))


def test_rht_output_is_bf16_and_axis_consistent():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 48)).astype(np.float32)
    y = random_hadamard_transform(x, axis=0)
    np.testing.assert_array_equal(cast(y, "bf16"), y)                     # rounded to bf16
    np.testing.assert_array_equal(y, random_hadamard_transform(x.T.copy(), axis=-1).T)
    blocks = cast(x, "bf16").T.reshape(-1, 16).astype(np.float64)
    expected = cast((blocks @ rht_matrix()).astype(np.float32), "bf16").reshape(48, 32).T
    np.testing.assert_array_equal(y, expected)
    exact = random_hadamard_transform(cast(x, "bf16"), output_bf16=False)
    back = random_hadamard_transform(exact, inverse=True, input_bf16=False, output_bf16=False)
    np.testing.assert_allclose(back, cast(x, "bf16"), rtol=0, atol=1e-6)


def test_rht_spreads_a_spike_over_its_block():
    x = np.zeros((2, 32), np.float32)
    x[0, 5] = 20.0
    y = random_hadamard_transform(x)
    np.testing.assert_array_equal(np.abs(y[0, :16]), np.full(16, 5.0, np.float32))   # 20 / 4
    assert np.all(y[0, 16:] == 0) and np.all(y[1] == 0)


def test_rht_bad_input():
    with pytest.raises(ValueError, match="axis -1 has size 20, not a multiple of the Hadamard size 16"):
        random_hadamard_transform(np.zeros((2, 20), np.float32))
    with pytest.raises(ValueError, match="signs"):
        rht_matrix((1, -1))


def test_current_scale_rules():
    assert current_scale(2.0, 448.0) == np.float32(224.0)
    assert current_scale(0.0, 448.0) == 1.0
    assert current_scale(np.inf, 448.0) == 1.0 and current_scale(np.nan, 448.0) == 1.0
    assert current_scale(1e-45, 448.0) == FLT_MAX
    assert current_scale(3.0, 448.0, margin=2) == np.float32(np.float32(448.0) / np.float32(3.0)) / 4


def test_delayed_scaling_history():
    ds = DelayedScaling("e4m3", amax_history_len=3, amax_compute_algo="max", margin=1)
    x = np.array([[1.0, -4.0]], np.float32)
    q = ds.quantize(x)                      # first step uses the initial scale 1.0
    assert isinstance(q, QuantizedTensor) and q.global_scale == 1.0
    assert ds.scale == np.float32(448 / 4 / 2)
    ds.update(2.0)                          # history [2, 4, 0]: max is still 4
    assert ds.scale == np.float32(56.0)
    ds.update(0.0)
    ds.update(1.0)                          # history [1, 0, 2]: 4 rolled out
    assert ds.scale == np.float32(112.0)
    for bad in (0.0, np.inf, np.nan):       # keep the previous scale
        most_recent = DelayedScaling("e5m2", amax_history_len=4, amax_compute_algo="most_recent")
        most_recent.update(8.0)
        assert most_recent.scale == np.float32(57344 / 8)
        most_recent.update(bad)
        assert most_recent.scale == np.float32(57344 / 8)
    tiny = DelayedScaling()
    tiny.update(1e-45)
    assert tiny.scale == FLT_MAX
    with pytest.raises(ValueError, match="amax_compute_algo"):
        DelayedScaling(amax_compute_algo="mean")
    with pytest.raises(ValueError, match="fmt"):
        DelayedScaling("e2m1")


def test_recipe_registry_and_nvfp4_treatments():
    assert {"nvfp4_te", "mxfp8", "fp8_delayed", "bf16"} <= set(RECIPES)
    recipe = get_recipe("nvfp4_te")
    fprop_in = recipe.treatment("fprop", "input")
    assert fprop_in.fmt == "nvfp4" and fprop_in.block_shape is None and not fprop_in.hadamard
    assert recipe.treatment("fprop", "weight").block_shape == (16, 16)
    assert recipe.treatment("dgrad", "weight").block_shape == (16, 16)
    assert recipe.treatment("dgrad", "grad_output").rounding == "sr"
    wgrad_dy = recipe.treatment("wgrad", "grad_output")
    assert wgrad_dy.hadamard and wgrad_dy.rounding == "sr"
    assert recipe.treatment("wgrad", "input").hadamard and recipe.treatment("wgrad", "input").rounding == "rne"
    x = np.random.default_rng(2).standard_normal((64, 32)).astype(np.float32)
    a = recipe.quantize_operand("wgrad", "grad_output", x, axis=0, rng=7)
    b = recipe.quantize_operand("wgrad", "grad_output", x, axis=0, rng=7)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.axis == 0 and a.rounding == "sr"
    expected = quantize(random_hadamard_transform(x, axis=0), "nvfp4", axis=0, rounding="sr", rng=7)
    np.testing.assert_array_equal(a.codes, expected.codes)
    assert get_recipe("mxfp8").treatment("fprop", "input").scale_rule == "rceil"
    bf16 = get_recipe("bf16").quantize_operand("fprop", "input", x)
    np.testing.assert_array_equal(bf16, cast(x, "bf16"))
    delayed = get_recipe("fp8_delayed")
    with pytest.raises(ValueError, match="DelayedScaling"):
        delayed.quantize_operand("fprop", "input", x)
    q = delayed.quantize_operand("fprop", "input", x, delayed=DelayedScaling())
    assert q.fmt == "fp8_e4m3"
    with pytest.raises(ValueError, match="unknown recipe 'fp2'; known: nvfp4_te"):
        get_recipe("fp2")
    with pytest.raises(ValueError, match="unknown pair fprop/grad_output"):
        recipe.treatment("fprop", "grad_output")
