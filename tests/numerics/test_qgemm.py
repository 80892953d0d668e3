"""qgemm: fast vs exact mode, wiring of codes/scales/global scales into tcgen05 words, sparsity."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from blackwell_sim.numerics.gemm import qgemm
from blackwell_sim.numerics.mma import mma_dot
from blackwell_sim.numerics.mma_matrix import mma_matrix
from blackwell_sim.numerics.quantize import QuantizedTensor, quantize
from blackwell_sim.numerics.sparsity import compress_2_4, decompress_2_4, prune_2_4

TE_RTOL = TE_ATOL = 8e-3  # TransformerEngine's NVFP4 GEMM test tolerance (atol=rtol=8e-3)


def _data(rng, shape, heavy=False):
    x = rng.standard_normal(shape)
    if heavy:  # log-normal magnitudes: wide exponent range inside blocks and across K
        x *= np.exp(3 * rng.standard_normal(shape))
    return x.astype(np.float32)


def _bits_to_f32(word: int) -> np.float32:
    return np.float32(struct.unpack("<f", struct.pack("<I", word))[0])


@pytest.mark.parametrize("heavy", [False, True], ids=["normal", "lognormal"])
@pytest.mark.parametrize("fmt", ["nvfp4", "mxfp4"])
def test_fast_within_te_tolerance_of_exact(fmt, heavy):
    # Relative error measured per element as in torch.testing.assert_close(fast, exact,
    # atol=8e-3, rtol=8e-3): |fast - exact| <= atol + rtol * |exact|, plus the normwise
    # max|fast - exact| / max|exact| <= 8e-3.
    rng = np.random.default_rng(1 + heavy)
    x, w = _data(rng, (128, 512), heavy), _data(rng, (256, 512), heavy)
    qa, qb = quantize(x, fmt), quantize(w, fmt)
    exact = qgemm(qa, qb, mode="exact")
    fast = qgemm(qa, qb, mode="fast")
    assert exact.shape == (128, 256) and np.isfinite(exact).all()
    assert np.all(np.abs(fast - exact) <= TE_ATOL + TE_RTOL * np.abs(exact))
    assert np.abs(fast - exact).max() / np.abs(exact).max() <= TE_RTOL


def test_exact_mode_is_mma_dot_on_the_codes_and_scales():
    # The wiring: codes are the words, scale bytes the scales, the NVFP4 fp32 global decode
    # scales multiply the F32 result once (alpha = g_a * g_b, fp32).
    rng = np.random.default_rng(3)
    qa, qb = quantize(_data(rng, (3, 128)), "nvfp4"), quantize(_data(rng, (2, 128)), "nvfp4")
    out = qgemm(qa, qb, mode="exact")
    alpha = np.float32(qa.global_scale) * np.float32(qb.global_scale)
    for i in range(3):
        for j in range(2):
            word = mma_dot(qa.codes[i].tolist(), qb.codes[j].tolist(), a_format="e2m1",
                           scaling="ue4m3", scale_a=qa.scales[i].tolist(),
                           scale_b=qb.scales[j].tolist())
            assert out[i, j] == np.float32(_bits_to_f32(word) * alpha)


@pytest.mark.parametrize("fmt, kw", [
    ("nvfp4", dict(block_shape=(16, 16))),
    ("nvfp4", dict(policy="torchao")),
    ("mxfp4", dict(axis=0)),
    ("mxfp8_e4m3", dict(scale_rule="rceil")),
    ("mxfp6_e3m2", {}),
    ("fp8_e5m2", {}),
])
def test_fast_mode_equals_dequantize_then_matmul(fmt, kw):
    rng = np.random.default_rng(4)
    x, w = _data(rng, (48, 96)), _data(rng, (32, 96))
    axis = kw.get("axis", -1)
    qa = quantize(x.T if axis == 0 else x, fmt, **kw)
    qb = quantize(w.T if axis == 0 else w, fmt, **kw)
    da, db = qa.dequantize(), qb.dequantize()
    if axis == 0:
        da, db = da.T, db.T
    ref = da.astype(np.float64) @ db.astype(np.float64).T
    got = qgemm(qa, qb, accum_dtype=np.float64, out_dtype=np.float64, chunk_k=32, chunk_m=7)
    assert np.allclose(got, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    exact = qgemm(qa, qb, mode="exact")
    assert np.all(np.abs(exact - ref) <= TE_ATOL + TE_RTOL * np.abs(ref))


def test_chunking_only_changes_fp32_summation_order():
    rng = np.random.default_rng(5)
    qa, qb = quantize(_data(rng, (64, 256)), "mxfp4"), quantize(_data(rng, (40, 256)), "mxfp4")
    whole = qgemm(qa, qb, chunk_k=256, chunk_m=64)
    chunked = qgemm(qa, qb, chunk_k=64, chunk_m=5)
    assert np.allclose(whole, chunked, rtol=1e-5, atol=1e-5 * np.abs(whole).max())
    exact = qgemm(qa, qb, mode="exact")
    assert np.array_equal(exact, qgemm(qa, qb, mode="exact", chunk_m=3))


def test_exact_truncation_differs_from_dequantize_then_sum():
    # MXFP4 row: 6 * 6 in block 0 (scale 1) and -(1 * 1) * 2**-30 in block 1: the exact sum
    # 36 - 2**-30 is kept by the 39-bit window and rounded toward zero to the float below 36;
    # the fp32 dequantize-then-matmul rounds it to 36.
    codes = np.zeros((1, 64), np.uint8)
    codes[0, 0], codes[0, 32] = 0x7, 0xA
    b_codes = np.zeros((1, 64), np.uint8)
    b_codes[0, 0], b_codes[0, 32] = 0x7, 0x2
    scales = np.array([[127, 127 - 15]], np.uint8)

    def mx(c):
        return QuantizedTensor("mxfp4", "e2m1", c, scales, None, 1, (32,), (1, 64), "e8m0")

    fast = qgemm(mx(codes), mx(b_codes))
    exact = qgemm(mx(codes), mx(b_codes), mode="exact")
    assert fast[0, 0] == np.float32(36.0)
    assert exact[0, 0] == np.nextafter(np.float32(36.0), np.float32(0))


def test_k_padding_and_mixed_f8f6f4_formats():
    rng = np.random.default_rng(6)
    x, w = _data(rng, (5, 96)), _data(rng, (4, 96))
    qa, qb = quantize(x, "mxfp8_e4m3"), quantize(w, "mxfp6_e2m3")
    exact = qgemm(qa, qb, mode="exact")  # K=96 is 3 kind::mxf8f6f4 instructions, mixed formats
    ref = mma_matrix(qa.codes, qb.codes, a_format="e4m3", b_format="e2m3", scaling="ue8m0",
                     kind="mxf8f6f4", scale_a=qa.scales, scale_b=qb.scales).view(np.float32)
    assert np.array_equal(exact, ref)
    qa4, qb4 = quantize(x, "nvfp4"), quantize(w, "nvfp4")  # K=96 -> zero-padded to 128
    words = mma_matrix(np.pad(qa4.codes, ((0, 0), (0, 32))), np.pad(qb4.codes, ((0, 0), (0, 32))),
                       a_format="e2m1", scaling="ue4m3",
                       scale_a=np.pad(qa4.scales, ((0, 0), (0, 2)), constant_values=0x38),
                       scale_b=np.pad(qb4.scales, ((0, 0), (0, 2)), constant_values=0x38))
    alpha = np.float32(qa4.global_scale) * np.float32(qb4.global_scale)
    assert np.array_equal(qgemm(qa4, qb4, mode="exact"), words.view(np.float32) * alpha)


def test_float_operands_bf16_f16_tf32():
    rng = np.random.default_rng(7)
    x, w = _data(rng, (6, 64)), _data(rng, (5, 64))
    for fmt in ("bf16", "f16", "tf32"):
        exact = qgemm(x, w, mode="exact", float_format=fmt)
        fast = qgemm(x, w, float_format=fmt, accum_dtype=np.float64)
        assert np.all(np.abs(exact - fast) <= 1e-5 * np.abs(fast).max()), fmt
    # tf32 reads the fp32 container and drops fraction bits 0..12 (no rounding).
    one_plus = np.float32(1.0 + 2.0**-12)  # bit 11 set: dropped by tf32
    a = np.zeros((1, 8), np.float32)
    a[0, 0] = one_plus
    b = np.zeros((1, 8), np.float32)
    b[0, 0] = 1.0
    assert qgemm(a, b, mode="exact", float_format="tf32")[0, 0] == 1.0
    assert qgemm(a, b, mode="exact", float_format="bf16")[0, 0] == 1.0  # RNE to bf16
    with pytest.raises(ValueError, match="float_format"):
        qgemm(a, b, mode="exact")


def test_nan_block_propagates_in_both_modes():
    rng = np.random.default_rng(8)
    x, w = _data(rng, (3, 64)), _data(rng, (4, 64))
    x[1, 40] = np.nan
    qa, qb = quantize(x, "mxfp8_e4m3"), quantize(w, "mxfp8_e4m3")
    assert qa.scales[1, 1] == 0xFF
    exact = qgemm(qa, qb, mode="exact")
    assert np.isnan(exact[1]).all() and np.isfinite(exact[[0, 2]]).all()
    assert (exact[1].view(np.uint32) == 0x7FFF_FFFF).all()
    assert np.isnan(qgemm(qa, qb)[1]).all()


def test_sparse_a_equals_dense_product_of_decompressed_a():
    rng = np.random.default_rng(9)
    x = prune_2_4(_data(rng, (8, 128)))
    w = _data(rng, (6, 128))
    values, idx = compress_2_4(x)
    qv, qb = quantize(values, "mxfp8_e4m3"), quantize(w, "mxfp8_e4m3")
    dense_a = decompress_2_4(qv.dequantize(), idx)
    ref = dense_a.astype(np.float64) @ qb.dequantize().astype(np.float64).T
    fast = qgemm(qv, qb, a_indices=idx, accum_dtype=np.float64, out_dtype=np.float64)
    assert np.allclose(fast, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
    exact = qgemm(qv, qb, a_indices=idx, mode="exact")
    # Exact sparse = the sparse instruction (K=64) on the decompressed codes; each stored
    # 32-value scale block covers 64 logical K, i.e. two logical 32-blocks.
    codes = decompress_2_4(qv.codes.astype(np.float32), idx).astype(np.int64)
    active = decompress_2_4(np.ones(idx.shape, np.float32), idx) != 0
    words = mma_matrix(codes, qb.codes, a_format="e4m3", scaling="ue8m0", kind="mxf8f6f4",
                       scale_a=np.repeat(qv.scales, 2, axis=1), scale_b=qb.scales,
                       sparse_active=active)
    assert np.array_equal(exact, words.view(np.float32))
    assert np.all(np.abs(exact - ref) <= TE_ATOL + TE_RTOL * np.abs(ref))


def test_sparse_nvfp4_exact_needs_32_wide_scale_blocks():
    rng = np.random.default_rng(10)
    values, idx = compress_2_4(prune_2_4(_data(rng, (4, 128))))
    qv, qb = quantize(values, "nvfp4"), quantize(_data(rng, (4, 128)), "nvfp4")
    assert np.isfinite(qgemm(qv, qb, a_indices=idx)).all()  # fast mode works
    with pytest.raises(ValueError, match="b: .*32"):
        qgemm(qv, qb, a_indices=idx, mode="exact")


def test_bad_input():
    rng = np.random.default_rng(11)
    qa, qb = quantize(_data(rng, (4, 64)), "nvfp4"), quantize(_data(rng, (4, 128)), "nvfp4")
    with pytest.raises(ValueError, match="K mismatch"):
        qgemm(qa, qb)
    with pytest.raises(ValueError, match="mode"):
        qgemm(qa, qa, mode="fastest")
    with pytest.raises(ValueError, match="b: operand families"):
        qgemm(qa, quantize(_data(rng, (4, 64)), "mxfp4"), mode="exact")
    with pytest.raises(ValueError, match="a_indices"):
        qgemm(qa, qa, a_indices=np.zeros((4, 3), np.uint8))
    with pytest.raises(ValueError, match="chunk_k"):
        qgemm(qa, qa, chunk_k=0)
    with pytest.raises(ValueError, match="accum_dtype"):
        qgemm(qa, qa, accum_dtype=np.float16)
    with pytest.raises(ValueError, match="a:"):
        qgemm(np.zeros((2, 64), np.int32), qa)
